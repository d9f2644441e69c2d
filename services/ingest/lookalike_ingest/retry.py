"""What to do when a step fails: retry our own backends until they are back, dead-letter
an event that can never be applied."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from aiokafka.errors import KafkaError
from elasticsearch import ConflictError, NotFoundError
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import TransportError as ESTransportError
from elasticsearch.exceptions import ApiError

from . import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class PermanentFailure(Exception):
    """This event can never be applied: dead-letter it with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BackendUnavailable(Exception):
    """A backend answered, but not usefully (a bulk item it could not take now, a document
    it could not read): worth retrying, like a connection error."""


def backoff_delays(base: float, cap: float) -> Iterator[float]:
    """Capped exponential backoff with full jitter (spreads retries of many workers)."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap, base * 2**attempt))
        attempt += 1


# Statuses that blame the request itself (a document the mapping refuses, one too large):
# sending it again can never succeed. Any other refusal is about Elasticsearch's state
# (overload, 5xx, a read-only block on a full disk, a missing index or alias, credentials)
# and passes once that is put right: never the event's fault, so never dead-lettered.
REQUEST_FAULTS = frozenset({400, 413})


def is_retryable_status(status: int) -> bool:
    """Elasticsearch statuses that say "not now" rather than "never"."""
    return status not in REQUEST_FAULTS and status != 409


class Backoff:
    def __init__(self, base_seconds: float, cap_seconds: float) -> None:
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds

    def delays(self) -> Iterator[float]:
        return backoff_delays(self.base_seconds, self.cap_seconds)

    async def retry_backend(
        self, name: str, call: Callable[[], Awaitable[T]], events: int = 1
    ) -> T:
        """Our own backends being away is never the events' fault: retry until they are back
        (the partition waits, nothing is lost, the lag metric shows it). `events` is how
        many events wait on this call, so the `retried` counter counts events, as it did
        when each event made its own calls."""
        delays = self.delays()
        while True:
            try:
                return await call()
            except (ConflictError, NotFoundError):
                raise
            except ApiError as exc:
                if not is_retryable_status(exc.meta.status):
                    raise PermanentFailure(
                        "elasticsearch_rejected", f"{name}: {exc.meta.status} {exc}"
                    ) from exc
                error: Exception = exc
            except (
                BackendUnavailable,
                ESConnectionError,
                ESTransportError,
                KafkaError,
                OSError,
                TimeoutError,
            ) as exc:
                error = exc
            metrics.EVENTS.labels("retried").inc(events)
            log.warning(
                "backend unavailable, retrying", extra={"stage": name, "error": repr(error)}
            )
            await asyncio.sleep(next(delays))
