from __future__ import annotations

import json

import pytest

from lookalike_shared.contracts import UPSERTED
from lookalike_shared.events import (
    ImageRemoved,
    ImageUpserted,
    InvalidEvent,
    cloudevent_json,
    parse_catalogue_record,
)

DATA = {
    "image_id": "img-00042",
    "version": 7,
    "image_url": "https://cdn.example/img-00042.jpg",
    "title": "Water Lilies",
    "creator": "Claude Monet",
    "year": 1906,
    "medium": "oil on canvas",
    "tags": ["impressionism"],
    "license": "rm",
}
ENVELOPE = {
    "specversion": "1.0",
    "id": "9b2f",
    "source": "/catalogue",
    "type": "catalogue.image.upserted",
    "subject": "img-00042",
    "time": "2026-11-24T10:00:00Z",
    "datacontenttype": "application/json",
    "data": DATA,
}
STRUCTURED = [("content-type", b"application/cloudevents+json")]


def test_structured_cloudevent_from_the_design_contract_parses() -> None:
    event = parse_catalogue_record(b"img-00042", json.dumps(ENVELOPE).encode(), STRUCTURED)
    assert isinstance(event, ImageUpserted)
    assert (event.image_id, event.version, event.image.title) == ("img-00042", 7, "Water Lilies")


def test_binary_mode_cloudevent_parses_from_ce_headers() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"e-1"),
        ("ce_source", b"/catalogue"),
        ("ce_type", b"catalogue.image.deleted"),
        ("content-type", b"application/json"),
    ]
    event = parse_catalogue_record(
        b"img-00042", b'{"image_id": "img-00042", "version": 8}', headers
    )
    assert event == ImageRemoved("e-1", "img-00042", 8)


def test_debezium_outbox_event_with_unexpanded_payload_parses() -> None:
    value = json.dumps(json.dumps(DATA)).encode()  # payload column stored as a JSON string
    event = parse_catalogue_record(
        b"img-00042", value, [("id", b"outbox-1"), ("eventType", b"catalogue.image.upserted")]
    )
    assert isinstance(event, ImageUpserted) and event.event_id == "outbox-1"


def test_tombstone_on_the_catalogue_topic_is_skipped() -> None:
    assert parse_catalogue_record(b"img-00042", None, []) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "not JSON"),
        (b"%PDF-1.4 not an event", "not JSON"),
        (b'{"hello": "world"}', "not a CloudEvent"),
        (
            json.dumps({**ENVELOPE, "data": {"image_id": "img-00042", "version": 7}}).encode(),
            "image_url",
        ),
        (json.dumps({**ENVELOPE, "data": {**DATA, "version": -1}}).encode(), "version"),
        (
            json.dumps({**ENVELOPE, "type": "catalogue.image.renamed"}).encode(),
            "unknown event type",
        ),
        (json.dumps({**ENVELOPE, "specversion": "0.3"}).encode(), "specversion"),
        (json.dumps({**ENVELOPE, "data": {**DATA, "image_id": "../etc"}}).encode(), "image_id"),
    ],
)
def test_malformed_events_are_rejected_with_the_reason(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        parse_catalogue_record(b"img-00042", value, STRUCTURED)


def test_event_whose_key_is_not_its_image_id_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="key"):
        parse_catalogue_record(b"img-other", json.dumps(ENVELOPE).encode(), STRUCTURED)


@pytest.mark.parametrize("depth", [33, 5000, 100_000])
def test_an_event_nested_too_deep_is_invalid_not_a_crash(depth: int) -> None:
    extra = "[" * depth + "]" * depth  # raw text: no JSON encoder would write it for us
    value = (
        '{"specversion": "1.0", "id": "e1", "source": "/t", '
        '"type": "catalogue.image.upserted", "data": {"image_id": "deep", "version": 1, '
        f'"image_url": "https://cdn.example/x.jpg", "provenance": {extra}}}}}'
    ).encode()

    with pytest.raises(InvalidEvent, match="nested more than"):
        parse_catalogue_record(b"deep", value, None)


def test_a_version_beyond_a_signed_64_bit_long_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="version"):
        parse_catalogue_record(
            b"big",
            cloudevent_json(
                UPSERTED,
                {"image_id": "big", "version": 2**63, "image_url": "https://x.example/a.jpg"},
                "e2",
                "/t",
            ),
            None,
        )
