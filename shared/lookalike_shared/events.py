"""Turn a Kafka record from the catalogue topic into a typed event, or say exactly why not.

Accepted shapes (docs/architecture.md):
- CloudEvents structured mode: the value is the JSON envelope
  (header `content-type: application/cloudevents+json`, or a value with `specversion`);
- CloudEvents binary mode: `ce_*` headers carry the envelope, the value is `data`;
- a Debezium outbox-routed event: an `id` header, the value is the payload (a JSON object,
  or a JSON string holding one when the router did not expand it), the type in an
  `eventType`/`type` header or inferred from the payload.
A record with no value (a tombstone) is skipped, anything else raises InvalidEvent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .contracts import DELETED, UPSERTED, CatalogueImage, CloudEvent, ImageDeleted

Headers = Sequence[tuple[str, bytes | None]]
MAX_EVENT_BYTES = 1_000_000  # a catalogue event is metadata; a megabyte means something is wrong
MAX_EVENT_DEPTH = 32  # objects and lists within each other: metadata is a few levels deep


class InvalidEvent(ValueError):
    """A record that can never be processed: it goes to the dead-letter topic."""

    code = "invalid_event"


@dataclass(frozen=True)
class ImageUpserted:
    event_id: str
    image: CatalogueImage

    @property
    def image_id(self) -> str:
        return self.image.image_id

    @property
    def version(self) -> int:
        return self.image.version


@dataclass(frozen=True)
class ImageRemoved:
    event_id: str
    image_id: str
    version: int


CatalogueEvent = ImageUpserted | ImageRemoved


def header_map(headers: Headers | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is not None:
            out[name.lower()] = raw.decode("utf-8", "replace")
    return out


def parse_catalogue_record(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> CatalogueEvent | None:
    """Return the event, None for a tombstone, or raise InvalidEvent with the reason."""
    if value is None:
        return None
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {len(value)} bytes, over the {MAX_EVENT_BYTES} limit")
    hdrs = header_map(headers)
    if "ce_specversion" in hdrs:
        envelope = _binary_mode_envelope(hdrs, value)
    else:
        body = _json(value)
        if isinstance(body, dict) and "specversion" in body:
            envelope = body
        elif "id" in hdrs:
            envelope = _outbox_envelope(hdrs, body)
        else:
            raise InvalidEvent(
                "not a CloudEvent (no specversion, no ce_* headers) "
                "nor an outbox event (no id header)"
            )
    try:
        event = CloudEvent.model_validate(envelope)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid CloudEvent envelope: {_errors(exc)}") from exc
    result = _typed(event)
    if key is not None and key.decode("utf-8", "replace") != result.image_id:
        raise InvalidEvent(
            f"record key {key!r} differs from data.image_id {result.image_id!r}: "
            "per-image ordering needs the key to be the image id"
        )
    return result


def _typed(event: CloudEvent) -> CatalogueEvent:
    try:
        if event.type == UPSERTED:
            return ImageUpserted(event.id, CatalogueImage.model_validate(event.data))
        if event.type == DELETED:
            removed = ImageDeleted.model_validate(event.data)
            return ImageRemoved(event.id, removed.image_id, removed.version)
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {event.type} data: {_errors(exc)}") from exc
    raise InvalidEvent(f"unknown event type {event.type!r}; expected {UPSERTED} or {DELETED}")


def _binary_mode_envelope(hdrs: dict[str, str], value: bytes) -> dict[str, Any]:
    envelope: dict[str, Any] = {k[3:]: v for k, v in hdrs.items() if k.startswith("ce_")}
    content_type = hdrs.get("content-type", "application/json")
    if "json" not in content_type:
        raise InvalidEvent(f"binary-mode event with non-JSON content-type {content_type!r}")
    envelope["datacontenttype"] = content_type
    envelope["data"] = _json(value)
    return envelope


def _outbox_envelope(hdrs: dict[str, str], body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and "payload" in body and "image_id" not in body:
        body = body["payload"]  # the router's envelope left in place
    if isinstance(body, str):
        body = _json(body.encode())  # payload column stored as text, not expanded
    if not isinstance(body, dict):
        raise InvalidEvent("outbox payload is not a JSON object")
    event_type = hdrs.get("eventtype") or hdrs.get("type") or body.get("type")
    if event_type in (None, "upserted", "ImageUpserted"):
        event_type = UPSERTED if "image_url" in body else event_type
    if event_type in ("deleted", "ImageDeleted"):
        event_type = DELETED
    return {
        "specversion": "1.0",
        "id": hdrs["id"],
        "source": hdrs.get("source", "debezium-outbox"),
        "type": event_type or "",
        "data": body,
    }


def _json(raw: bytes) -> Any:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    except RecursionError:
        value = None  # nested thousands deep: refused below like any too-deep value
        depth = MAX_EVENT_DEPTH + 1
    else:
        depth = nesting_depth(value)
    if depth > MAX_EVENT_DEPTH:
        raise InvalidEvent(f"value is nested more than {MAX_EVENT_DEPTH} levels deep")
    return value


def nesting_depth(value: Any) -> int:
    """How many objects and lists lie within each other in a parsed JSON value (without
    recursion, so a hostile value cannot exhaust the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend(
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors()[:5]
    )


def cloudevent_json(event_type: str, data: dict[str, Any], event_id: str, source: str) -> bytes:
    """Structured-mode value, as the catalogue publishes it (used by the sample loader)."""
    from datetime import UTC, datetime

    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "subject": data["image_id"],
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(envelope).encode()


CLOUDEVENT_HEADERS = [("content-type", b"application/cloudevents+json")]
