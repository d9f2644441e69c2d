"""SIGTERM: the worker finishes its batch, commits and exits 0; a restart resumes after it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import publish, set_up
from tests.fixtures.ingest import WorkerProcesses, backlog, committed_offsets, es_ids, read_topic
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.slow


async def test_sigterm_commits_what_was_applied_and_exits_cleanly(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    ingest_workers: WorkerProcesses,
) -> None:
    settings = lookalike_settings
    await set_up(settings)
    events = backlog(sample_catalogue[1], 300, prefix="term")
    await publish(settings, events)
    worker = ingest_workers.start("first")

    async def some_indexed() -> bool:
        return len(await asyncio.to_thread(es_ids, settings)) >= 40

    await wait_until(some_indexed, timeout=120, what="40 indexed")
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 60) == 0
    assert "ingest worker stopped" in ingest_workers.log("first")

    committed = await committed_offsets(settings, ingest_workers.group)
    indexed = es_ids(settings)
    records = await read_topic(settings.kafka_bootstrap, settings.catalogue_topic)
    done = [r for r in records if r.offset < committed.get(r.partition, 0)]
    assert done, "nothing was committed before the stop"
    assert {r.key.decode() for r in done} <= set(indexed)  # committed means applied

    ingest_workers.start("second")  # same group: it left cleanly, so it can rejoin

    async def all_indexed() -> bool:
        return len(await asyncio.to_thread(es_ids, settings)) == len(events)

    await wait_until(all_indexed, timeout=240, what="the rest after a restart")
    assert await read_topic(settings.kafka_bootstrap, settings.dlq_topic) == []
