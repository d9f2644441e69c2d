from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter(
    "lookalike_ingest_events",
    "Catalogue events handled, by outcome (indexed, deleted, stale, dlq, retried, skipped).",
    ["outcome"],
)
DLQ = Counter(
    "lookalike_ingest_dlq", "Events sent to the dead-letter topic, by reason.", ["reason"]
)
EVENT_SECONDS = Histogram(
    "lookalike_ingest_event_duration_seconds",
    "Time from taking an event to having applied it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_SECONDS = Histogram(
    "lookalike_ingest_stage_duration_seconds",
    "Time per stage: fetch, fingerprint, publish (matcher registration), elasticsearch.",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FETCHED_BYTES = Counter("lookalike_ingest_fetched_bytes", "Image bytes fetched.")
IN_FLIGHT = Gauge("lookalike_ingest_in_flight", "Events being processed now.")
LAG = Gauge(
    "lookalike_ingest_consumer_lag", "Records behind the end of each partition.", ["partition"]
)
