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
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lookalike_shared.colour_bins import palette_score
from lookalike_shared.contracts import MATCHER_MAX_LIMIT, HitLine, MatcherMatch
from lookalike_shared.fetch import ImageFetcher
from lookalike_shared.pool import WorkerPool

from . import metrics
from .es_queries import CatalogueSearch, KeywordAnswer
from .matcher_client import MatcherClient
from .paging import ResultPage, done_line
from .params import SearchParams, SearchRequest
from .query import ImageQuery, query_of
from .settings import GatewaySettings
from .timing import BackendFailed, current_timeline, timed

T = TypeVar("T")
log = logging.getLogger(__name__)
RERANK_DEPTH = 100  # image hits re-ranked by words: pages stay consistent up to this many
# Reciprocal rank fusion of the look-alike and keyword rankings: 1/(RRF_K + rank) summed
# (Cormack et al. 2009; 60 is their constant). Ranks, not scores, so BM25 and cosine need
# no common scale.
RRF_K = 60


NO_VECTOR_YET = (
    "this image has no look-alike vector yet (indexed before the embedding): "
    "showing the same artwork only"
)


Matches = tuple[list[MatcherMatch], list[str]]  # the matcher's matches and shard warnings


@dataclass
class BackendCalls:
    """The backend calls of one search, each started at once or not needed (None)."""

    matcher: asyncio.Task[Matches] | None = None
    similar: asyncio.Task[list[dict[str, Any]]] | None = None  # ES look-alike kNN hits
    keyword: asyncio.Task[KeywordAnswer] | None = None

    def cancel(self) -> None:
        for task in (self.matcher, self.similar, self.keyword):
            if task is not None:
                task.cancel()


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
        """What to search with (query.py); None for words and filters alone."""
        return await query_of(request, self.catalogue, self.fetcher, self.pool, self.settings)

    async def lines(
        self, params: SearchParams, query: ImageQuery | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        timeline = current_timeline()
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
        calls = self._start_calls(params, query, want, duplicates_ready, warnings)
        facets = list(self.catalogue.fields.facets)
        page = ResultPage(offset, limit, facets, leave_out=params.image_id)
        try:
            try:
                async for line in self._groups(page, params, calls, duplicates_ready, warnings):
                    yield line
            except Exception:
                # Lines are out already, so no error status is possible: end the stream
                # properly and say the answer is incomplete, rather than cut it off.
                log.exception("search failed part-way")
                warnings.append("the search failed part-way; the answer is incomplete")
                metrics.WARNINGS.labels("gateway").inc()
            yield done_line(page, timeline, warnings).model_dump()
        finally:
            calls.cancel()

    def _start_calls(
        self,
        params: SearchParams,
        query: ImageQuery | None,
        want: int,
        duplicates_ready: asyncio.Event,
        warnings: list[str],
    ) -> BackendCalls:
        """The backend calls of one search, started at once: the matcher for an image, the
        look-alike kNN for an image with a vector, the keyword search for words, a palette
        or filters alone. Elasticsearch's wait for `duplicates_ready` (or the head start)."""
        # Words (or a palette) re-rank the image groups, which moves hits forward from deep
        # in a backend's ranking: fetch those groups to a fixed depth so every page re-ranks
        # the same list.
        image_depth = max(want, RERANK_DEPTH) if params.q or params.palette else want
        es_timeout = self.settings.es_timeout_seconds
        calls = BackendCalls()
        if query is not None:
            depth = min(image_depth, MATCHER_MAX_LIMIT)
            lookup = (
                self.matcher.search(query.fingerprint, depth)
                if query.fingerprint is not None
                else self.matcher.search_by_id(query.image_id or "", depth)
            )
            calls.matcher = asyncio.create_task(
                timed("matcher", lookup, self.settings.matcher_timeout_seconds)
            )
        else:
            duplicates_ready.set()
        if query is not None and query.embedding:
            vector = query.embedding
            calls.similar = asyncio.create_task(
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
            calls.keyword = asyncio.create_task(
                self._after(
                    duplicates_ready,
                    lambda: timed(
                        "es_keyword",
                        self._in_turn(lambda: self.catalogue.keyword(params, keyword_depth)),
                        es_timeout,
                    ),
                )
            )
        return calls

    async def _groups(
        self,
        page: ResultPage,
        params: SearchParams,
        calls: BackendCalls,
        duplicates_ready: asyncio.Event,
        warnings: list[str],
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The page's result lines, group by group as each backend answers: the same
        artwork, then look-alikes, then keyword hits."""
        near: list[MatcherMatch] = []
        if calls.matcher is not None:
            try:
                duplicates, near = await self._duplicate_group(params, calls.matcher, warnings)
            finally:
                duplicates_ready.set()
            async for line in page.add(duplicates):
                yield line
        if calls.similar is not None or near:
            similar = await self._similar_group(params, calls, near, warnings)
            async for line in page.add(similar):
                yield line
        if calls.keyword is not None:
            keyword = await self._result(calls.keyword, "es_keyword", warnings)
            if keyword is not None:
                async for line in page.add(_keyword_hits(keyword, params)):
                    yield line
                page.count_unfetched(keyword)

    async def _in_turn(self, search: Callable[[], Awaitable[T]]) -> T:
        with metrics.ES_SEARCHES_WAITING.track_inprogress():
            await self._search_slots.acquire()
        try:
            return await search()
        finally:
            self._search_slots.release()

    async def _after(self, ready: asyncio.Event, call: Callable[[], Awaitable[T]]) -> T:
        """Make the call once `ready` is set, or when the head start has run out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), self.settings.duplicates_head_start_seconds)
        return await call()

    async def _result(self, call: asyncio.Task[T], backend: str, warnings: list[str]) -> T | None:
        """A call's answer, or None with a warning when its backend failed."""
        try:
            return await call
        except BackendFailed as exc:
            if str(exc) not in warnings:  # a result may be asked for twice (re-ranking)
                warnings.append(str(exc))
                metrics.WARNINGS.labels(backend).inc()
            return None

    async def _duplicate_group(
        self, params: SearchParams, call: asyncio.Task[Matches], warnings: list[str]
    ) -> tuple[list[HitLine], list[MatcherMatch]]:
        """Duplicates, and the matcher's near (not duplicate) matches for the look-alikes."""
        answer = await self._result(call, "matcher", warnings)
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
        calls: BackendCalls,
        near: list[MatcherMatch],
        warnings: list[str],
    ) -> list[HitLine]:
        """Look-alikes: the kNN's nearest images, always (ranked, never cut by a floor unless
        one is configured), scored 0-100 as the cosine similarity; then the matcher's near
        matches the kNN did not bring. With words, fused with the keyword ranking."""
        hits: dict[str, HitLine] = {}
        found = await self._result(calls.similar, "es_similar", warnings) if calls.similar else []
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
        if calls.keyword is None:
            return ranked
        keyword = await self._result(calls.keyword, "es_keyword", warnings)
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
