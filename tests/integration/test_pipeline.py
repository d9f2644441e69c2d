"""End to end through the real services, Kafka-protocol broker and Elasticsearch-API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from lookalike_stack.catalogue import publish
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.ingest import read_topic
from tests.fixtures.services import Pipeline, wait_until


async def ingest_all(pipeline: Pipeline, catalogue: list[dict[str, Any]]) -> None:
    await publish(pipeline.settings, catalogue)

    async def everything_searchable() -> bool:
        stats = await pipeline.matcher_stats()
        return stats["images"] == len(catalogue) and await pipeline.es_count() == len(catalogue)

    await wait_until(everything_searchable, timeout=90, what="the sample catalogue to be indexed")


async def test_resized_copy_of_a_catalogue_image_comes_back_first_as_duplicate(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, catalogue = sample_catalogue
    await ingest_all(pipeline, catalogue)

    for image_id in ("img-00003", "img-00024", "img-00026"):
        status, lines = await pipeline.search(resized_copy(sample_path(root, image_id), 0.5))
        assert status == 200
        hits = [line for line in lines if line["type"] == "hit"]
        assert hits, f"no hits for a resized {image_id}"
        assert hits[0]["image_id"] == image_id
        assert hits[0]["match"] == "duplicate"
        assert hits[0]["doc"]["title"] == next(
            c["title"] for c in catalogue if c["image_id"] == image_id
        )
        assert lines[-1]["type"] == "done"
        assert lines[-1]["warnings"] == []


async def test_deleted_image_is_no_longer_found(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, catalogue = sample_catalogue
    await ingest_all(pipeline, catalogue)
    query = resized_copy(sample_path(root, "img-00008"), 0.6)

    await publish(pipeline.settings, deletes=[{"image_id": "img-00008", "version": 2}])
    await wait_until(
        lambda: _matcher_count_is(pipeline, len(catalogue) - 1),
        what="the delete to reach the matcher",
    )
    await wait_until(
        lambda: _es_count_is(pipeline, len(catalogue) - 1), what="the delete to reach Elasticsearch"
    )

    _, lines = await pipeline.search(query)
    assert "img-00008" not in {line.get("image_id") for line in lines}


async def _matcher_count_is(pipeline: Pipeline, n: int) -> bool:
    return (await pipeline.matcher_stats())["images"] == n


async def _es_count_is(pipeline: Pipeline, n: int) -> bool:
    return await pipeline.es_count() == n


async def test_bad_events_go_to_the_dead_letter_topic_and_the_worker_carries_on(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = pipeline.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.catalogue_topic, key=b"img-x", value=b"{not json")
        missing_field = (
            b'{"specversion":"1.0","id":"e1","source":"/t","type":"catalogue.image.upserted",'
            b'"data":{"image_id":"img-y"}}'
        )
        await producer.send_and_wait(settings.catalogue_topic, key=b"img-y", value=missing_field)
    finally:
        await producer.stop()
    good = catalogue[0]
    await publish(settings, [good])
    await wait_until(lambda: _matcher_count_is(pipeline, 1), what="the good event after bad ones")

    # Different keys are handled concurrently: the dead letters may come in either order.
    records = {r.key: r for r in await read_topic(settings.kafka_bootstrap, settings.dlq_topic)}
    assert set(records) == {b"img-x", b"img-y"}
    assert records[b"img-x"].value == b"{not json"  # the original, untouched
    headers = {k: v.decode() for k, v in records[b"img-y"].headers}
    assert headers["lookalike.error.class"] == "invalid_event"
    assert "image_url" in headers["lookalike.error.message"]
    assert headers["lookalike.error.topic"] == settings.catalogue_topic


async def test_words_reorder_copies_of_one_artwork_by_their_titles(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    # Three catalogue entries of one picture: the matcher finds all three as the same
    # artwork with equal scores, so only the words can put one of them first.
    root, catalogue = sample_catalogue
    original = next(c for c in catalogue if c["image_id"] == "img-00003")
    titles = {"copy-a": "harbour at dawn", "copy-b": "orchard in winter", "copy-c": "blue study"}
    copies = [
        {**original, "image_id": image_id, "version": 1, "title": title, "tags": []}
        for image_id, title in titles.items()
    ]
    await ingest_all(pipeline, copies)
    query = resized_copy(sample_path(root, "img-00003"), 0.5)

    for words, expected in (("orchard", "copy-b"), ("harbour", "copy-a"), ("blue", "copy-c")):
        status, lines = await pipeline.search(query, q=words)
        assert status == 200
        duplicates = [h["image_id"] for h in lines if h.get("match") == "duplicate"]
        assert sorted(duplicates) == sorted(titles)
        assert duplicates[0] == expected, (words, duplicates)
        assert lines[-1]["warnings"] == []
