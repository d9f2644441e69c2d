"""A fingerprint worker process that dies (kill -9; an out-of-memory kill is the same) costs
the gateway nothing lasting: the next image search and thumbnail work, /readyz stays true;
a pool that cannot start answers 503 and /readyz says why."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.fixtures.gateway import Gateway, IndexedCatalogue
from tests.fixtures.images import resized_copy, sample_path

CAT = "img-00003"


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def pool_workers() -> set[int]:
    """Pool worker processes of this test process: children of its fork server, itself a
    child of ours (pool.py starts workers through a fork server)."""
    parents = _parents()
    ours = {pid for pid, parent in parents.items() if parent == os.getpid()}
    return {pid for pid, parent in parents.items() if parent in ours}


@asynccontextmanager
async def gateway_with_one_worker(
    indexed: IndexedCatalogue,
) -> AsyncIterator[tuple[Gateway, set[int]]]:
    """Another gateway with one worker process, and the workers that were there before it
    (the session's services): the rest are this gateway's."""
    before = pool_workers()
    async with indexed.another_gateway(pool_workers=1) as gateway:
        yield gateway, before


async def _thumbnail(gateway: Gateway, image_id: str) -> tuple[int, str]:
    async with gateway.http.get(f"{gateway.url}/v1/images/{image_id}/thumbnail") as resp:
        await resp.read()
        return resp.status, resp.content_type


async def _readyz(gateway: Gateway) -> tuple[int, dict[str, str]]:
    async with gateway.http.get(f"{gateway.url}/readyz") as resp:
        return resp.status, dict(await resp.json())


async def test_after_its_worker_is_killed_the_gateway_still_searches_and_renders(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.5)
    async with gateway_with_one_worker(indexed_catalogue) as (gateway, others):
        for round_, image_id in enumerate(("img-00001", "img-00002")):  # kill, heal, again
            mine = pool_workers() - others
            assert len(mine) == 1
            os.kill(mine.pop(), signal.SIGKILL)

            answer = await gateway.search(query)
            thumb = await _thumbnail(gateway, image_id)  # not cached yet: rendered in the pool
            ready = await _readyz(gateway)

            assert answer.status == 200, (round_, answer.lines)
            assert answer.hits[0]["image_id"] == CAT
            assert answer.hits[0]["match"] == "duplicate"
            assert thumb == (200, "image/jpeg")
            assert ready == (200, {"status": "ready"})


async def test_searches_in_flight_when_the_worker_dies_all_answer_with_one_new_worker(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.5)
    async with gateway_with_one_worker(indexed_catalogue) as (gateway, others):
        killed = pool_workers() - others
        for pid in killed:
            os.kill(pid, signal.SIGKILL)

        answers = await asyncio.gather(*(gateway.search(query) for _ in range(6)))
        now = pool_workers() - others

    assert [a.status for a in answers] == [200] * 6
    assert all(a.hits[0]["image_id"] == CAT for a in answers)
    # One worker again, a new one: the broken pool was replaced, and only one pool lives.
    assert len(now) == 1 and not now & killed


@pytest.mark.parametrize("route", ["search", "thumbnail"])
async def test_a_pool_that_cannot_start_answers_503_and_readyz_says_why(
    indexed_catalogue: IndexedCatalogue, route: str
) -> None:
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.5)
    # No worker can start and warm within a microsecond: what a stuck fork server or an
    # import that fails looks like.
    async with indexed_catalogue.another_gateway(pool_start_timeout_seconds=1e-6) as gateway:
        ready = await _readyz(gateway)
        if route == "search":
            refused = await gateway.search(query)
            status, error = refused.status, refused.error
        else:
            async with gateway.http.get(f"{gateway.url}/v1/images/{CAT}/thumbnail") as resp:
                status, error = resp.status, (await resp.json())["error"]
        words = await gateway.search(q="cat")  # needs no worker: still served

    assert ready == (
        503,
        {"status": "not-ready", "reason": "POOL-BROKEN", "reasons": ["POOL-BROKEN"]},
    )
    assert status == 503
    assert error["code"] == "backend_unavailable"
    assert words.status == 200 and CAT in words.ids
