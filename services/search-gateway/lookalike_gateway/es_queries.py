"""Elasticsearch queries of a search: filters shared by all, keyword, look-alike (kNN on the
colour-layout vector), hydration of the matcher's duplicates, and "more like this" lookup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from lookalike_shared.contracts import Fingerprint
from lookalike_shared.search_index import INTERNAL_FIELDS, NOT_DELETED, is_live

from .params import SearchParams

FACET_FIELDS = ("colors", "format", "orientation", "decade")
FACET_SIZE = 20


@dataclass
class KeywordAnswer:
    hits: list[dict[str, Any]]
    total: int  # every match, not only the hits fetched
    facets: dict[str, dict[Any, int]]  # field -> value -> count, over every match


def filter_clauses(params: SearchParams) -> list[dict[str, Any]]:
    """Every query's filter: the request's filters, and never a deletion marker."""
    clauses: list[dict[str, Any]] = [NOT_DELETED]
    for color in params.colors:
        clauses.append({"term": {"colors": color}})  # every chosen colour must be present
    if params.format:
        clauses.append({"terms": {"format": params.format}})
    if params.orientation:
        clauses.append({"term": {"orientation": params.orientation}})
    if params.min_width:
        clauses.append({"range": {"width": {"gte": params.min_width}}})
    if params.min_height:
        clauses.append({"range": {"height": {"gte": params.min_height}}})
    years: dict[str, int] = {}
    if params.year_from is not None:
        years["gte"] = params.year_from
    if params.year_to is not None:
        years["lte"] = params.year_to
    if years:
        clauses.append({"range": {"year": years}})
    return clauses


def passes_filters(doc: dict[str, Any], params: SearchParams) -> bool:
    """`filter_clauses` evaluated on one document (tests keep the two in agreement)."""
    if not is_live(doc):
        return False
    colors = doc.get("colors") or []
    if any(c not in colors for c in params.colors):
        return False
    if params.format and doc.get("format") not in params.format:
        return False
    if params.orientation and doc.get("orientation") != params.orientation:
        return False
    for bound, name in ((params.min_width, "width"), (params.min_height, "height")):
        if bound and (doc.get(name) is None or doc[name] < bound):
            return False
    if params.year_from is not None or params.year_to is not None:
        year = doc.get("year")
        if year is None:
            return False
        if params.year_from is not None and year < params.year_from:
            return False
        if params.year_to is not None and year > params.year_to:
            return False
    return True


def keyword_query(params: SearchParams) -> dict[str, Any]:
    must: list[dict[str, Any]]
    if params.q:
        must = [
            {
                "multi_match": {
                    "query": params.q,
                    "fields": ["title^3", "creator^2", "medium", "tags^2"],
                    "type": "best_fields",
                }
            }
        ]
    else:
        must = [{"match_all": {}}]
    return {"bool": {"must": must, "filter": filter_clauses(params)}}


class CatalogueSearch:
    def __init__(self, es: AsyncElasticsearch, alias: str) -> None:
        self.es = es
        self.alias = alias

    async def keyword(self, params: SearchParams, size: int) -> KeywordAnswer:
        """The top `size` keyword/filter hits, how many there are, and their facet counts."""
        resp = await self.es.search(
            index=self.alias,
            query=keyword_query(params),
            size=size,
            source_excludes=INTERNAL_FIELDS,
            track_total_hits=True,
            aggs={f: {"terms": {"field": f, "size": FACET_SIZE}} for f in FACET_FIELDS},
        )
        facets = {
            f: {b["key"]: int(b["doc_count"]) for b in resp["aggregations"][f]["buckets"]}
            for f in FACET_FIELDS
        }
        total = resp["hits"]["total"]
        return KeywordAnswer(
            hits=list(resp["hits"]["hits"]),
            total=int(total["value"] if isinstance(total, dict) else total),
            facets=facets,
        )

    async def similar(
        self, params: SearchParams, layout: list[float], size: int
    ) -> list[dict[str, Any]]:
        knn: dict[str, Any] = {
            "field": "layout",
            "query_vector": layout,
            "k": size,
            "num_candidates": max(100, 4 * size),
        }
        knn["filter"] = {"bool": {"filter": filter_clauses(params)}}
        resp = await self.es.search(
            index=self.alias, knn=knn, size=size, source_excludes=INTERNAL_FIELDS
        )
        return list(resp["hits"]["hits"])

    async def hydrate(self, params: SearchParams, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents of the given ids that pass the filters. A multi-get by id is the
        cheapest read Elasticsearch has (and real-time); the filters are then applied here,
        with `passes_filters`, the same rules `filter_clauses` gives Elasticsearch."""
        if not ids:
            return {}
        resp = await self.es.mget(index=self.alias, ids=ids, source_excludes=INTERNAL_FIELDS)
        return {
            doc["_id"]: doc["_source"]
            for doc in resp["docs"]
            if doc.get("found") and passes_filters(doc["_source"], params)
        }

    async def keyword_scores(self, params: SearchParams, ids: list[str]) -> dict[str, float]:
        """Keyword relevance of given ids, to re-rank image results when words are given too."""
        if not ids or not params.q:
            return {}
        query = keyword_query(params)
        query["bool"]["filter"] = [{"ids": {"values": ids}}]
        resp = await self.es.search(index=self.alias, query=query, size=len(ids), source=False)
        return {hit["_id"]: float(hit["_score"] or 0.0) for hit in resp["hits"]["hits"]}

    async def document(self, image_id: str) -> dict[str, Any] | None:
        try:
            resp = await self.es.get(index=self.alias, id=image_id)
        except NotFoundError:
            return None
        source = dict(resp["_source"])
        return source if is_live(source) else None

    async def fingerprint_of(self, image_id: str) -> Fingerprint | None:
        doc = await self.document(image_id)
        if doc is None or "fingerprint" not in doc:
            return None
        stored = dict(doc["fingerprint"])
        stored.update(
            layout=doc["layout"], palette=doc.get("palette", []), colors=doc.get("colors", [])
        )
        return Fingerprint.model_validate(stored)
