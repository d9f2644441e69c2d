"""Each service's own metrics registry: its own families, plus the process and Python
collectors the process-global default registry holds (process_*, python_*)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector


def service_registry() -> CollectorRegistry:
    """A registry for one service's metrics, so that its /metrics shows its own families
    only, even when other services run in the same process (as in tests)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
