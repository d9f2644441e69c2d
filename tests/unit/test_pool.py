"""The worker pool heals: a worker process that dies (kill -9, out of memory) costs at most
the one call it was running, never every later one; a pool that cannot start says so."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lookalike_shared.pool import CallKillsWorkers, PoolUnavailable, WorkerPool
from tests.fixtures.services import wait_until


def die_the_first_time(marker: str) -> int:
    """Runs in a worker: dies outright the first time (as an OOM kill would), then works."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def always_die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(1)
    await pool.start()
    yield pool
    await pool.close()


async def test_a_call_whose_worker_dies_under_it_is_retried_on_new_workers(
    pool: WorkerPool, tmp_path: Path
) -> None:
    before = await pool.run(os.getpid)

    answered_by = await pool.run(die_the_first_time, str(tmp_path / "died"))

    assert (tmp_path / "died").exists()  # the first attempt did run, and died
    assert answered_by != before
    assert pool.readiness.reason("pool") is None


async def test_after_a_worker_is_killed_from_outside_the_next_call_succeeds(
    pool: WorkerPool,
) -> None:
    worker = await pool.run(os.getpid)
    os.kill(worker, signal.SIGKILL)

    assert await pool.run(os.getpid) != worker
    assert pool.readiness.reason("pool") is None


async def test_calls_that_see_the_pool_break_together_share_one_new_pool(
    pool: WorkerPool,
) -> None:
    os.kill(await pool.run(os.getpid), signal.SIGKILL)

    pids = await asyncio.gather(*(pool.run(os.getpid) for _ in range(8)))

    # One worker a pool: had each call replaced the pool, they would name several.
    assert len(set(pids)) == 1


async def test_a_call_that_kills_every_worker_is_refused_and_the_pool_heals(
    pool: WorkerPool,
) -> None:
    with pytest.raises(CallKillsWorkers):  # a PoolUnavailable: tried once more, not forever
        await pool.run(always_die)

    assert await pool.run(os.getpid) > 0


async def test_a_pool_that_cannot_start_is_broken_until_it_can() -> None:
    # No worker can start and warm within a microsecond: the start fails as a stuck fork
    # server or a failing import would.
    pool = WorkerPool(1, start_timeout_seconds=1e-6, heal_cap_seconds=0.2)
    try:
        await pool.start()
        assert pool.readiness.reason("pool") == "POOL-BROKEN"
        with pytest.raises(PoolUnavailable):
            await pool.run(os.getpid)

        pool.start_timeout_seconds = 120  # the cause goes away: the pool heals on its own

        async def healed() -> bool:
            return pool.readiness.reason("pool") is None

        await wait_until(healed, 60, "the pool to start")
        assert await pool.run(os.getpid) > 0
    finally:
        await pool.close()
