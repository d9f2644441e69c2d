"""The ingest worker against the real broker and Elasticsearch-API server: every permanent
failure is dead-lettered with its reason, versions decide, all event formats are read."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from lookalike_stack.catalogue import publish
from tests.fixtures.images import jpeg_bytes, sample_path
from tests.fixtures.ingest import es_ids, latest_fingerprints, read_topic
from tests.fixtures.services import Pipeline, wait_until


async def ingest_metric(pipeline: Pipeline, outcome: str) -> float:
    async with pipeline.http.get(f"{pipeline.ingest_url}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(f'lookalike_ingest_events_total{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    return 0.0


def _bad_files(root: Path) -> dict[str, str]:
    """file name -> the reason its event must be dead-lettered with."""
    run = uuid.uuid4().hex[:6]
    noise = jpeg_bytes(Image.effect_noise((300, 200), 50))
    (root / f"truncated-{run}.jpg").write_bytes(noise[: len(noise) // 3])
    (root / f"report-{run}.jpg").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj")
    (root / f"empty-{run}.jpg").write_bytes(b"")
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")
    (root / f"bomb-{run}.png").write_bytes(bomb.getvalue())
    with (root / f"huge-{run}.jpg").open("wb") as huge:
        huge.truncate(41 * 1024 * 1024)  # sparse: over the 40 MB limit without using the disk
    Image.effect_noise((2000, 8), 60).save(root / f"strip-{run}.png")
    return {
        (root / f"strip-{run}.png").as_uri(): "image_too_narrow",  # once a cv2.error
        "http://[x]/a.png": "url_invalid",
        "http://[::1": "url_invalid",
        f"file://{root}/a%00-{run}.png": "url_invalid",
        f"http://127\u30020\u30020\u30021:9/{run}.png": "url_forbidden",  # loopback in disguise
        (root / f"truncated-{run}.jpg").as_uri(): "corrupt_image",
        (root / f"report-{run}.jpg").as_uri(): "not_an_image",
        (root / f"empty-{run}.jpg").as_uri(): "empty_image",
        (root / f"bomb-{run}.png").as_uri(): "decompression_bomb",
        (root / f"huge-{run}.jpg").as_uri(): "image_too_large",
        (root / f"missing-{run}.jpg").as_uri(): "fetch_not_found",
        "file:///etc/passwd": "url_forbidden",
        f"file://{root}/../escape.jpg": "url_forbidden",
        "http://127.0.0.1:9/img.jpg": "url_forbidden",
        "http://169.254.169.254/latest/meta-data/": "url_forbidden",
        "ftp://example.org/a.jpg": "url_forbidden",
    }


async def test_each_permanent_failure_is_dead_lettered_with_its_reason_and_work_goes_on(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    root, catalogue = sample_catalogue
    bad = _bad_files(root)
    events = [
        {"image_id": f"bad-{n}", "version": 1, "image_url": url, "title": reason}
        for n, (url, reason) in enumerate(bad.items())
    ]
    # Rows whose image is fine but whose fields no store can take.
    good_file = sample_path(root, catalogue[5]["image_id"]).as_uri()
    for n, (change, reason) in enumerate(
        [
            ({"version": 2**70}, "invalid_event"),  # once stopped the matcher for good
            ({"provenance": _nested(500)}, "invalid_event"),  # deeper than metadata goes
            ({"tags": ["x" * 40_000]}, "invalid_document"),
        ]
    ):
        url = f"{good_file}?row={n}"
        events.append({"image_id": f"odd-{n}", "version": 1, "image_url": url, **change})
        bad[url] = reason
    await publish(pipeline.settings, [*events, catalogue[5]])
    settings = pipeline.settings

    async def all_handled() -> bool:
        return len(await read_topic(settings.kafka_bootstrap, settings.dlq_topic)) == len(bad)

    await wait_until(all_handled, timeout=60, what="every bad event in the dead-letter topic")
    await wait_until(lambda: _matcher_has(pipeline, 1), what="the good event after the bad ones")

    records = await read_topic(settings.kafka_bootstrap, settings.dlq_topic)
    reasons = {}
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["lookalike.error.topic"] == settings.catalogue_topic
        assert int(headers["lookalike.error.offset"]) >= 0
        assert headers["lookalike.error.message"]
        assert headers["content-type"] == "application/cloudevents+json"  # original headers kept
        original = json.loads(record.value)  # the original value, untouched
        reasons[original["data"]["image_url"]] = headers["lookalike.error.class"]
    assert reasons == bad
    assert set(es_ids(settings)) == {catalogue[5]["image_id"]}


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"a": value}
    return value


async def _matcher_has(pipeline: Pipeline, n: int) -> bool:
    return (await pipeline.matcher_stats())["images"] == n


async def test_stale_and_repeated_events_change_nothing(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    newer = {**catalogue[0], "version": 5, "title": "Newer title"}
    await publish(pipeline.settings, [newer])
    await wait_until(lambda: _matcher_has(pipeline, 1), what="the first version")
    stale_before = await ingest_metric(pipeline, "stale")

    older = {**catalogue[0], "version": 4, "title": "Older title"}
    await publish(pipeline.settings, [older, newer])  # out of date, then a redelivery
    await wait_until(
        lambda: _metric_reached(pipeline, "stale", stale_before + 2), what="two stale events"
    )
    assert es_ids(pipeline.settings) == {newer["image_id"]: 5}
    _, lines = await pipeline.search(q="Newer")
    assert [line["doc"]["title"] for line in lines if line["type"] == "hit"] == ["Newer title"]
    held = await latest_fingerprints(
        pipeline.settings.kafka_bootstrap, pipeline.settings.fingerprint_topic
    )
    assert held == {newer["image_id"]: 5}


async def _metric_reached(pipeline: Pipeline, outcome: str, value: float) -> bool:
    return await ingest_metric(pipeline, outcome) >= value


async def test_events_for_one_image_apply_in_order(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    image_id = "art-in-order"
    cat, rocket = catalogue[2], catalogue[7]
    await publish(pipeline.settings, [{**cat, "image_id": image_id, "version": 1}])
    await publish(pipeline.settings, deletes=[{"image_id": image_id, "version": 2}])
    await publish(pipeline.settings, [{**rocket, "image_id": image_id, "version": 3}])
    await wait_until(lambda: _es_version_is(pipeline, image_id, 3), what="the last of three events")
    held = await latest_fingerprints(
        pipeline.settings.kafka_bootstrap, pipeline.settings.fingerprint_topic
    )
    assert held == {image_id: 3}
    # The matcher follows the fingerprint topic on its own: it holds version 3 once it has
    # read that far, and never an older one on the way.
    await wait_until(
        lambda: _matcher_version_is(pipeline, image_id, 3), what="the matcher at version 3"
    )


async def _matcher_version_is(pipeline: Pipeline, image_id: str, version: int) -> bool:
    async with pipeline.http.get(f"{pipeline.matcher_url}/v1/images/{image_id}") as resp:
        if resp.status == 404:
            return False
        held = (await resp.json())["version"]
    assert held in (1, 3), held  # version 2 is the delete: nothing to hold
    return bool(held == version)


async def _es_version_is(pipeline: Pipeline, image_id: str, version: int) -> bool:
    return es_ids(pipeline.settings).get(image_id) == version


async def test_binary_mode_and_debezium_outbox_events_are_ingested(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    settings = pipeline.settings
    binary, outbox = catalogue[10], catalogue[11]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.catalogue_topic,
            key=binary["image_id"].encode(),
            value=json.dumps(binary).encode(),
            headers=[
                ("ce_specversion", b"1.0"),
                ("ce_id", b"b-1"),
                ("ce_source", b"/catalogue"),
                ("ce_type", b"catalogue.image.upserted"),
                ("content-type", b"application/json"),
            ],
        )
        await producer.send_and_wait(
            settings.catalogue_topic,
            key=outbox["image_id"].encode(),
            value=json.dumps(json.dumps(outbox)).encode(),
            headers=[("id", b"outbox-7"), ("eventType", b"catalogue.image.upserted")],
        )
        # A tombstone on the catalogue topic is skipped, not dead-lettered.
        await producer.send_and_wait(settings.catalogue_topic, key=b"gone", value=None)
    finally:
        await producer.stop()
    await wait_until(lambda: _matcher_has(pipeline, 2), what="both events")
    assert set(es_ids(settings)) == {binary["image_id"], outbox["image_id"]}
    assert await read_topic(settings.kafka_bootstrap, settings.dlq_topic) == []


async def ingest_samples(pipeline: Pipeline) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every sample of the worker's /metrics: (name, sorted labels) -> value."""
    async with pipeline.http.get(f"{pipeline.ingest_url}/metrics") as resp:
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_outcomes_and_stage_timings(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, catalogue = sample_catalogue
    before = await ingest_samples(pipeline)
    indexed = before.get(("lookalike_ingest_events_total", (("outcome", "indexed"),)), 0.0)
    await publish(pipeline.settings, catalogue[:3])
    await wait_until(lambda: _metric_reached(pipeline, "indexed", indexed + 3), what="3 indexed")
    after = await ingest_samples(pipeline)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    stage = "lookalike_ingest_stage_duration_seconds_count"
    assert grew(stage, stage="fetch") == 3 and grew(stage, stage="fingerprint") == 3
    assert grew(stage, stage="publish") >= 1 and grew(stage, stage="elasticsearch") >= 1
    images = sum(
        sample_path(pipeline.file_root, e["image_id"]).stat().st_size for e in catalogue[:3]
    )

    assert grew("lookalike_ingest_fetched_bytes_total") == images
