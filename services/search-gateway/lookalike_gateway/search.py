"""One search, start to finish:

    request --> query fingerprint (once, in the process pool)
            --> concurrently: matcher (all shards) | ES look-alikes (kNN) | ES keyword search
            --> duplicates (hydrated + filtered) as soon as the matcher answers,
                then look-alikes, then keyword hits; each image once, under its best group
            --> done line: timing, totals, facets, warnings, next cursor

A backend that fails or misses its deadline costs its group and adds a warning; it never
fails the answer. Leaving the generator early (client gone) cancels every task.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from elasticsearch import ApiError, TransportError

from lookalike_shared.contracts import DoneLine, Fingerprint, HitLine, MatcherMatch
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import fingerprint_in_pool

from . import metrics
from .es_queries import CatalogueSearch
from .matcher_client import MatcherClient, MatcherUnavailable
from .params import BadRequest, SearchParams, SearchRequest, encode_cursor
from .settings import GatewaySettings

T = TypeVar("T")
FACET_FIELDS = ("colors", "format", "orientation", "decade")


class BackendFailed(Exception):
    def __init__(self, backend: str, message: str) -> None:
        super().__init__(message)
        self.backend = backend


async def timed(backend: str, call: Awaitable[T], timeout: float) -> T:
    """Run one backend call under its own deadline, recording its duration."""
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(call, timeout)
    except TimeoutError as exc:
        raise BackendFailed(backend, f"{backend} did not answer within {timeout}s") from exc
    except (ApiError, TransportError, MatcherUnavailable, OSError) as exc:
        raise BackendFailed(backend, f"{backend} failed: {exc}") from exc
    finally:
        metrics.BACKEND_SECONDS.labels(backend).observe(time.perf_counter() - started)


class SearchService:
    def __init__(
        self,
        settings: GatewaySettings,
        catalogue: CatalogueSearch,
        matcher: MatcherClient,
        pool: ProcessPoolExecutor,
        fetcher: ImageFetcher,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.matcher = matcher
        self.pool = pool
        self.fetcher = fetcher

    async def query_fingerprint(self, request: SearchRequest) -> Fingerprint | None:
        """Fingerprint the query image, or raise BadRequest (before anything is streamed)."""
        params = request.params
        data = request.image
        if params.image_id is not None:
            try:
                found = await timed(
                    "es_hydrate",
                    self.catalogue.fingerprint_of(params.image_id),
                    self.settings.es_timeout_seconds,
                )
            except BackendFailed as exc:
                raise BadRequest("backend_unavailable", str(exc), "image_id", 503) from exc
            if found is None:
                raise BadRequest(
                    "not_found", f"no catalogue image {params.image_id!r}", "image_id", 404
                )
            return found
        if params.image_url is not None:
            try:
                data = await self.fetcher.fetch(params.image_url)
            except FetchError as exc:
                status = 422 if exc.code in ("fetch_not_found", "image_too_large") else 400
                if exc.transient:
                    status = 502
                raise BadRequest(exc.code, str(exc), "image_url", status) from exc
        if data is None:
            return None
        started = time.perf_counter()
        try:
            return await fingerprint_in_pool(self.pool, data)
        except ImageRejected as exc:
            status = 413 if exc.code in ("image_too_large", "decompression_bomb") else 422
            field = "image_url" if params.image_url else "image"
            raise BadRequest(exc.code, str(exc), field, status) from exc
        finally:
            metrics.BACKEND_SECONDS.labels("fingerprint").observe(time.perf_counter() - started)

    async def lines(
        self, params: SearchParams, fingerprint: Fingerprint | None
    ) -> AsyncIterator[dict[str, Any]]:
        started = time.perf_counter()
        offset, limit = params.offset, params.limit
        want = offset + limit + 1  # one more than the page tells whether a next page exists
        es_timeout = self.settings.es_timeout_seconds
        tasks: dict[str, asyncio.Task[Any]] = {}
        if fingerprint is not None:
            tasks["matcher"] = asyncio.create_task(
                timed(
                    "matcher",
                    self.matcher.search(fingerprint, want),
                    self.settings.matcher_timeout_seconds,
                )
            )
            tasks["es_similar"] = asyncio.create_task(
                timed(
                    "es_similar",
                    self.catalogue.similar(params, fingerprint.layout, want),
                    es_timeout,
                )
            )
        if params.q or fingerprint is None:
            tasks["es_keyword"] = asyncio.create_task(
                timed("es_keyword", self.catalogue.keyword(params, want), es_timeout)
            )
        page = _Page(offset, limit)
        warnings: list[str] = []
        near: list[MatcherMatch] = []
        try:
            if "matcher" in tasks:
                duplicates, near = await self._duplicate_group(params, tasks, warnings)
                async for line in page.add(duplicates):
                    yield line
            if "es_similar" in tasks:
                similar = await self._similar_group(params, tasks, near, warnings)
                async for line in page.add(similar):
                    yield line
            if "es_keyword" in tasks:
                async for line in page.add(await self._keyword_group(tasks, warnings)):
                    yield line
            done = DoneLine(
                took_ms=round((time.perf_counter() - started) * 1000, 1),
                total=page.total,
                facets=page.facets(),
                warnings=warnings,
                next_cursor=encode_cursor(offset + limit) if page.total > offset + limit else None,
            )
            yield done.model_dump()
        finally:
            for task in tasks.values():
                task.cancel()

    async def _result(
        self, tasks: dict[str, asyncio.Task[Any]], name: str, warnings: list[str]
    ) -> Any:
        try:
            return await tasks[name]
        except BackendFailed as exc:
            warnings.append(str(exc))
            metrics.WARNINGS.labels(name).inc()
            return None

    async def _duplicate_group(
        self, params: SearchParams, tasks: dict[str, asyncio.Task[Any]], warnings: list[str]
    ) -> tuple[list[HitLine], list[MatcherMatch]]:
        """Duplicates, and the matcher's near (not duplicate) matches for the look-alikes."""
        answer = await self._result(tasks, "matcher", warnings)
        if answer is None:
            return [], []
        matches, shard_warnings = answer
        warnings.extend(shard_warnings)
        near = [m for m in matches if m.match == "similar"]
        duplicates = [m for m in matches if m.match == "duplicate"]
        docs = await self._hydrate(params, [m.image_id for m in duplicates], warnings)
        hits = [
            HitLine(
                rank=0,
                image_id=m.image_id,
                match="duplicate",
                score=m.score,
                overlap=m.overlap,
                region=m.region,
                doc=docs.get(m.image_id) or {"image_id": m.image_id},
            )
            for m in duplicates
            if docs is None or m.image_id in docs
        ]
        return await self._rerank(params, hits, warnings), near

    async def _hydrate(
        self, params: SearchParams, ids: list[str], warnings: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        """Docs of the ids that pass the filters; None when Elasticsearch could not say."""
        try:
            return await timed(
                "es_hydrate", self.catalogue.hydrate(params, ids), self.settings.es_timeout_seconds
            )
        except BackendFailed as exc:
            warnings.append(f"{exc}; showing matches without details or filters")
            metrics.WARNINGS.labels("es_hydrate").inc()
            return None

    async def _similar_group(
        self,
        params: SearchParams,
        tasks: dict[str, asyncio.Task[Any]],
        near: list[MatcherMatch],
        warnings: list[str],
    ) -> list[HitLine]:
        hits: dict[str, HitLine] = {}
        near_docs = (
            await self._hydrate(params, [m.image_id for m in near], warnings) if near else {}
        )
        for m in near:
            if near_docs is None or m.image_id in near_docs:
                doc = (near_docs or {}).get(m.image_id) or {"image_id": m.image_id}
                hits[m.image_id] = HitLine(
                    rank=0, image_id=m.image_id, match="similar", score=m.score, doc=doc
                )
        found = await self._result(tasks, "es_similar", warnings) or []
        for hit in found:
            score = float(hit["_score"] or 0.0)
            if score < self.settings.similar_min_score or hit["_id"] in hits:
                continue
            hits[hit["_id"]] = HitLine(
                rank=0,
                image_id=hit["_id"],
                match="similar",
                score=round(100 * score, 1),
                doc=hit["_source"],
            )
        ranked = sorted(hits.values(), key=lambda h: -h.score)
        return await self._rerank(params, ranked, warnings)

    async def _keyword_group(
        self, tasks: dict[str, asyncio.Task[Any]], warnings: list[str]
    ) -> list[HitLine]:
        found = await self._result(tasks, "es_keyword", warnings) or []
        return [
            HitLine(
                rank=0,
                image_id=h["_id"],
                match="text",
                score=round(float(h["_score"] or 0), 2),
                doc=h["_source"],
            )
            for h in found
        ]

    async def _rerank(
        self, params: SearchParams, hits: list[HitLine], warnings: list[str]
    ) -> list[HitLine]:
        """With words as well as an image, keyword relevance orders each image group."""
        if not params.q or len(hits) < 2:
            return hits
        try:
            scores = await timed(
                "es_keyword",
                self.catalogue.keyword_scores(params, [h.image_id for h in hits]),
                self.settings.es_timeout_seconds,
            )
        except BackendFailed as exc:
            warnings.append(f"{exc}; image results are not re-ranked by the words")
            return hits
        return sorted(hits, key=lambda h: (-scores.get(h.image_id, 0.0), -h.score))


class _Page:
    """Numbers hits across groups, skips what earlier pages showed, keeps each image once."""

    def __init__(self, offset: int, limit: int) -> None:
        self.offset = offset
        self.limit = limit
        self.seen: set[str] = set()
        self.total = 0
        self.counts: dict[str, Counter[Any]] = {f: Counter() for f in FACET_FIELDS}

    async def add(self, hits: list[HitLine]) -> AsyncIterator[dict[str, Any]]:
        for hit in hits:
            if hit.image_id in self.seen:
                continue
            self.seen.add(hit.image_id)
            self.total += 1
            self._count(hit.doc)
            if self.offset < self.total <= self.offset + self.limit:
                hit.rank = self.total
                hit.doc.setdefault("thumbnail_url", f"/v1/images/{hit.image_id}/thumbnail")
                yield hit.model_dump(exclude_none=True)

    def _count(self, doc: dict[str, Any]) -> None:
        for field in FACET_FIELDS:
            value = doc.get(field)
            for v in value if isinstance(value, list) else [value]:
                if v is not None:
                    self.counts[field][v] += 1

    def facets(self) -> dict[str, list[dict[str, Any]]]:
        return {
            field: [{"value": v, "count": c} for v, c in counts.most_common(20)]
            for field, counts in self.counts.items()
        }
