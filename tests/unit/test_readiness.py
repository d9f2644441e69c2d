"""Readiness: every part's reason, in the order the parts first spoke; ready when none has."""

from __future__ import annotations

import asyncio

from lookalike_shared.readiness import Readiness


def test_reasons_are_every_part_that_is_not_ready_in_the_order_they_first_spoke() -> None:
    readiness = Readiness()
    assert readiness.ready and readiness.reasons == []
    readiness.set("replay", "INDEX-NOT-LOADED")
    readiness.set("pool", "POOL-STARTING")
    readiness.set("replay", "INDEX-CATCHING-UP")
    assert not readiness.ready
    assert readiness.reasons == ["INDEX-CATCHING-UP", "POOL-STARTING"]
    readiness.clear("replay")
    assert readiness.reasons == ["POOL-STARTING"]
    assert readiness.reason("replay") is None and readiness.reason("pool") == "POOL-STARTING"
    readiness.set("replay", "REPLAY-FAILED")
    assert readiness.reasons == ["REPLAY-FAILED", "POOL-STARTING"]
    readiness.clear("replay")
    readiness.clear("pool")
    assert readiness.ready and readiness.reasons == []


async def test_wait_ready_returns_once_the_last_reason_is_cleared() -> None:
    readiness = Readiness()
    readiness.set("consumer", "BACKENDS-UNREACHABLE")
    readiness.set("pool", "POOL-STARTING")
    waiting = asyncio.ensure_future(readiness.wait_ready())
    readiness.clear("pool")
    await asyncio.sleep(0)  # let the waiter run: it must still be waiting
    assert not waiting.done()
    readiness.clear("consumer")
    await asyncio.wait_for(waiting, 5)
