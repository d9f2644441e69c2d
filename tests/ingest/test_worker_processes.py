"""Real worker processes: killed mid-batch, stopped with SIGTERM, joined by a second worker.
Afterwards the index must equal the catalogue and nothing may sit in the dead-letter topic."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import publish, set_up
from lookalike_stack.embedded import Backends
from tests.fixtures.backends import fresh_settings
from tests.fixtures.ingest import (
    WorkerProcesses,
    assert_committed_were_applied,
    assert_index_equals_catalogue,
    backlog,
    commit_offsets,
    es_ids,
    indexed_at_least,
)
from tests.fixtures.services import wait_until

pytestmark = pytest.mark.slow


async def test_worker_killed_mid_backlog_and_restarted_leaves_index_equal_to_catalogue(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    ingest_workers: WorkerProcesses,
) -> None:
    settings = lookalike_settings
    await set_up(settings)
    # A backlog long enough to kill the worker in the middle of it, short enough that one
    # worker process (fingerprint and embedding per image) gets through it well within the
    # test's time limit on two loaded cores.
    events = backlog(sample_catalogue[1], 1000)
    await publish(settings, events)
    worker = ingest_workers.start("first")
    await wait_until(lambda: indexed_at_least(settings, 150), timeout=180, what="150 indexed")
    worker.send_signal(signal.SIGKILL)  # no chance to finish, commit or say goodbye
    assert worker.wait(timeout=10) == -signal.SIGKILL
    assert len(es_ids(settings)) < len(events), "the backlog finished before the kill"

    committed = await assert_committed_were_applied(settings, ingest_workers.group)

    group = ingest_workers.group
    if os.environ.get("LOOKALIKE_TEST_BACKEND", "embedded") == "embedded":
        # The embedded stand-in never expires a member that died without leaving, so a
        # restarted worker could not join the old group (real Kafka evicts it after the
        # session timeout). Resume from the dead worker's committed offsets in a new group.
        group = f"{group}-restarted"
        await commit_offsets(settings, group, committed)
    ingest_workers.start("restarted", group=group)
    await wait_until(
        lambda: indexed_at_least(settings, len(events)), timeout=600, what="the whole backlog"
    )
    await assert_index_equals_catalogue(settings, events)


@pytest.fixture
def rebalancing_workers(
    request: pytest.FixtureRequest,
    backends: Backends,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
) -> Iterator[WorkerProcesses]:
    """Worker processes on a broker that rebalances as Kafka does. The embedded stand-in
    refuses an offset commit that races a rebalance (IllegalGeneration) and its group then
    never settles, so on it the second broker (Tansu) carries the topics instead."""
    if os.environ.get("LOOKALIKE_TEST_BACKEND", "embedded") == "embedded":
        kafka = request.getfixturevalue("second_kafka")
        settings = fresh_settings(Backends(kafka, backends.es_url), kafka_idempotence=False)
    else:
        settings = fresh_settings(backends)
    workers = WorkerProcesses(settings, sample_catalogue[0], tmp_path)
    yield workers
    workers.stop_all()


async def test_sigterm_drains_and_a_second_worker_takes_over_after_a_rebalance(
    rebalancing_workers: WorkerProcesses,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    ingest_workers = rebalancing_workers
    settings = ingest_workers.settings
    await set_up(settings)
    events = backlog(sample_catalogue[1], 600, prefix="rb")
    await publish(settings, events)
    first = ingest_workers.start("first")
    await wait_until(lambda: indexed_at_least(settings, 60), timeout=120, what="60 indexed")
    ingest_workers.start("second")  # joins the group: partitions are split mid-backlog
    await wait_until(
        lambda: _log_mentions(ingest_workers, "second", "partitions assigned", nonempty=True),
        timeout=60,
        what="the second worker to get partitions",
    )
    await wait_until(lambda: indexed_at_least(settings, 300), timeout=180, what="300 indexed")
    first.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait, 60) == 0  # drained, committed, exited cleanly
    assert "ingest worker stopped" in ingest_workers.log("first")
    await wait_until(lambda: indexed_at_least(settings, len(events)), timeout=240, what="all 600")
    await assert_index_equals_catalogue(settings, events)


async def _log_mentions(workers: WorkerProcesses, name: str, text: str, nonempty: bool) -> bool:
    for line in workers.log(name).splitlines():
        if text in line and (not nonempty or '"partitions": []' not in line):
            return True
    return False


async def test_two_workers_in_one_group_share_the_partitions(
    rebalancing_workers: WorkerProcesses,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    # Two workers joining at once rebalance the group while it forms: on a broker that
    # rebalances as Kafka does, or the test would measure the stand-in's group handling.
    ingest_workers = rebalancing_workers
    settings = ingest_workers.settings
    await set_up(settings)
    ingest_workers.start("first")
    ingest_workers.start("second")
    for name in ("first", "second"):
        await wait_until(
            lambda name=name: _log_mentions(ingest_workers, name, "partitions assigned", True),
            timeout=60,
            what=f"the {name} worker to get partitions",
        )
    events = backlog(sample_catalogue[1], 200, prefix="two")
    await publish(settings, events)
    await wait_until(lambda: indexed_at_least(settings, len(events)), timeout=240, what="all 200")
    await assert_index_equals_catalogue(settings, events)
    shares = [ingest_workers.indexed(name) for name in ("first", "second")]
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == len(events)  # each image indexed once, by one of them
