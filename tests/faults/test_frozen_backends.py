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


# A search must end well within the freeze: the gateway's own deadlines (3 s for
# Elasticsearch, 2 s for the matcher) are what ends it, not the backend waking up.
HANG = FREEZE_SECONDS / 2


async def searches_during(
    pipeline: Pipeline, query: bytes, seconds: float
) -> list[list[dict[str, Any]]]:
    """Search once a second for `seconds`; the lines of each answer. A search that has not
    answered after HANG seconds fails the test: it hung on the frozen backend."""
    answers = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            status, lines = await asyncio.wait_for(pipeline.search(query), HANG)
        except TimeoutError:
            raise AssertionError("a search hung on the frozen backend") from None
        assert status == 200
        answers.append(lines)
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))
    return answers


async def found_as_duplicate(pipeline: Pipeline, query: bytes) -> bool:
    """For wait_until: the query's artwork is in the index already."""
    _, lines = await pipeline.search(query)
    return lines[0].get("match") == "duplicate"


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
        await wait_until(lambda: found_as_duplicate(pipeline, query), what="a copy indexed")
        async with frozen(split_backends.kafka):
            answers = await searches_during(pipeline, query, FREEZE_SECONDS)
        # The matcher serves from memory and Elasticsearch is up: every search answered in
        # full, the artwork first.
        for lines in answers:
            assert lines[-1]["type"] == "done" and lines[-1]["warnings"] == []
            assert lines[0]["match"] == "duplicate" and lines[0]["image_id"].startswith("fb-")
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
        await wait_until(lambda: found_as_duplicate(pipeline, query), what="a copy indexed")
        async with frozen(split_backends.elasticsearch):
            answers = await searches_during(pipeline, query, FREEZE_SECONDS)
        for lines in answers:
            assert lines[-1]["type"] == "done"
            assert lines[-1]["warnings"], "an answer without Elasticsearch must say so"
            # The matcher still knows the artwork: its duplicate comes without Elasticsearch.
            assert lines[0]["match"] == "duplicate" and lines[0]["image_id"].startswith("fe-")
        await wait_until(
            lambda: indexed_at_least(fault_settings, len(events)), timeout=300, what="backlog"
        )
    await assert_index_equals_catalogue(fault_settings, events)
