"""Whatever a careless catalogue or a stranger's image sends, a batch neither raises nor
half-applies: each event is applied (its fingerprint record published), stale, or
dead-lettered, and never both applied and dead-lettered. Generated events and image bytes
go through the real batch logic on the real broker and Elasticsearch-API server."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lookalike_shared.contracts import DELETED, UPSERTED, VERSION_HEADER
from lookalike_shared.events import CLOUDEVENT_HEADERS, cloudevent_json
from lookalike_shared.kafka import make_producer
from tests.fixtures.ingest import HandFedBatches, read_topic

MAPPED_NAMES = ["decade", "deleted", "tags", "title", "year", "width", "colors", "palette", "x"]
BAD_URLS = [
    "http://[x]/a.png",
    "http://[::1",
    "http://127\u30020\u30020\u30021:9/x.png",
    "http://\u2460\u2461\u2466.0.0.1/x.png",
    "ftp://example.org/a.png",
    "",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["noise", "flat", "truncated", "junk"]))
    if kind == "junk":
        return draw(st.binary(max_size=300))
    # Sizes at the edges as often as ordinary ones: strips, slivers, a few pixels.
    width, height = draw(
        st.sampled_from([(2000, 8), (8, 2000), (5000, 9), (300, 8), (9, 9), (7, 40)])
        | st.tuples(st.integers(1, 2500), st.integers(1, 400))
    )
    if kind == "flat":
        image = Image.new("RGB", (width, height), (200, 30, 90))
    else:
        image = Image.effect_noise((width, height), 60).convert("RGB")
    out = io.BytesIO()
    image.save(out, draw(st.sampled_from(["PNG", "JPEG"])))
    data = out.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else data


@st.composite
def catalogue_events(draw: st.DrawFn, root: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of 1-4 events; ids are fresh per example, (id, version) never repeats."""
    run = uuid.uuid4().hex[:8]
    out: list[tuple[bytes, bytes]] = []
    seen: set[tuple[str, object]] = set()
    for _ in range(draw(st.integers(1, 4))):
        ids = [f"p{run}-a", f"p{run}-b"]
        image_id = draw(st.sampled_from(ids) if draw(st.integers(0, 5)) else st.text(max_size=8))
        version = draw(st.integers(0, 12) | st.sampled_from([-1, 2**63, 2**70]))
        if (image_id, version) in seen:
            continue
        seen.add((image_id, version))
        key = image_id if draw(st.integers(0, 9)) else f"other-{run}"
        if draw(st.booleans()):
            data: dict[str, Any] = {"image_id": image_id, "version": version}
            value = cloudevent_json(DELETED, data, uuid.uuid4().hex, "/props")
        else:
            path = root / f"prop-{uuid.uuid4().hex}.img"
            path.write_bytes(draw(image_bytes()))
            url = path.as_uri() if draw(st.integers(0, 2)) else draw(st.sampled_from(BAD_URLS))
            extras = draw(st.dictionaries(st.sampled_from(MAPPED_NAMES), json_values, max_size=3))
            data = {**extras, "image_id": image_id, "version": version, "image_url": url}
            value = cloudevent_json(UPSERTED, data, uuid.uuid4().hex, "/props")
        if not draw(st.integers(0, 14)):
            value = value[: len(value) // 2]  # cut short: not JSON
        out.append((key.encode("utf-8", "replace"), value))
    return out


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}


@settings(
    max_examples=30,
    derandomize=True,  # the same examples on every run: CI does not depend on luck
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_each_generated_event_is_applied_stale_or_dead_lettered_never_both(
    hand_fed_batches: HandFedBatches,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    data: st.DataObject,
) -> None:
    root, _ = sample_catalogue
    events = data.draw(catalogue_events(root))
    settings_ = hand_fed_batches.settings
    producer = make_producer(settings_)
    await producer.start()
    try:
        for key, value in events:
            await producer.send_and_wait(
                settings_.catalogue_topic, key=key, value=value, headers=CLOUDEVENT_HEADERS
            )
    finally:
        await producer.stop()

    batch = await hand_fed_batches.apply_new()  # must not raise, whatever the events

    dead = {
        (int(h["lookalike.error.partition"]), int(h["lookalike.error.offset"]))
        for h in map(_headers, await read_topic(settings_.kafka_bootstrap, settings_.dlq_topic))
    }
    published = {
        (r.key, _headers(r).get(VERSION_HEADER))
        for r in await read_topic(settings_.kafka_bootstrap, settings_.fingerprint_topic)
    }
    held: dict[bytes, int] = {}  # per key, the newest version this batch applied
    for record in sorted(batch, key=lambda r: (r.partition, r.offset)):
        body = _event_data(record.value)
        version = body.get("version") if body else None
        applied = (record.key, str(version)) in published
        if (record.partition, record.offset) in dead:
            assert not applied, f"{record.key!r} v{version} both applied and dead-lettered"
        elif applied:
            held[record.key] = int(version)  # type: ignore[arg-type]
        else:
            stale = isinstance(version, int) and version <= held.get(record.key, -1)
            assert stale, f"{record.key!r} v{version} neither applied nor dead-lettered"


def _event_data(value: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(value)["data"]
    except (ValueError, KeyError, TypeError):
        return None
    return data if isinstance(data, dict) else None
