"""One page of an answer: hits numbered across the groups, each image once, the page's
window of them streamed, and the whole answer (not only the page) counted for the total,
the facets and the done line."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

from lookalike_shared.contracts import DoneLine, HitLine, MatchTotals

from .es_queries import KeywordAnswer
from .params import MAX_OFFSET, encode_cursor
from .timing import Timeline


class ResultPage:
    """Numbers hits across groups, skips what earlier pages showed, keeps each image once,
    and counts the whole answer (not only this page) for the total and the facets."""

    def __init__(
        self, offset: int, limit: int, facets: Sequence[str], leave_out: str | None = None
    ) -> None:
        self.offset = offset
        self.limit = limit
        self.facet_names = tuple(facets)
        self.seen: set[str] = {leave_out} if leave_out else set()
        self.first_hit: float | None = None
        self.total = 0
        self.by_match: Counter[str] = Counter({"duplicate": 0, "similar": 0, "text": 0})
        self.counts: dict[str, Counter[Any]] = {f: Counter() for f in self.facet_names}

    async def add(self, hits: list[HitLine]) -> AsyncIterator[dict[str, Any]]:
        for hit in hits:
            if hit.image_id in self.seen:
                continue
            self.seen.add(hit.image_id)
            self.total += 1
            self.by_match[hit.match] += 1
            _count_facets(hit.doc, self.counts)
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
        fetched: dict[str, Counter[Any]] = {f: Counter() for f in self.facet_names}
        for hit in keyword.hits:
            _count_facets(hit["_source"], fetched)
        for field, counts in keyword.facets.items():
            for value, count in counts.items():
                rest = count - fetched[field][value]
                if rest > 0:
                    self.counts[field][value] += rest

    def facets(self) -> dict[str, list[dict[str, Any]]]:
        return {
            field: [{"value": v, "count": c} for v, c in counts.most_common(20)]
            for field, counts in self.counts.items()
        }


def done_line(page: ResultPage, timeline: Timeline, warnings: list[str]) -> DoneLine:
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


def _count_facets(doc: dict[str, Any], counts: dict[str, Counter[Any]]) -> None:
    """Add one document's facet values (a list field counts each of its values)."""
    for field in counts:
        value = doc.get(field)
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                counts[field][v] += 1
