"""SIGTERM: the worker finishes its batch, commits and exits 0; a restart resumes after it."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import publish, set_up
from tests.fixtures.ingest import (
    WorkerProcesses,
    assert_committed_were_applied,
    backlog,
    indexed_at_least,
    read_topic,
)
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
    await wait_until(lambda: indexed_at_least(settings, 40), timeout=120, what="40 indexed")
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 60) == 0
    assert "ingest worker stopped" in ingest_workers.log("first")

    await assert_committed_were_applied(settings, ingest_workers.group)

    ingest_workers.start("second")  # same group: it left cleanly, so it can rejoin
    await wait_until(lambda: indexed_at_least(settings, len(events)), timeout=240, what="the rest")
    assert await read_topic(settings.kafka_bootstrap, settings.dlq_topic) == []
