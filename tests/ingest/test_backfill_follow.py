"""The backfill seeing its events through real ingest workers, the dead-letter topic,
Elasticsearch and a matcher: until each is indexed or dead-lettered."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from lookalike_ingest.backfill import BackfillOptions, Summary, backfill
from lookalike_ingest.backfill_report import report
from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import set_up
from tests.fixtures.ingest import WorkerProcesses, backlog, es_ids, read_topic
from tests.fixtures.matcher import running_matcher
from tests.fixtures.services import wait_until


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def missing_files(root: Path, count: int) -> list[dict[str, Any]]:
    """Rows whose image file is not there: the worker dead-letters them (fetch_not_found)."""
    return [
        {"image_id": f"gone-{n}", "version": 1, "image_url": (root / f"gone-{n}.jpg").as_uri()}
        for n in range(count)
    ]


async def test_backfill_follows_until_every_event_is_indexed_or_dead_lettered(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    ingest_workers: WorkerProcesses,
    tmp_path: Path,
) -> None:
    root, catalogue = sample_catalogue
    good = backlog(catalogue, 6, prefix="fw")
    export = tmp_path / "export.jsonl"
    write_jsonl(export, [*good[:3], *missing_files(root, 3), *good[3:]])
    await set_up(lookalike_settings)
    ingest_workers.start("a")
    bars = io.StringIO()
    async with running_matcher(lookalike_settings) as (matcher_url, _, http):
        options = BackfillOptions(
            follow=True,
            group=ingest_workers.group,
            matcher_url=matcher_url,
            bar_file=bars,
            errors=io.StringIO(),
            follow_timeout=180,
        )
        summary = await backfill(lookalike_settings, export, tmp_path / "state.sqlite", options)
        for row in good:  # searchable in the matcher once the backfill says so
            async with http.get(f"{matcher_url}/v1/images/{row['image_id']}") as resp:
                assert resp.status == 200, row["image_id"]

    follow = summary.follow
    assert follow is not None and follow.finished, report(summary, tmp_path)
    assert (summary.published, follow.indexed, follow.unchanged) == (9, 6, 0)
    assert dict(follow.dead) == {"fetch_not_found": 3}
    assert len(follow.examples["fetch_not_found"]) == 2
    assert set(follow.examples["fetch_not_found"]) < {"gone-0", "gone-1", "gone-2"}
    assert follow.matcher_images == follow.es_images == len(es_ids(lookalike_settings)) == 6
    text = report(summary, tmp_path / "state.sqlite")
    assert "indexed 6, unchanged 0, dead-lettered 3" in text
    assert "python -m lookalike_ingest.replay_dlq --reason fetch_not_found" in text
    assert "9/9" in bars.getvalue() and "6/6" in bars.getvalue()  # published and indexed bars


async def test_dead_letters_carry_the_kafka_connect_error_headers(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    ingest_workers: WorkerProcesses,
    tmp_path: Path,
) -> None:
    root, _ = sample_catalogue
    export = tmp_path / "export.jsonl"
    write_jsonl(export, missing_files(root, 1))
    ingest_workers.start("a")
    options = BackfillOptions(
        progress=False, follow=True, group=ingest_workers.group, follow_timeout=180
    )
    summary = await backfill(lookalike_settings, export, tmp_path / "state.sqlite", options)
    assert summary.follow is not None and dict(summary.follow.dead) == {"fetch_not_found": 1}

    (letter,) = await read_topic(lookalike_settings.kafka_bootstrap, lookalike_settings.dlq_topic)
    headers = {k: v.decode() for k, v in letter.headers}
    (event,) = await read_topic(
        lookalike_settings.kafka_bootstrap, lookalike_settings.catalogue_topic
    )
    assert headers["__connect.errors.topic"] == lookalike_settings.catalogue_topic
    assert headers["__connect.errors.partition"] == str(event.partition)
    assert headers["__connect.errors.offset"] == str(event.offset)
    assert headers["__connect.errors.exception.class.name"] == "fetch_not_found"
    message = headers["__connect.errors.exception.message"]
    assert "does not exist" in message and "gone-0.jpg" in message  # the path, for operators
    assert "does not exist" in headers["__connect.errors.exception.stacktrace"]
    assert headers["lookalike.error.class"] == "fetch_not_found"  # still there too


async def test_ctrl_c_stops_following_and_the_next_run_follows_what_was_left(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    ingest_workers: WorkerProcesses,
    tmp_path: Path,
) -> None:
    _, catalogue = sample_catalogue
    rows = backlog(catalogue, 5, prefix="cc")
    export, state = tmp_path / "export.jsonl", tmp_path / "state.sqlite"
    write_jsonl(export, rows)
    stop = asyncio.Event()  # what Ctrl-C sets

    async def ctrl_c_once_published() -> None:
        async def all_published() -> bool:
            topic = lookalike_settings.catalogue_topic
            return len(await read_topic(lookalike_settings.kafka_bootstrap, topic)) == 5

        await wait_until(all_published, 60, "the events to be published")
        stop.set()

    def options(stop: asyncio.Event | None = None) -> BackfillOptions:
        return BackfillOptions(
            progress=False,
            follow=True,
            group=ingest_workers.group,
            follow_timeout=180,
            stop=stop,
            errors=io.StringIO(),
        )

    # No worker runs yet: the backfill publishes, then waits for the pipeline.
    pressing = asyncio.create_task(ctrl_c_once_published())
    first = await backfill(lookalike_settings, export, state, options(stop))
    await pressing
    assert first.interrupted and first.follow is not None
    assert (first.published, first.follow.pending, first.follow.indexed) == (5, 5, 0)
    assert "stopped following with 5 events still on their way" in report(first, state)

    ingest_workers.start("a")
    second = await backfill(lookalike_settings, export, state, options())
    assert (second.published, second.unchanged) == (0, 5)  # nothing published twice
    assert second.follow is not None and second.follow.finished
    assert second.follow.indexed == 5  # the first run's events, followed to the end

    # A new title under the same version is published, and the pipeline keeps what it has.
    write_jsonl(export, [{**rows[0], "title": "Retitled"}, *rows[1:]])
    third: Summary = await backfill(lookalike_settings, export, state, options())
    assert third.published == 1 and third.follow is not None
    assert (third.follow.indexed, third.follow.unchanged) == (0, 1)
    assert "a changed image needs a higher version" in report(third, state)
