"""Elasticsearch queries of a search: filters shared by all, keyword (with subject words and
colour ranking), look-alike (filtered kNN on the learned embedding), hydration of the
matcher's duplicates, and an image's stored vector for "more like this"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from lookalike_shared.colour_bins import palette_query
from lookalike_shared.search_index import INTERNAL_FIELDS, NOT_DELETED, is_live, readable

from .params import SearchParams

FACET_FIELDS = ("colors", "format", "orientation", "decade", "subjects")
FACET_SIZE = 20
# A facet's field in the documents -> the field Elasticsearch counts it on.
_AGGREGATED_ON = {"subjects": "subjects.keyword"}
# kNN looks at this many candidates per result wanted, at least KNN_MIN_CANDIDATES: the HNSW
# graph's breadth; quantised int8 vectors need some slack to rank as float ones would.
KNN_CANDIDATES_PER_RESULT = 4
KNN_MIN_CANDIDATES = 100


@dataclass
class KeywordAnswer:
    hits: list[dict[str, Any]]
    total: int  # every match, not only the hits fetched
    facets: dict[str, dict[Any, int]]  # field -> value -> count, over every match


def filter_clauses(params: SearchParams, vectors_only: bool = False) -> list[dict[str, Any]]:
    """The catalogue filters, for every query (keyword, kNN, rerank): the one place a rule
    that every answer keeps is added. Never a deletion marker: `vectors_only` for a kNN,
    which meets only documents with a vector, and a marker has none (so the clause would
    cost a test per document for nothing)."""
    clauses: list[dict[str, Any]] = [] if vectors_only else [NOT_DELETED]
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
    """Words (title, creator, tags, medium and the subject words the model sees) and, with
    a palette, how much of the asked colours each image holds; filters always."""
    must: list[dict[str, Any]]
    if params.q:
        must = [
            {
                "multi_match": {
                    "query": params.q,
                    "fields": ["title^3", "creator^2", "medium", "tags^2", "subjects"],
                    "type": "best_fields",
                }
            }
        ]
    else:
        must = [{"match_all": {}}]
    query: dict[str, Any] = {"bool": {"must": must, "filter": filter_clauses(params)}}
    if params.palette:
        # Images holding none of the colours are left out; the rest rank by how much.
        query["bool"]["should"] = palette_query(params.palette)
        query["bool"]["minimum_should_match"] = 1
        if not params.q:
            query["bool"]["must"] = []
    return query


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
            aggs={
                f: {"terms": {"field": _AGGREGATED_ON.get(f, f), "size": FACET_SIZE}}
                for f in FACET_FIELDS
            },
        )
        facets = {
            f: {b["key"]: int(b["doc_count"]) for b in resp["aggregations"][f]["buckets"]}
            for f in FACET_FIELDS
        }
        total = resp["hits"]["total"]
        return KeywordAnswer(
            hits=_readable_hits(resp),
            total=int(total["value"] if isinstance(total, dict) else total),
            facets=facets,
        )

    async def similar(self, params: SearchParams, vector: str, size: int) -> list[dict[str, Any]]:
        """The `size` nearest images by the embedding (as stored: search_index.stored_vector)
        among those passing the filters (the filters inside the kNN clause: they never leave
        fewer when enough images pass)."""
        knn: dict[str, Any] = {
            "field": "embedding",
            "query_vector": vector,
            "k": size,
            "num_candidates": max(KNN_MIN_CANDIDATES, KNN_CANDIDATES_PER_RESULT * size),
        }
        filters = filter_clauses(params, vectors_only=True)
        if filters:
            knn["filter"] = {"bool": {"filter": filters}}
        resp = await self.es.search(
            index=self.alias, knn=knn, size=size, source_excludes=INTERNAL_FIELDS
        )
        return _readable_hits(resp)

    async def hydrate(self, params: SearchParams, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents of the given ids that pass the filters. A multi-get by id is the
        cheapest read Elasticsearch has (and real-time); the filters are then applied here,
        with `passes_filters`, the same rules `filter_clauses` gives Elasticsearch."""
        if not ids:
            return {}
        resp = await self.es.mget(index=self.alias, ids=ids, source_excludes=INTERNAL_FIELDS)
        return {
            doc["_id"]: readable(doc["_source"])
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
        source = readable(dict(resp["_source"]))
        return source if is_live(source) else None

    async def embedding_of(self, image_id: str) -> str | None:
        """The stored look-alike vector of a catalogue image ("" if its document has none:
        indexed before the embedding); None if there is no such image."""
        try:
            resp = await self.es.get(
                index=self.alias, id=image_id, source_includes=["embedding", "deleted"]
            )
        except NotFoundError:
            return None
        if not is_live(resp["_source"]):
            return None  # a deletion marker: the image is gone
        return str(resp["_source"].get("embedding") or "")


def _readable_hits(resp: Any) -> list[dict[str, Any]]:
    return [{**hit, "_source": readable(hit["_source"])} for hit in resp["hits"]["hits"]]
