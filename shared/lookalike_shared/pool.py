"""The process pool that runs CPU work (decode, hashing) off the event loop."""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

from .analysis import ImageAnalysis, analyse_bytes
from .contracts import Fingerprint
from .fingerprint import fingerprint_bytes
from .imaging import ImageRejected


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _warm() -> int:
    # Importing PIL, numpy and our modules once per worker, so the first real image
    # does not pay for it.
    return os.getpid()


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies: a service killed outright
    (SIGKILL, OOM) cannot shut its pool down, which would leave it orphaned."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux


def make_pool(workers: int | None = None) -> ProcessPoolExecutor:
    # forkserver: forking a process that runs aiokafka's and asyncio's threads is unsafe.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["lookalike_shared.forkserver_init", "lookalike_shared.analysis"]
    )
    return ProcessPoolExecutor(
        max_workers=workers or default_workers(), mp_context=context, initializer=die_with_parent
    )


async def warm_pool(pool: ProcessPoolExecutor, workers: int) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in range(workers)))


def _fingerprint_or_error(data: bytes, query: bool) -> Fingerprint | tuple[str, str]:
    # Exceptions with custom __init__ signatures do not pickle back reliably; send a tuple.
    try:
        return fingerprint_bytes(data, query)
    except ImageRejected as exc:
        return (exc.code, str(exc))


async def fingerprint_in_pool(
    pool: ProcessPoolExecutor, data: bytes, query: bool = False
) -> Fingerprint:
    """The fingerprint of `data`, computed in `pool`; `query` for an image to search with."""
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(pool, _fingerprint_or_error, data, query)
    if isinstance(result, tuple):
        raise ImageRejected(*result)
    return result


def _analysis_or_error(data: bytes, query: bool) -> ImageAnalysis | tuple[str, str]:
    try:
        return analyse_bytes(data, query)
    except ImageRejected as exc:
        return (exc.code, str(exc))


async def analyse_in_pool(
    pool: ProcessPoolExecutor, data: bytes, query: bool = False
) -> ImageAnalysis:
    """Fingerprint, embedding and subject words of `data` from one decode, in `pool`."""
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(pool, _analysis_or_error, data, query)
    if isinstance(result, tuple):
        raise ImageRejected(*result)
    return result
