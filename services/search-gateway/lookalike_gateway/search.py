"""One search, start to finish:

    request --> query fingerprint and embedding (one decode, in the process pool), or for
                "more like this" the image's stored vector (the matcher uses its own entry)
            --> concurrently: matcher (all shards) | ES look-alikes (filtered kNN on the
                embedding) | ES keyword search (words, subject words, palette ranking)
            --> duplicates (hydrated + filtered) as soon as the matcher answers,
                then look-alikes (with words: fused with the keyword ranking by reciprocal
                rank), then keyword hits; each image once, under its best group
            --> done line: timing, totals, facets, warnings, next cursor

A backend that fails or misses its deadline costs its group and adds a warning; it never
fails the answer. Leaving the generator early (client gone) cancels every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any, TypeVar

from elasticsearch import ApiError, TransportError

from lookalike_shared.colour_bins import palette_score
from lookalike_shared.contracts import (
    MATCHER_MAX_LIMIT,
    DoneLine,
    Fingerprint,
    HitLine,
    MatcherMatch,
    MatchTotals,
)
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import WorkerPool, analyse_in_pool
from lookalike_shared.search_index import stored_vector

from . import metrics
from .es_queries import FACET_FIELDS, CatalogueSearch, KeywordAnswer
from .matcher_client import MatcherClient, MatcherUnavailable
from .params import MAX_OFFSET, BadRequest, SearchParams, SearchRequest, encode_cursor
from .settings import GatewaySettings

T = TypeVar("T")
log = logging.getLogger(__name__)
RERANK_DEPTH = 100  # image hits re-ranked by words: pages stay consistent up to this many
# Reciprocal rank fusion of the look-alike and keyword rankings: 1/(RRF_K + rank) summed
# (Cormack et al. 2009; 60 is their constant). Ranks, not scores, so BM25 and cosine need
# no common scale.
RRF_K = 60


@dataclass(frozen=True)
class ImageQuery:
    """What an image search searches with."""

    fingerprint: Fingerprint | None  # None for "more like this": the matcher uses its entry
    # As the index stores it (search_index.stored_vector); None: no vector (a document
    # indexed before the embedding)
    embedding: str | None
    subjects: list[str] = default(default_factory=list)
    image_id: str | None = None  # "more like this"


NO_VECTOR_YET = (
    "this image has no look-alike vector yet (indexed before the embedding): "
    "showing the same artwork only"
)


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
        _finished(backend, started)


def _finished(backend: str, started: float) -> None:
    ended = time.perf_counter()
    metrics.BACKEND_SECONDS.labels(backend).observe(ended - started)
    timeline = _TIMELINE.get()
    if timeline is not None:
        timeline.record(backend, started, ended)


class SearchService:
    def __init__(
        self,
        settings: GatewaySettings,
        catalogue: CatalogueSearch,
        matcher: MatcherClient,
        pool: WorkerPool,
        fetcher: ImageFetcher,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.matcher = matcher
        self.pool = pool
        self.fetcher = fetcher
        # A bulkhead for Elasticsearch's searches (the heavy calls): beyond it they wait
        # their turn here, so id lookups and other requests do not queue behind them there.
        self._search_slots = asyncio.Semaphore(settings.es_max_concurrent_searches)

    async def query_image(self, request: SearchRequest) -> ImageQuery | None:
        """What to search with: the uploaded or fetched image analysed (fingerprint and
        embedding, one decode), or a catalogue image's stored vector; BadRequest before
        anything is streamed. None for words and filters alone."""
        params = request.params
        data = request.image
        if params.image_id is not None:
            try:
                vector = await timed(
                    "es_hydrate",
                    self.catalogue.embedding_of(params.image_id),
                    self.settings.es_timeout_seconds,
                )
            except BackendFailed as exc:
                raise BadRequest("backend_unavailable", str(exc), "image_id", 503) from exc
            if vector is None:
                raise BadRequest(
                    "not_found", f"no catalogue image {params.image_id!r}", "image_id", 404
                )
            return ImageQuery(fingerprint=None, embedding=vector or None, image_id=params.image_id)
        if params.image_url is not None:
            try:
                # A stranger's URL: never a file on our disks, whatever the file root.
                data = await self.fetcher.fetch(params.image_url, allow_files=False)
            except FetchError as exc:
                raise _url_refused(exc) from exc
        if data is None:
            return None
        started = time.perf_counter()
        try:
            analysis = await analyse_in_pool(self.pool, data, query=True)
        except ImageRejected as exc:
            raise _image_refused(exc, "image_url" if params.image_url else "image") from exc
        finally:
            _finished("fingerprint", started)
        return ImageQuery(
            fingerprint=analysis.fingerprint,
            embedding=stored_vector(analysis.embedding),
            subjects=analysis.subjects,
        )

    async def lines(
        self, params: SearchParams, query: ImageQuery | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        timeline = _TIMELINE.get() or start_timeline()
        offset, limit = params.offset, params.limit
        # Each group is a prefix of its backend's ranking, so offset + limit of each is enough
        # for this page; one more tells whether a next page exists, and one more again makes
        # up for "more like this" leaving out the query image itself.
        want = offset + limit + 1 + (1 if params.image_id else 0)
        warnings: list[str] = []
        # Elasticsearch's searches give the duplicates a head start: the cheap lookup that
        # hydrates the matcher's duplicates is sent before them, so it does not queue behind
        # two searches on a busy cluster (or behind the stand-in's full scans).
        duplicates_ready = asyncio.Event()
        tasks = self._start_calls(params, query, want, duplicates_ready, warnings)
        page = _Page(offset, limit, leave_out=params.image_id)
        try:
            try:
                async for line in self._groups(page, params, tasks, duplicates_ready, warnings):
                    yield line
            except Exception:
                # Lines are out already, so no error status is possible: end the stream
                # properly and say the answer is incomplete, rather than cut it off.
                log.exception("search failed part-way")
                warnings.append("the search failed part-way; the answer is incomplete")
                metrics.WARNINGS.labels("gateway").inc()
            yield _done_line(page, timeline, warnings).model_dump()
        finally:
            for task in tasks.values():
                task.cancel()

    def _start_calls(
        self,
        params: SearchParams,
        query: ImageQuery | None,
        want: int,
        duplicates_ready: asyncio.Event,
        warnings: list[str],
    ) -> dict[str, asyncio.Task[Any]]:
        """The backend calls of one search, started at once: the matcher for an image, the
        look-alike kNN for an image with a vector, the keyword search for words, a palette
        or filters alone. Elasticsearch's wait for `duplicates_ready` (or the head start)."""
        # Words (or a palette) re-rank the image groups, which moves hits forward from deep
        # in a backend's ranking: fetch those groups to a fixed depth so every page re-ranks
        # the same list.
        image_depth = max(want, RERANK_DEPTH) if params.q or params.palette else want
        es_timeout = self.settings.es_timeout_seconds
        tasks: dict[str, asyncio.Task[Any]] = {}
        if query is not None:
            depth = min(image_depth, MATCHER_MAX_LIMIT)
            lookup = (
                self.matcher.search(query.fingerprint, depth)
                if query.fingerprint is not None
                else self.matcher.search_by_id(query.image_id or "", depth)
            )
            tasks["matcher"] = asyncio.create_task(
                timed("matcher", lookup, self.settings.matcher_timeout_seconds)
            )
        else:
            duplicates_ready.set()
        if query is not None and query.embedding:
            vector = query.embedding
            tasks["es_similar"] = asyncio.create_task(
                self._after(
                    duplicates_ready,
                    lambda: timed(
                        "es_similar",
                        self._in_turn(lambda: self.catalogue.similar(params, vector, image_depth)),
                        es_timeout,
                    ),
                )
            )
        elif query is not None:
            warnings.append(NO_VECTOR_YET)
        if params.q or params.palette or query is None:
            # With an image too, the keyword hits also re-rank the look-alikes, so fetch as
            # deep as those are fetched.
            keyword_depth = image_depth if query else want
            tasks["es_keyword"] = asyncio.create_task(
                self._after(
                    duplicates_ready,
                    lambda: timed(
                        "es_keyword",
                        self._in_turn(lambda: self.catalogue.keyword(params, keyword_depth)),
                        es_timeout,
                    ),
                )
            )
        return tasks

    async def _groups(
        self,
        page: _Page,
        params: SearchParams,
        tasks: dict[str, asyncio.Task[Any]],
        duplicates_ready: asyncio.Event,
        warnings: list[str],
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The page's result lines, group by group as each backend answers: the same
        artwork, then look-alikes, then keyword hits."""
        near: list[MatcherMatch] = []
        if "matcher" in tasks:
            try:
                duplicates, near = await self._duplicate_group(params, tasks, warnings)
            finally:
                duplicates_ready.set()
            async for line in page.add(duplicates):
                yield line
        if "es_similar" in tasks or near:
            similar = await self._similar_group(params, tasks, near, warnings)
            async for line in page.add(similar):
                yield line
        if "es_keyword" in tasks:
            keyword: KeywordAnswer | None = await self._result(tasks, "es_keyword", warnings)
            if keyword is not None:
                async for line in page.add(_keyword_hits(keyword, params)):
                    yield line
                page.count_unfetched(keyword)

    async def _in_turn(self, search: Callable[[], Awaitable[T]]) -> T:
        async with self._search_slots:
            return await search()

    async def _after(self, ready: asyncio.Event, call: Callable[[], Awaitable[T]]) -> T:
        """Make the call once `ready` is set, or when the head start has run out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), self.settings.duplicates_head_start_seconds)
        return await call()

    async def _result(
        self, tasks: dict[str, asyncio.Task[Any]], name: str, warnings: list[str]
    ) -> Any:
        try:
            return await tasks[name]
        except BackendFailed as exc:
            if str(exc) not in warnings:  # a result may be asked for twice (re-ranking)
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
                doc=(docs or {}).get(m.image_id) or {"image_id": m.image_id},
            )
            for m in duplicates
            if docs is None or m.image_id in docs
        ]
        return await self._rerank(params, hits, warnings), near

    async def _hydrate(
        self, params: SearchParams, ids: list[str], warnings: list[str]
    ) -> dict[str, dict[str, Any]] | None:
        """Docs of the ids that pass the filters; None when Elasticsearch could not say."""
        if not ids:
            return {}
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
        """Look-alikes: the kNN's nearest images, always (ranked, never cut by a floor unless
        one is configured), scored 0-100 as the cosine similarity; then the matcher's near
        matches the kNN did not bring. With words, fused with the keyword ranking."""
        hits: dict[str, HitLine] = {}
        found = await self._result(tasks, "es_similar", warnings) if "es_similar" in tasks else []
        for hit in found or []:
            similarity = max(0.0, 2.0 * float(hit["_score"] or 0.0) - 1.0)  # ES: (1 + cos) / 2
            if similarity < self.settings.similar_min_score:
                continue
            hits[hit["_id"]] = HitLine(
                rank=0,
                image_id=hit["_id"],
                match="similar",
                score=round(100 * similarity, 1),
                doc=hit["_source"],
            )
        extra = [m for m in near if m.image_id not in hits]
        near_docs = await self._hydrate(params, [m.image_id for m in extra], warnings)
        for m in extra:
            if near_docs is None or m.image_id in near_docs:
                doc = (near_docs or {}).get(m.image_id) or {"image_id": m.image_id}
                hits[m.image_id] = HitLine(
                    rank=0, image_id=m.image_id, match="similar", score=m.score, doc=doc
                )
        ranked = list(hits.values())
        if not (params.q or params.palette) or len(ranked) < 2:
            return ranked
        # The keyword search runs anyway: its ranking fuses with the visual one here, which
        # saves an Elasticsearch query. A look-alike beyond its top RERANK_DEPTH has no
        # keyword rank.
        keyword: KeywordAnswer | None = await self._result(tasks, "es_keyword", warnings)
        if keyword is None:
            return ranked
        return fuse(ranked, [h["_id"] for h in keyword.hits])

    async def _rerank(
        self, params: SearchParams, hits: list[HitLine], warnings: list[str]
    ) -> list[HitLine]:
        """With words as well as an image, keyword relevance orders the duplicates (asked
        of Elasticsearch for just these ids, so they need not wait for the keyword search)."""
        if not params.q or len(hits) < 2:
            return hits
        try:
            scores = await timed(
                "es_rerank",
                self.catalogue.keyword_scores(params, [h.image_id for h in hits]),
                self.settings.es_timeout_seconds,
            )
        except BackendFailed as exc:
            warnings.append(f"{exc}; image results are not re-ranked by the words")
            return hits
        return sorted(hits, key=lambda h: (-scores.get(h.image_id, 0.0), -h.score))


def fuse(visual: list[HitLine], keyword_ids: list[str]) -> list[HitLine]:
    """Reciprocal rank fusion: look-alikes that the words also find move up."""
    keyword_rank = {image_id: n for n, image_id in enumerate(keyword_ids, start=1)}

    def fused(item: tuple[int, HitLine]) -> float:
        n, hit = item
        score = 1.0 / (RRF_K + n)
        if hit.image_id in keyword_rank:
            score += 1.0 / (RRF_K + keyword_rank[hit.image_id])
        return -score

    return [hit for _, hit in sorted(enumerate(visual, start=1), key=fused)]


def _keyword_hits(answer: KeywordAnswer, params: SearchParams) -> list[HitLine]:
    """Keyword and filter hits, scored 0-100: with a palette, the share of the asked
    colours the image holds; with words, relevance against the best hit's (a raw BM25
    score means nothing to people); filters alone, no score (0)."""
    best = max((float(h["_score"] or 0.0) for h in answer.hits), default=0.0)
    out = []
    for h in answer.hits:
        raw = float(h["_score"] or 0.0)
        if params.palette and not params.q:
            score = palette_score(raw, params.palette)
        elif params.q and best > 0:
            score = round(100 * raw / best, 1)
        else:
            score = 0.0
        out.append(HitLine(rank=0, image_id=h["_id"], match="text", score=score, doc=h["_source"]))
    return out


class _Page:
    """Numbers hits across groups, skips what earlier pages showed, keeps each image once,
    and counts the whole answer (not only this page) for the total and the facets."""

    def __init__(self, offset: int, limit: int, leave_out: str | None = None) -> None:
        self.offset = offset
        self.limit = limit
        self.seen: set[str] = {leave_out} if leave_out else set()
        self.first_hit: float | None = None
        self.total = 0
        self.by_match: Counter[str] = Counter({"duplicate": 0, "similar": 0, "text": 0})
        self.counts: dict[str, Counter[Any]] = {f: Counter() for f in FACET_FIELDS}

    async def add(self, hits: list[HitLine]) -> AsyncIterator[dict[str, Any]]:
        for hit in hits:
            if hit.image_id in self.seen:
                continue
            self.seen.add(hit.image_id)
            self.total += 1
            self.by_match[hit.match] += 1
            self._count(hit.doc)
            if self.offset < self.total <= self.offset + self.limit:
                hit.rank = self.total
                if self.first_hit is None:
                    self.first_hit = time.perf_counter()
                hit.doc.setdefault("thumbnail_url", f"/v1/images/{hit.image_id}/thumbnail")
                yield hit.model_dump(exclude_none=True)

    def count_unfetched(self, keyword: KeywordAnswer) -> None:
        """Keyword matches beyond those fetched still count: Elasticsearch's total and
        aggregations, less what the fetched hits account for. (An unfetched keyword match
        that is also an image match counts twice; image groups are small, so rarely.)"""
        unfetched = keyword.total - len(keyword.hits)
        if unfetched <= 0:
            return
        self.total += unfetched
        self.by_match["text"] += unfetched
        fetched: dict[str, Counter[Any]] = {f: Counter() for f in FACET_FIELDS}
        for hit in keyword.hits:
            for field in FACET_FIELDS:
                value = hit["_source"].get(field)
                for v in value if isinstance(value, list) else [value]:
                    if v is not None:
                        fetched[field][v] += 1
        for field, counts in keyword.facets.items():
            for value, count in counts.items():
                rest = count - fetched[field][value]
                if rest > 0:
                    self.counts[field][value] += rest

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


def _url_refused(exc: FetchError) -> BadRequest:
    status = 422 if exc.code in ("fetch_not_found", "image_too_large") else 400
    return BadRequest(exc.code, str(exc), "image_url", 502 if exc.transient else status)


def _image_refused(exc: ImageRejected, field: str) -> BadRequest:
    status = 413 if exc.code in ("image_too_large", "decompression_bomb") else 422
    return BadRequest(exc.code, str(exc), field, status)


def _done_line(page: _Page, timeline: Timeline, warnings: list[str]) -> DoneLine:
    """The stream's last line: totals, facets, warnings, the next page's cursor, timings."""
    timeline.first_hit = page.first_hit
    end = page.offset + page.limit
    return DoneLine(
        took_ms=round((time.perf_counter() - timeline.started) * 1000, 1),
        total=page.total,
        facets=page.facets(),
        warnings=warnings,
        next_cursor=encode_cursor(end) if page.total > end and end <= MAX_OFFSET else None,
        totals=MatchTotals(**page.by_match),
        timings_ms=timeline.summary(),
    )
