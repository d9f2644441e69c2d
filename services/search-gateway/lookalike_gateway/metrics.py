from prometheus_client import Counter, Gauge, Histogram

from lookalike_shared.metrics import service_registry

# This service's own metrics, apart from any other service in the same process.
REGISTRY = service_registry()

REQUESTS = Counter(
    "lookalike_gateway_requests",
    "HTTP requests by route and status class.",
    ["route", "status"],
    registry=REGISTRY,
)
SEARCH_SECONDS = Histogram(
    "lookalike_gateway_search_duration_seconds",
    "Time from request to the done line.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
FIRST_HIT_SECONDS = Histogram(
    "lookalike_gateway_first_hit_seconds",
    "Time from request to the first hit line.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BACKEND_SECONDS = Histogram(
    "lookalike_gateway_backend_duration_seconds",
    "Time of each backend call: fingerprint, matcher, es_keyword, es_similar, es_hydrate, "
    "es_rerank.",
    ["backend"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
WARNINGS = Counter(
    "lookalike_gateway_warnings",
    "Answers given without a backend's part.",
    ["backend"],
    registry=REGISTRY,
)
ES_SEARCHES_WAITING = Gauge(
    "lookalike_gateway_es_searches_waiting",
    "Elasticsearch searches waiting in the gateway for a slot "
    "(LOOKALIKE_ES_MAX_CONCURRENT_SEARCHES): above 0 for long, the cluster is the bottleneck.",
    registry=REGISTRY,
)
