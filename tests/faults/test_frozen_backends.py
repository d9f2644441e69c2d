"""Faults of a real network: a broker or an Elasticsearch server that stops answering for
15 s. Searches keep answering, ingest waits and retries, and afterwards the index equals
the catalogue with nothing dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import publish
from lookalike_stack.processes import Child
from tests.faults.conftest import SplitBackends
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.ingest import (
    assert_index_equals_catalogue,
    backlog,
    indexed_at_least,
)
from tests.fixtures.services import Pipeline, run_pipeline, wait_until

pytestmark = pytest.mark.slow
FREEZE_SECONDS = 15


@contextlib.asynccontextmanager
async def frozen(child: Child) -> AsyncIterator[None]:
    os.kill(child.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(child.proc.pid, signal.SIGCONT)


async def searches_during(
    pipeline: Pipeline, query: bytes, seconds: float
) -> list[tuple[float, list[dict[str, Any]]]]:
    """Search once a second for `seconds`; (answer time, lines) of each."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        status, lines = await pipeline.search(query)
        assert status == 200
        answers.append((time.monotonic() - started, lines))
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))
    return answers


async def test_frozen_broker_delays_ingest_but_loses_nothing_and_searches_answer(
    split_backends: SplitBackends,
    fault_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, catalogue = sample_catalogue
    events = backlog(catalogue, 150, prefix="fb")
    query = resized_copy(sample_path(root, "img-00003"), 0.5)
    async with run_pipeline(fault_settings, root) as pipeline:
        await publish(fault_settings, events)
        await wait_until(
            lambda: indexed_at_least(fault_settings, 30), timeout=120, what="30 indexed"
        )
        async with frozen(split_backends.kafka):
            answers = await searches_during(pipeline, query, FREEZE_SECONDS)
        # The matcher serves from memory and Elasticsearch is up: every search answered fully.
        assert all(lines[-1]["type"] == "done" for _, lines in answers)
        assert all(lines[0]["image_id"].startswith("fb-") for _, lines in answers if len(lines) > 1)
        await wait_until(
            lambda: indexed_at_least(fault_settings, len(events)), timeout=300, what="backlog"
        )
    await assert_index_equals_catalogue(fault_settings, events)


async def test_frozen_elasticsearch_gives_warnings_not_hangs_and_ingest_catches_up(
    split_backends: SplitBackends,
    fault_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, catalogue = sample_catalogue
    events = backlog(catalogue, 150, prefix="fe")
    query = resized_copy(sample_path(root, "img-00024"), 0.5)
    async with run_pipeline(fault_settings, root) as pipeline:
        await publish(fault_settings, events)
        await wait_until(
            lambda: indexed_at_least(fault_settings, 30), timeout=120, what="30 indexed"
        )
        async with frozen(split_backends.elasticsearch):
            answers = await searches_during(pipeline, query, FREEZE_SECONDS)
        for took, lines in answers:
            assert took < 10, "a search hung on the frozen Elasticsearch"
            assert lines[-1]["type"] == "done"
            assert lines[-1]["warnings"], "an answer without Elasticsearch must say so"
        # The matcher still knows the artwork: duplicates come without Elasticsearch.
        assert any(line.get("match") == "duplicate" for _, lines in answers for line in lines)
        await wait_until(
            lambda: indexed_at_least(fault_settings, len(events)), timeout=300, what="backlog"
        )
    await assert_index_equals_catalogue(fault_settings, events)
