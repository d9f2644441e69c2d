from prometheus_client import Counter, Gauge, Histogram

from lookalike_shared.metrics import service_registry

# This service's own metrics, apart from any other service in the same process.
REGISTRY = service_registry()

INDEX_IMAGES = Gauge("lookalike_matcher_index_images", "Images in the index.", registry=REGISTRY)
INDEX_ENTRIES = Gauge(
    "lookalike_matcher_index_entries", "Hash entries (content and regions).", registry=REGISTRY
)
MEMORY_BYTES = Gauge(
    "lookalike_matcher_index_memory_bytes",
    "RAM held by the index's arrays and id map.",
    registry=REGISTRY,
)
KEYPOINT_POSTINGS = Gauge(
    "lookalike_matcher_keypoint_postings",
    "Descriptor-key postings, in memory-mapped segment files (8 bytes each); deleted images'"
    " stay until the index compacts.",
    registry=REGISTRY,
)
READY = Gauge(
    "lookalike_matcher_ready", "1 when the index has caught up with the topic.", registry=REGISTRY
)
SEARCH_SECONDS = Histogram(
    "lookalike_matcher_search_duration_seconds",
    "Search time by stage: fingerprint (uploads only), hash, local (descriptor keys), verify,"
    " total.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    registry=REGISTRY,
)
VERIFY_CANDIDATES = Histogram(
    "lookalike_matcher_verify_candidates",
    "Candidates sent to verification per query.",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
    registry=REGISTRY,
)
REPLAY_LAG_RECORDS = Gauge(
    "lookalike_matcher_replay_lag_records", "Records not yet applied.", registry=REGISTRY
)
REPLAY_LAG_SECONDS = Gauge(
    "lookalike_matcher_replay_lag_seconds",
    "Age of the oldest record not yet applied.",
    registry=REGISTRY,
)
RECORDS_SKIPPED = Counter(
    "lookalike_matcher_records_skipped",
    "Fingerprint records the replay could not apply and skipped, by reason (unreadable: not a "
    "valid record; unappliable: the index refused it).",
    ["reason"],
    registry=REGISTRY,
)
REMEMBERED_DELETIONS = Gauge(
    "lookalike_matcher_remembered_deletions",
    "Deleted images whose delete version is kept, so older upserts arriving late are refused.",
    registry=REGISTRY,
)
for _reason in ("unreadable", "unappliable"):
    RECORDS_SKIPPED.labels(_reason)
