"""Apply one catalogue event: the fingerprint record and the search document.

    upserted --(stale? compare with the indexed version)--> fetch --> fingerprint (pool)
             --> fingerprint record on the compacted topic (the matcher's registration)
             --> search document, written with external versioning
    deleted  --> tombstone on the compacted topic --> versioned delete in Elasticsearch

Each write is idempotent and version-guarded, so a redelivered event changes nothing and
replaying a partition's suffix converges to the catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from elasticsearch import (
    AsyncElasticsearch,
    ConflictError,
    NotFoundError,
)
from elasticsearch import (
    ConnectionError as ESConnectionError,
)
from elasticsearch import (
    TransportError as ESTransportError,
)
from elasticsearch.exceptions import ApiError

from lookalike_shared.contracts import FingerprintRecord
from lookalike_shared.events import CatalogueEvent, ImageRemoved, ImageUpserted
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import fingerprint_in_pool
from lookalike_shared.search_index import search_document

from . import metrics
from .settings import IngestSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class PermanentFailure(Exception):
    """This event can never be applied: dead-letter it with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def backoff_delays(base: float, cap: float) -> Iterator[float]:
    """Capped exponential backoff with full jitter (spreads retries of many workers)."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap, base * 2**attempt))
        attempt += 1


class EventHandler:
    def __init__(
        self,
        settings: IngestSettings,
        es: AsyncElasticsearch,
        producer: AIOKafkaProducer,
        fetcher: ImageFetcher,
        pool: ProcessPoolExecutor,
    ) -> None:
        self.settings = settings
        self.es = es
        self.producer = producer
        self.fetcher = fetcher
        self.pool = pool

    async def apply(self, event: CatalogueEvent) -> str:
        """Returns the outcome: indexed, deleted or stale. Raises PermanentFailure."""
        if isinstance(event, ImageUpserted):
            return await self._upsert(event)
        return await self._delete(event)

    async def _upsert(self, event: ImageUpserted) -> str:
        if await self._indexed_version(event.image_id) >= event.version:
            return "stale"
        data = await self._fetch(event.image.image_url)
        with metrics.STAGE_SECONDS.labels("fingerprint").time():
            try:
                fingerprint = await fingerprint_in_pool(self.pool, data)
            except ImageRejected as exc:
                raise PermanentFailure(exc.code, str(exc)) from exc
        record = FingerprintRecord(
            image_id=event.image_id,
            version=event.version,
            fingerprint=fingerprint,
            indexed_at=datetime.now(UTC),
        )
        with metrics.STAGE_SECONDS.labels("publish").time():
            await self.retry_backend(
                "publish",
                lambda: self.producer.send_and_wait(
                    self.settings.fingerprint_topic,
                    key=event.image_id.encode(),
                    value=record.model_dump_json().encode(),
                ),
            )
        document = search_document(event.image, fingerprint)
        document["indexed_at"] = record.indexed_at.isoformat()
        with metrics.STAGE_SECONDS.labels("elasticsearch").time():
            try:
                await self.retry_backend(
                    "elasticsearch",
                    lambda: self.es.index(
                        index=self.settings.es_alias,
                        id=event.image_id,
                        document=document,
                        version=event.version,
                        version_type="external",
                    ),
                )
            except ConflictError:
                return "stale"  # a newer version landed meanwhile
        return "indexed"

    async def _delete(self, event: ImageRemoved) -> str:
        if await self._indexed_version(event.image_id) >= event.version:
            return "stale"
        with metrics.STAGE_SECONDS.labels("publish").time():
            await self.retry_backend(
                "publish",
                lambda: self.producer.send_and_wait(
                    self.settings.fingerprint_topic, key=event.image_id.encode(), value=None
                ),
            )
        with metrics.STAGE_SECONDS.labels("elasticsearch").time():
            try:
                await self.retry_backend(
                    "elasticsearch",
                    lambda: self.es.delete(
                        index=self.settings.es_alias,
                        id=event.image_id,
                        version=event.version,
                        version_type="external",
                    ),
                )
            except NotFoundError:
                pass  # never indexed, or already gone: the catalogue agrees
            except ConflictError:
                return "stale"
        return "deleted"

    async def _indexed_version(self, image_id: str) -> int:
        try:
            found = await self.retry_backend(
                "elasticsearch",
                lambda: self.es.get(index=self.settings.es_alias, id=image_id, source=False),
            )
        except NotFoundError:
            return -1
        return int(found["_version"])

    async def _fetch(self, url: str) -> bytes:
        delays = backoff_delays(
            self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds
        )
        for attempt in range(1, self.settings.fetch_max_attempts + 1):
            try:
                with metrics.STAGE_SECONDS.labels("fetch").time():
                    data = await self.fetcher.fetch(url)
                metrics.FETCHED_BYTES.inc(len(data))
                return data
            except FetchError as exc:
                if not exc.transient:
                    raise PermanentFailure(exc.code, str(exc)) from exc
                if attempt == self.settings.fetch_max_attempts:
                    raise PermanentFailure(
                        "fetch_gave_up", f"{exc} (after {attempt} attempts)"
                    ) from exc
                metrics.EVENTS.labels("retried").inc()
                log.warning("fetch failed, retrying", extra={"url": url, "error": str(exc)})
                await asyncio.sleep(next(delays))
        raise AssertionError("unreachable")

    async def retry_backend(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        """Our own backends being away is never the event's fault: retry until they are back
        (the partition waits, nothing is lost, the lag metric shows it)."""
        delays = backoff_delays(
            self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds
        )
        while True:
            try:
                return await call()
            except (ConflictError, NotFoundError):
                raise
            except ApiError as exc:
                if exc.meta.status < 500 and exc.meta.status != 429:
                    raise PermanentFailure(
                        "elasticsearch_rejected", f"{name}: {exc.meta.status} {exc}"
                    ) from exc
                error: Exception = exc
            except (ESConnectionError, ESTransportError, KafkaError, OSError, TimeoutError) as exc:
                error = exc
            metrics.EVENTS.labels("retried").inc()
            log.warning(
                "backend unavailable, retrying", extra={"stage": name, "error": repr(error)}
            )
            await asyncio.sleep(next(delays))
