"""Turn one catalogue event into the two writes it needs, without making them:

    upserted --> fetch --> fingerprint + embedding (pool, one decode) --> fingerprint record
                                                                      + search document
    deleted  --> tombstone (with the deleted version) + deletion marker

The batch (batch.py) decides first whether the event is stale, then publishes the record
on the compacted topic and writes the document with the rest of the batch, so the
per-event work here is only what cannot be shared: fetching and fingerprinting. Whatever
the event's own content makes fail here (its URL, its bytes, its fields) is a
PermanentFailure, raised before anything is written: the event is dead-lettered and
changes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from lookalike_shared.analysis import ImageAnalysis
from lookalike_shared.contracts import FingerprintRecord
from lookalike_shared.events import CatalogueEvent, ImageUpserted
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import CallKillsWorkers, PoolUnavailable, WorkerPool, analyse_in_pool
from lookalike_shared.profile import CatalogueProfile, enrichment
from lookalike_shared.search_index import InvalidDocument, search_document

from . import metrics
from .retry import Backoff, PermanentFailure
from .search_writes import SearchWrite
from .settings import IngestSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedEvent:
    """What applying an event takes: the value for the compacted topic (None is the
    tombstone of a delete) and the search write."""

    record_value: bytes | None
    write: SearchWrite


class EventHandler:
    def __init__(
        self,
        settings: IngestSettings,
        fetcher: ImageFetcher,
        pool: WorkerPool,
        backoff: Backoff,
        profile: CatalogueProfile | None = None,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.pool = pool
        self.backoff = backoff
        self.profile = profile  # with one, only lookalike's own fields are written

    async def prepare(self, event: CatalogueEvent) -> PreparedEvent:
        """Raises PermanentFailure when the event can never be applied."""
        if not isinstance(event, ImageUpserted):
            return PreparedEvent(None, SearchWrite(event.image_id, event.version, None))
        data = await self._fetch(event.image.image_url)
        with metrics.STAGE_SECONDS.labels("fingerprint").time():
            try:
                analysis = await self._analyse(data)
            except ImageRejected as exc:
                raise PermanentFailure(exc.code, str(exc)) from exc
        # The record stays lean: the matcher needs the fingerprint, not the embedding.
        record = FingerprintRecord(
            image_id=event.image_id,
            version=event.version,
            fingerprint=analysis.fingerprint,
            indexed_at=datetime.now(UTC),
        )
        try:
            if self.profile is None:
                document = search_document(event.image, analysis, record.indexed_at)
            else:
                document = enrichment(
                    analysis, event.version, event.image.image_url, record.indexed_at
                )
        except InvalidDocument as exc:
            raise PermanentFailure("invalid_document", str(exc)) from exc
        return PreparedEvent(
            record.model_dump_json().encode(),
            SearchWrite(event.image_id, event.version, document),
        )

    async def _analyse(self, data: bytes) -> ImageAnalysis:
        """No worker process to run it is our own backend failing, never the event's
        fault: wait for the pool to heal (the partition waits, nothing is dead-lettered)."""
        delays = self.backoff.delays()
        while True:
            try:
                return await analyse_in_pool(self.pool, data)
            except CallKillsWorkers as exc:
                # Fresh workers died on this very image twice (out of memory, say): it is
                # the image, not the pool. Dead-letter it, or it would stall its partition.
                raise PermanentFailure("image_kills_workers", str(exc)) from exc
            except PoolUnavailable as exc:
                metrics.EVENTS.labels("retried").inc()
                log.warning("worker pool unavailable, retrying", extra={"error": str(exc)})
                await asyncio.sleep(next(delays))

    async def _fetch(self, url: str) -> bytes:
        delays = self.backoff.delays()
        for attempt in range(1, self.settings.fetch_max_attempts + 1):
            try:
                with metrics.STAGE_SECONDS.labels("fetch").time():
                    data = await self.fetcher.fetch(url)
                metrics.FETCHED_BYTES.inc(len(data))
                return data
            except FetchError as exc:
                if not exc.transient:
                    raise PermanentFailure(exc.code, exc.for_operators()) from exc
                if attempt == self.settings.fetch_max_attempts:
                    raise PermanentFailure(
                        "fetch_gave_up", f"{exc.for_operators()} (after {attempt} attempts)"
                    ) from exc
                metrics.EVENTS.labels("retried").inc()
                log.warning("fetch failed, retrying", extra={"url": url, "error": str(exc)})
                await asyncio.sleep(next(delays))
        raise AssertionError("unreachable")
