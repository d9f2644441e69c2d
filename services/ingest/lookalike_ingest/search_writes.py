"""The search documents of a batch: their indexed versions in one _mget, their writes in
one _bulk.

External versioning makes every write idempotent: Elasticsearch keeps a document only if
its version is higher than the one it holds, so a redelivered or out-of-date write is
refused with 409 (stale) and never overwrites a newer one. A delete writes a deletion
marker under its version (search_index.deletion_marker), so the version outlives the
image. Within a bulk, writes to one document id go to one shard and run in the order sent;
the batch sends each image's writes in catalogue order.

With a catalogue profile the documents are the library's: each write is a scripted partial
update of lookalike's namespace only, applied if its version is newer than the namespace's
(profile.guarded_update; "noop" is stale), and a delete leaves the version alone there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch, ConflictError, NotFoundError

from lookalike_shared.profile import CatalogueProfile, enrichment_removed, guarded_update
from lookalike_shared.search_index import deletion_marker

from . import metrics
from .retry import BackendUnavailable, Backoff, PermanentFailure, is_retryable_status

log = logging.getLogger(__name__)

NOT_INDEXED = -1  # below every catalogue version (they start at 0)
WriteResult = Literal["applied", "stale"] | PermanentFailure


@dataclass(frozen=True)
class SearchWrite:
    """One versioned write of an image's search document: index `document`, or mark the
    image deleted when it is None."""

    image_id: str
    version: int
    document: dict[str, Any] | None

    @property
    def is_delete(self) -> bool:
        return self.document is None


class SearchWrites:
    def __init__(
        self,
        es: AsyncElasticsearch,
        alias: str,
        backoff: Backoff,
        profile: CatalogueProfile | None = None,
    ) -> None:
        self.es = es
        self.alias = profile.alias if profile else alias
        self.backoff = backoff
        self.profile = profile

    async def indexed_versions(self, image_ids: Iterable[str]) -> dict[str, int | PermanentFailure]:
        """image id -> the version Elasticsearch holds (NOT_INDEXED if none), in one call;
        or the PermanentFailure to dead-letter the image's events with, if Elasticsearch
        refuses to say (a 4xx other than 404/409/429)."""
        ids = sorted(set(image_ids))
        if not ids:
            return {}
        try:
            return dict(
                await self.backoff.retry_backend(
                    "elasticsearch", lambda: self._mget(ids), events=len(ids)
                )
            )
        except NotFoundError:
            return dict.fromkeys(ids, NOT_INDEXED)  # no index behind the alias yet
        except PermanentFailure as exc:
            if len(ids) == 1:
                return {ids[0]: exc}
            # Refused as a whole: ask image by image, so a refusal dead-letters only the
            # events it concerns, as when every event looked its version up alone.
            versions: dict[str, int | PermanentFailure] = {}
            for image_id in ids:
                versions.update(await self.indexed_versions([image_id]))
            return versions

    async def _mget(self, ids: list[str]) -> dict[str, int]:
        if self.profile is None:
            # No _source: the version is in the metadata, and documents are kilobytes each.
            response = await self.es.mget(index=self.alias, ids=ids, source=False)
        else:
            version = self.profile.ours("version")
            response = await self.es.mget(index=self.alias, ids=ids, source_includes=[version])
        versions = {}
        for doc in response["docs"]:
            if doc.get("found"):
                versions[doc["_id"]] = self._version_of(doc)
            elif "error" not in doc or _error_type(doc) == "index_not_found_exception":
                versions[doc["_id"]] = NOT_INDEXED
            else:
                raise BackendUnavailable(f"mget {doc['_id']}: {doc['error']}")
        return versions

    def _version_of(self, doc: dict[str, Any]) -> int:
        if self.profile is None:
            return int(doc["_version"])
        own = doc.get("_source", {}).get(self.profile.index.namespace) or {}
        return int(own.get("version", NOT_INDEXED))

    def _operations(self, writes: Iterable[SearchWrite]) -> list[dict[str, Any]]:
        if self.profile is None:
            return _index_operations(writes)
        return _update_operations(self.profile, writes)

    async def write(self, writes: list[SearchWrite]) -> list[WriteResult]:
        """Apply the writes in one _bulk; one result per write, in order: applied, stale
        (409: Elasticsearch holds this version or a newer one), or the PermanentFailure to
        dead-letter it with (the document itself refused). Writes Elasticsearch could not
        take now (429, 5xx, a read-only block, a missing index) are sent again with backoff
        until it can: whatever depends on them (the offset commit) waits."""
        results: list[WriteResult | None] = [None] * len(writes)
        await self._write(writes, list(range(len(writes))), results)
        assert all(result is not None for result in results)
        return [result for result in results if result is not None]

    async def _write(
        self, writes: list[SearchWrite], pending: list[int], results: list[WriteResult | None]
    ) -> None:
        delays = self.backoff.delays()
        while pending:
            try:
                response = await self.backoff.retry_backend(
                    "elasticsearch",
                    partial(
                        self.es.bulk,
                        index=self.alias,
                        operations=self._operations(writes[n] for n in pending),
                    ),
                    events=len(pending),
                )
            except (PermanentFailure, ConflictError, NotFoundError) as exc:
                if len(pending) == 1:
                    if results[pending[0]] is None:
                        results[pending[0]] = _rejected(exc)
                    return
                # The whole request was refused (too large, say): send the writes one by
                # one, in order, so a refusal dead-letters only the event that caused it.
                for n in pending:
                    await self._write(writes, [n], results)
                return
            pending = _read_items(writes, pending, response["items"], results)
            if pending:
                metrics.EVENTS.labels("retried").inc(len(pending))
                log.warning(
                    "elasticsearch refused bulk items for now, retrying",
                    extra={"items": len(pending)},
                )
                await asyncio.sleep(next(delays))


def _index_operations(writes: Iterable[SearchWrite]) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for write in writes:
        meta = {"_id": write.image_id, "version": write.version, "version_type": "external"}
        document = write.document or deletion_marker(write.image_id, write.version)
        operations.extend(({"index": meta}, document))
    return operations


def _update_operations(
    profile: CatalogueProfile, writes: Iterable[SearchWrite]
) -> list[dict[str, Any]]:
    operations: list[dict[str, Any]] = []
    for write in writes:
        # retry_on_conflict: the library's application may update the same document meanwhile.
        meta = {"_id": write.image_id, "retry_on_conflict": 3}
        fields = write.document or enrichment_removed(write.version)
        operations.extend(({"update": meta}, guarded_update(profile, write.version, fields)))
    return operations


def _read_items(
    writes: list[SearchWrite],
    pending: list[int],
    items: list[dict[str, Any]],
    results: list[WriteResult | None],
) -> list[int]:
    """Record the final answers among a bulk's items (the first one counts: a write that
    went again only because an earlier write of its image did keeps what it got first);
    return the writes to send again, in order."""
    again: list[int] = []
    retrying: set[str] = set()  # images with a write that goes again
    for n, item in zip(pending, items, strict=True):
        write = writes[n]
        (answer,) = item.values()  # {"index": {...}} or {"delete": {...}}
        status = int(answer["status"])
        final: WriteResult | None
        if status < 300:
            final = "stale" if answer.get("result") == "noop" else "applied"
        elif status == 409:
            final = "stale"
        elif _error_type(answer) == "document_missing_exception":
            final = PermanentFailure(
                "catalogue_document_missing",
                f"the catalogue index has no document {write.image_id!r} to add to",
            )
        elif is_retryable_status(status):
            final = None
            retrying.add(write.image_id)
        else:
            final = PermanentFailure(
                "elasticsearch_rejected",
                f"elasticsearch: {status} {_error_type(answer)}: {_error_reason(answer)}",
            )
        if results[n] is None:
            results[n] = final
        if final is None or write.image_id in retrying:
            again.append(n)  # after an earlier write of its image that goes again
    return again


def _error_type(item: dict[str, Any]) -> str:
    error = item.get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else str(error or "")


def _error_reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    return str(error.get("reason", "")) if isinstance(error, dict) else ""


def _rejected(exc: Exception) -> PermanentFailure:
    if isinstance(exc, PermanentFailure):
        return exc
    return PermanentFailure("elasticsearch_rejected", f"elasticsearch: {exc}")
