"""Timing a request's backend calls: each under its own deadline, each recorded in the
request's timeline, so the done line can say where the time went and how much was the
gateway's own. A call that fails or times out raises BackendFailed with a message fit for
the client (which part of the answer is missing); the cause goes to the log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

from elasticsearch import ApiError, TransportError

from . import metrics
from .matcher_client import MatcherUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)


class BackendFailed(Exception):
    def __init__(self, backend: str, message: str) -> None:
        super().__init__(message)
        self.backend = backend


class Timeline:
    """When each backend call of one request ran, so the answer can say where its time went
    and how much was the gateway's own (no backend call in flight)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.calls: list[tuple[str, float, float]] = []
        self.first_hit: float | None = None

    def record(self, backend: str, start: float, end: float) -> None:
        self.calls.append((backend, start, end))

    def summary(self) -> dict[str, float | None]:
        now = time.perf_counter()
        out: dict[str, float | None] = {}
        for backend, start, end in self.calls:
            out[backend] = round((out.get(backend) or 0.0) + (end - start) * 1000, 2)
            if backend == "es_keyword" and "es_keyword_done_at" not in out:
                out["es_keyword_done_at"] = round((end - self.started) * 1000, 2)
        busy, reach = 0.0, self.started
        for _, start, end in sorted(self.calls, key=lambda c: c[1]):
            start = max(start, reach)
            if end > start:
                busy += end - start
                reach = end
        out["first_hit_at"] = (
            round((self.first_hit - self.started) * 1000, 2) if self.first_hit else None
        )
        out["gateway"] = round((now - self.started - busy) * 1000, 2)
        return out


_TIMELINE: ContextVar[Timeline | None] = ContextVar("lookalike_timeline", default=None)


def start_timeline() -> Timeline:
    """Begin timing a request; backend calls made from this task (and tasks it starts)
    record themselves in it."""
    timeline = Timeline()
    _TIMELINE.set(timeline)
    return timeline


# What a client is told when a backend fails: which part of the answer is missing, never
# the backend's own error text or address (those go to the log).
UNAVAILABLE = {
    "matcher": "duplicates are unavailable right now",
    "es_similar": "look-alikes are unavailable right now",
    "es_keyword": "keyword results are unavailable right now",
    "es_hydrate": "image details are unavailable right now",
    "es_rerank": "ranking by the words is unavailable right now",
}


async def timed(backend: str, call: Awaitable[T], timeout: float) -> T:
    """Run one backend call under its own deadline, recording its duration."""
    started = time.perf_counter()
    message = UNAVAILABLE.get(backend, "part of the answer is unavailable right now")
    try:
        return await asyncio.wait_for(call, timeout)
    except TimeoutError as exc:
        log.warning("backend timed out", extra={"backend": backend, "timeout_s": timeout})
        raise BackendFailed(backend, message) from exc
    except (ApiError, TransportError, MatcherUnavailable, OSError) as exc:
        log.warning("backend failed", extra={"backend": backend, "error": repr(exc)[:500]})
        raise BackendFailed(backend, message) from exc
    finally:
        record_call(backend, started)


def record_call(backend: str, started: float) -> None:
    """A backend call (or the query's analysis) that began at `started` has ended."""
    ended = time.perf_counter()
    metrics.BACKEND_SECONDS.labels(backend).observe(ended - started)
    timeline = _TIMELINE.get()
    if timeline is not None:
        timeline.record(backend, started, ended)


def current_timeline() -> Timeline:
    """This request's timeline, started here if the request has none yet."""
    return _TIMELINE.get() or start_timeline()
