from prometheus_client import Counter, Gauge, Histogram

from lookalike_shared.metrics import service_registry

# This service's own metrics, apart from any other service in the same process.
REGISTRY = service_registry()

EVENTS = Counter(
    "lookalike_ingest_events",
    "Catalogue events handled, by outcome (indexed, deleted, stale, dlq, retried, skipped).",
    ["outcome"],
    registry=REGISTRY,
)
DLQ = Counter(
    "lookalike_ingest_dlq",
    "Events sent to the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
EVENT_SECONDS = Histogram(
    "lookalike_ingest_event_duration_seconds",
    "Time from taking an event to having applied it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "lookalike_ingest_stage_duration_seconds",
    "Time per stage: fetch and fingerprint per image; publish (until the broker acknowledged "
    "a batch's fingerprint records) and elasticsearch (a batch's bulk write) per batch.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
FETCHED_BYTES = Counter("lookalike_ingest_fetched_bytes", "Image bytes fetched.", registry=REGISTRY)
IN_FLIGHT = Gauge("lookalike_ingest_in_flight", "Events being processed now.", registry=REGISTRY)
LAG = Gauge(
    "lookalike_ingest_consumer_lag",
    "Records behind the end of each partition.",
    ["partition"],
    registry=REGISTRY,
)

# Every label value exists from the start at 0, so rate() sees the first increase and
# dashboards show a flat line instead of "no data".
OUTCOMES = ("indexed", "deleted", "stale", "dlq", "retried", "skipped")
DLQ_REASONS = (
    "invalid_event",
    "invalid_document",
    "unprocessable_event",
    "empty_image",
    "not_an_image",
    "corrupt_image",
    "decompression_bomb",
    "image_too_large",
    "image_too_small",
    "image_too_narrow",
    "unprocessable_image",
    "image_kills_workers",
    "unsupported_format",
    "fetch_not_found",
    "fetch_refused",
    "fetch_gave_up",
    "url_forbidden",
    "url_invalid",
    "too_many_redirects",
    "elasticsearch_rejected",
)
for _outcome in OUTCOMES:
    EVENTS.labels(_outcome)
for _reason in DLQ_REASONS:
    DLQ.labels(_reason)
for _stage in ("fetch", "fingerprint", "publish", "elasticsearch"):
    STAGE_SECONDS.labels(_stage)
