"""Events that share a polled batch, on the real broker and Elasticsearch-API server: each
image's events apply in order against the version the batch itself just wrote, a
redelivered batch changes nothing, an event whose document cannot be indexed is
dead-lettered before anything is written, and a delete's version outlives the image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lookalike_stack.catalogue import publish
from tests.fixtures.ingest import (
    HandFedBatches,
    deletion_markers,
    es_ids,
    latest_fingerprints,
    outcome_count,
    read_topic,
)

OUTCOMES = ("indexed", "deleted", "stale", "dlq")


def counts() -> dict[str, float]:
    return {outcome: outcome_count(outcome) for outcome in OUTCOMES}


def added(before: dict[str, float]) -> dict[str, float]:
    return {outcome: outcome_count(outcome) - before[outcome] for outcome in OUTCOMES}


async def fingerprint_versions(batches: HandFedBatches, image_id: str) -> list[int | None]:
    """Every record of an image on the fingerprint topic, in order (None: a tombstone)."""
    settings = batches.settings
    return [
        None if record.value is None else json.loads(record.value)["version"]
        for record in await read_topic(settings.kafka_bootstrap, settings.fingerprint_topic)
        if record.key == image_id.encode()
    ]


async def test_create_update_delete_and_stale_events_in_one_batch_leave_the_catalogue_state(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    cat, rocket, coffee = catalogue[2], catalogue[7], catalogue[9]
    await publish(settings, [{**coffee, "image_id": "held", "version": 7}])
    await hand_fed_batches.apply_new()
    before = counts()

    await publish(settings, [{**cat, "image_id": "life", "version": 1}])
    await publish(settings, [{**rocket, "image_id": "life", "version": 2}])  # an update
    await publish(settings, deletes=[{"image_id": "life", "version": 3}])
    await publish(settings, [{**cat, "image_id": "swapped", "version": 5}])
    await publish(settings, [{**rocket, "image_id": "swapped", "version": 4}])  # out of date
    await publish(settings, [{**cat, "image_id": "held", "version": 6}])  # older than indexed
    await publish(settings, deletes=[{"image_id": "never-indexed", "version": 2}])
    batch = await hand_fed_batches.apply_new()
    assert len(batch) == 7

    assert es_ids(settings) == {"swapped": 5, "held": 7}
    held = await latest_fingerprints(settings.kafka_bootstrap, settings.fingerprint_topic)
    assert held == {"swapped": 5, "held": 7}
    assert await fingerprint_versions(hand_fed_batches, "life") == [1, 2, None]  # in order
    assert await fingerprint_versions(hand_fed_batches, "swapped") == [5]
    assert await read_topic(settings.kafka_bootstrap, settings.dlq_topic) == []
    # life v1, v2 and swapped v5 indexed; life v3 and the never-indexed image deleted (each
    # leaves a deletion marker); swapped v4 and held v6 stale.
    assert added(before) == {"indexed": 3, "deleted": 2, "stale": 2, "dlq": 0}


async def test_a_redelivered_batch_changes_nothing(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    await publish(
        settings,
        [
            {**catalogue[0], "image_id": "again-a", "version": 1},
            {**catalogue[1], "image_id": "again-a", "version": 2},
            {**catalogue[3], "image_id": "again-b", "version": 4},
        ],
    )
    await hand_fed_batches.apply_new()
    fingerprints = await read_topic(settings.kafka_bootstrap, settings.fingerprint_topic)
    assert es_ids(settings) == {"again-a": 2, "again-b": 4}
    before = counts()

    hand_fed_batches.seen.clear()  # the worker died before committing: the batch comes again
    await hand_fed_batches.apply_new()

    assert added(before) == {"indexed": 0, "deleted": 0, "stale": 3, "dlq": 0}
    assert es_ids(settings) == {"again-a": 2, "again-b": 4}
    again = await read_topic(settings.kafka_bootstrap, settings.fingerprint_topic)
    assert len(again) == len(fingerprints)  # nothing published twice


async def test_an_event_whose_document_would_be_refused_changes_nothing_anywhere(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    before = counts()
    # A valid event whose document the mapping would refuse: a tag longer than the longest
    # term Elasticsearch takes. It must be dead-lettered before its fingerprint is published.
    refused = {**catalogue[4], "image_id": "clash", "version": 1, "tags": ["x" * 40_000]}
    await publish(
        settings,
        [
            {**catalogue[5], "image_id": "fine", "version": 1},
            refused,
            {**catalogue[6], "image_id": "clash", "version": 2},  # the catalogue's fix
        ],
    )
    batch = await hand_fed_batches.apply_new()

    assert es_ids(settings) == {"fine": 1, "clash": 2}
    assert await fingerprint_versions(hand_fed_batches, "clash") == [2]  # v1 never published
    (dead,) = await read_topic(settings.kafka_bootstrap, settings.dlq_topic)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["lookalike.error.class"] == "invalid_document"
    assert "tags" in headers["lookalike.error.message"]
    (original,) = [r for r in batch if json.loads(r.value)["data"].get("tags") == refused["tags"]]
    assert int(headers["lookalike.error.offset"]) == original.offset
    assert dead.value == original.value
    assert added(before) == {"indexed": 2, "deleted": 0, "stale": 0, "dlq": 1}


async def test_catalogue_fields_named_like_computed_ones_do_not_override_them(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    # `decade` is derived from `year`, `deleted` marks a deleted image: a catalogue's own
    # fields of those names must neither break the document nor hide the image.
    clashing = {
        **catalogue[4],
        "image_id": "named-alike",
        "version": 1,
        "year": 1926,
        "decade": "the twenties",
        "deleted": True,
    }
    await publish(settings, [clashing])
    await hand_fed_batches.apply_new()

    assert es_ids(settings) == {"named-alike": 1}
    assert await read_topic(settings.kafka_bootstrap, settings.dlq_topic) == []


async def test_an_image_deleted_at_a_version_refuses_older_upserts_however_late(
    hand_fed_batches: HandFedBatches, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = hand_fed_batches.settings
    before = counts()
    # Each in its own batch: the delete's version must outlive the deleted document.
    await publish(settings, [{**catalogue[1], "image_id": "gone", "version": 5}])
    await hand_fed_batches.apply_new()
    await publish(settings, deletes=[{"image_id": "gone", "version": 6}])
    await hand_fed_batches.apply_new()
    await publish(settings, [{**catalogue[1], "image_id": "gone", "version": 3}])
    await hand_fed_batches.apply_new()

    assert es_ids(settings) == {}
    assert deletion_markers(settings) == {"gone": 6}
    assert await latest_fingerprints(settings.kafka_bootstrap, settings.fingerprint_topic) == {}
    assert added(before) == {"indexed": 1, "deleted": 1, "stale": 1, "dlq": 0}

    await publish(settings, [{**catalogue[1], "image_id": "gone", "version": 7}])  # back for real
    await hand_fed_batches.apply_new()
    assert es_ids(settings) == {"gone": 7}
    assert deletion_markers(settings) == {}
