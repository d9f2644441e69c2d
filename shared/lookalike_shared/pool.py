"""The worker processes that run CPU work (decode, hashing) off the event loop.

    WorkerPool.start --> executor (forkserver workers, warmed) --> ready
    run(fn) --> a worker died (kill -9, OOM)? --> BrokenProcessPool
            --> replace the executor (once, under a lock, however many calls saw it break)
            --> retry this call once on the new one --> still broken: PoolUnavailable
    a pool that cannot start --> POOL-BROKEN, PoolUnavailable at once, restarted in the
            background with backoff until it starts

A ProcessPoolExecutor whose worker died refuses all later work for good; this type is
what keeps one dead worker from failing every later search.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, cast

from .analysis import ImageAnalysis, analyse_bytes
from .contracts import Fingerprint
from .fingerprint import fingerprint_bytes
from .imaging import ImageRejected
from .readiness import Readiness

log = logging.getLogger(__name__)
T = TypeVar("T")

PART = "pool"  # its name in a service's Readiness
STARTING = "POOL-STARTING"
BROKEN = "POOL-BROKEN"


class PoolUnavailable(Exception):
    """No worker process can take this call now; the caller answers 503 or retries later."""


class CallKillsWorkers(PoolUnavailable):
    """Fresh workers died running this very call, twice: most likely the call's own input
    kills them (out of memory). A caller that retries PoolUnavailable may want to give up
    on this one."""


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


def _make_executor(workers: int) -> ProcessPoolExecutor:
    # forkserver: forking a process that runs aiokafka's and asyncio's threads is unsafe.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["lookalike_shared.forkserver_init", "lookalike_shared.analysis"]
    )
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=die_with_parent)


class WorkerPool:
    """A process pool that replaces itself when a worker dies. It tells `readiness` (part
    "pool") POOL-STARTING or POOL-BROKEN while it cannot take work."""

    def __init__(
        self,
        workers: int | None = None,
        start_timeout_seconds: float = 120.0,
        heal_cap_seconds: float = 30.0,
        warm_up: Callable[[], object] | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        """`warm_up` runs in every worker when it starts (a module-level function: it is
        pickled), within start_timeout_seconds, so that no real call pays for it."""
        self.workers = workers or default_workers()
        self.warm_up = warm_up or _warm
        self.start_timeout_seconds = start_timeout_seconds
        self.heal_cap_seconds = heal_cap_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self.readiness = readiness if readiness is not None else Readiness()
        self.readiness.set(PART, STARTING)
        self._healer: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def _reason(self) -> str | None:
        return self.readiness.reason(PART)

    async def start(self) -> None:
        """Start and warm the workers. A pool that cannot start does not raise here: it
        reports POOL-BROKEN and keeps trying in the background, so the service still
        serves what needs no worker and says why it is not ready."""
        with contextlib.suppress(PoolUnavailable):
            await self._replace(None, after_failure=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a worker process. Raises PoolUnavailable when no worker can run it."""
        executor = self._executor
        if executor is None:
            if self._reason == BROKEN or self._closed:
                raise PoolUnavailable("the worker processes are not running")
            executor = await self._replace(None)  # the first start is under way: wait for it
        try:
            return await self._submit(executor, fn, *args)
        except BrokenProcessPool:
            log.warning("a pool worker process died; starting new workers")
        executor = await self._replace(executor)
        try:
            return await self._submit(executor, fn, *args)
        except BrokenProcessPool as exc:
            # Fresh workers died on this very call: most likely it is what kills them (out of
            # memory). Heal for the next caller, but do not try this one a third time.
            self._heal_soon()
            raise CallKillsWorkers("a worker process died twice running this call") from exc

    async def close(self) -> None:
        self._closed = True
        if self._healer is not None:
            self._healer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._healer
        async with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None

    async def _submit(self, executor: ProcessPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, fn, *args)
        except RuntimeError:
            # "cannot schedule new futures after shutdown": another call replaced this
            # broken executor between our reading it and submitting to it.
            if executor is self._executor or self._closed:
                raise
            raise BrokenProcessPool("the executor was replaced") from None

    async def _replace(
        self, broken: ProcessPoolExecutor | None, after_failure: bool = False
    ) -> ProcessPoolExecutor:
        """A working executor in place of `broken` (None: there is none yet). Concurrent
        callers that saw the same executor break wait here and share one replacement.
        Once a start has failed, only start() and the healer (`after_failure`) try again:
        callers get PoolUnavailable at once instead of queueing for a start each."""
        async with self._lock:
            if self._executor is not None and self._executor is not broken:
                return self._executor
            if self._closed:
                raise PoolUnavailable("the pool is shut down")
            if self._executor is None and self._reason == BROKEN and not after_failure:
                raise PoolUnavailable("the worker processes are not running")
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
            self.readiness.set(PART, STARTING)
            executor = _make_executor(self.workers)
            try:
                await asyncio.wait_for(self._warm(executor), self.start_timeout_seconds)
            except Exception as exc:  # a fork or import that fails, or the deadline
                executor.shutdown(wait=False, cancel_futures=True)
                self.readiness.set(PART, BROKEN)
                log.error("the worker processes could not start", extra={"error": repr(exc)})
                self._heal_soon()
                raise PoolUnavailable("the worker processes could not start") from exc
            self._executor = executor
            self.readiness.clear(PART)
            return executor

    async def _warm(self, executor: ProcessPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(executor, self.warm_up) for _ in range(self.workers))
        )

    def _heal_soon(self) -> None:
        if self._closed or (self._healer is not None and not self._healer.done()):
            return
        self._healer = asyncio.get_running_loop().create_task(self._heal(self._executor))

    async def _heal(self, broken: ProcessPoolExecutor | None) -> None:
        """Keep trying to start workers, backing off, until they start (or close())."""
        delay = 0.5
        while not self._closed:
            try:
                await self._replace(broken, after_failure=True)
                return
            except PoolUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.heal_cap_seconds)
                broken = None  # the failed start left no executor


def _result_or_rejection(
    work: Callable[[bytes, bool], T], data: bytes, query: bool
) -> T | tuple[str, str]:
    # Exceptions with custom __init__ signatures do not pickle back reliably; send a tuple.
    try:
        return work(data, query)
    except ImageRejected as exc:
        return (exc.code, str(exc))


async def _image_work(
    pool: WorkerPool, work: Callable[[bytes, bool], T], data: bytes, query: bool
) -> T:
    result = await pool.run(_result_or_rejection, work, data, query)
    if isinstance(result, tuple):
        raise ImageRejected(*result)
    return cast(T, result)


async def fingerprint_in_pool(pool: WorkerPool, data: bytes, query: bool = False) -> Fingerprint:
    """The fingerprint of `data`, computed in `pool`; `query` for an image to search with.
    Raises ImageRejected for an unusable image, PoolUnavailable when no worker can run."""
    return await _image_work(pool, fingerprint_bytes, data, query)


async def analyse_in_pool(pool: WorkerPool, data: bytes, query: bool = False) -> ImageAnalysis:
    """Fingerprint, embedding and subject words of `data` from one decode, in `pool`.
    Raises ImageRejected for an unusable image, PoolUnavailable when no worker can run."""
    return await _image_work(pool, analyse_bytes, data, query)
