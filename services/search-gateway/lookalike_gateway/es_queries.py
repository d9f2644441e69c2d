"""Elasticsearch queries of a search: filters shared by all, keyword (with subject words and
colour ranking), look-alike (filtered kNN on the learned embedding), hydration of the
matcher's duplicates, and an image's stored vector for "more like this". Field paths come
from CatalogueFields: lookalike's own index, or a library's described by a profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from lookalike_shared.colour_bins import palette_query
from lookalike_shared.search_index import is_live

from .catalogue_fields import CatalogueFields, value_at
from .params import SearchParams

FACET_SIZE = 20
# kNN looks at this many candidates per result wanted, at least KNN_MIN_CANDIDATES: the HNSW
# graph's breadth; quantised int8 vectors need some slack to rank as float ones would.
KNN_CANDIDATES_PER_RESULT = 4
KNN_MIN_CANDIDATES = 100


@dataclass
class KeywordAnswer:
    hits: list[dict[str, Any]]
    total: int  # every match, not only the hits fetched
    facets: dict[str, dict[Any, int]]  # field -> value -> count, over every match


def filter_clauses(
    params: SearchParams, fields: CatalogueFields, vectors_only: bool = False
) -> list[dict[str, Any]]:
    """The catalogue filters, for every query (keyword, kNN, rerank): the one place a rule
    that every answer keeps is added. Never a deletion marker: `vectors_only` for a kNN,
    which meets only documents with a vector, and a marker has none (so the clause would
    cost a test per document for nothing)."""
    clauses: list[dict[str, Any]] = []
    if fields.not_deleted and not vectors_only:
        clauses.append(fields.not_deleted)
    on = fields.filters
    for color in params.colors:
        clauses.append({"term": {on["colors"]: color}})  # every chosen colour must be present
    if params.format:
        clauses.append({"terms": {on["format"]: params.format}})
    if params.orientation:
        clauses.append({"term": {on["orientation"]: params.orientation}})
    if params.min_width:
        clauses.append({"range": {on["width"]: {"gte": params.min_width}}})
    if params.min_height:
        clauses.append({"range": {on["height"]: {"gte": params.min_height}}})
    years = _bounds(params.year_from, params.year_to)
    if years:
        # A catalogue without years (a profile naming none) matches no age filter.
        clauses.append({"range": {on["year"]: years}} if "year" in on else _NOTHING)
    for name, values in params.extra_terms.items():
        clauses.append({"terms": {on[name]: values}})
    for name, (low, high) in params.extra_ranges.items():
        clauses.append({"range": {on[name]: _bounds(low, high)}})
    return clauses


_NOTHING: dict[str, Any] = {"bool": {"must_not": [{"match_all": {}}]}}


def _bounds(low: float | None, high: float | None) -> dict[str, float]:
    bounds = {}
    if low is not None:
        bounds["gte"] = low
    if high is not None:
        bounds["lte"] = high
    return bounds


def passes_filters(doc: dict[str, Any], params: SearchParams) -> bool:
    """`filter_clauses` evaluated on a result's document (CatalogueFields.card: each
    filter's value under its name; tests keep the two in agreement)."""
    if not is_live(doc):
        return False
    colors = doc.get("colors") or []
    if any(c not in colors for c in params.colors):
        return False
    if params.format and doc.get("format") not in params.format:
        return False
    if params.orientation and doc.get("orientation") != params.orientation:
        return False
    ranges = [
        ("width", params.min_width, None),
        ("height", params.min_height, None),
        ("year", params.year_from, params.year_to),
        *((name, low, high) for name, (low, high) in params.extra_ranges.items()),
    ]
    for name, low, high in ranges:
        if (low or high) is not None and not _within(doc.get(name), low, high):
            return False
    for name, values in params.extra_terms.items():
        held = doc.get(name)
        if not set(held if isinstance(held, list) else [held]) & set(values):
            return False
    return True


def _within(value: Any, low: float | None, high: float | None) -> bool:
    if not isinstance(value, int | float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def keyword_query(params: SearchParams, fields: CatalogueFields) -> dict[str, Any]:
    """Words (title, creator, tags, medium and the subject words the model sees) and, with
    a palette, how much of the asked colours each image holds; filters always."""
    must: list[dict[str, Any]]
    if params.q:
        must = [
            {
                "multi_match": {
                    "query": params.q,
                    "fields": fields.text_fields,
                    "type": "best_fields",
                }
            }
        ]
    else:
        must = [{"match_all": {}}]
    query: dict[str, Any] = {"bool": {"must": must, "filter": filter_clauses(params, fields)}}
    if params.palette:
        # Images holding none of the colours are left out; the rest rank by how much.
        query["bool"]["should"] = palette_query(params.palette, fields.colour_bins)
        query["bool"]["minimum_should_match"] = 1
        if not params.q:
            query["bool"]["must"] = []
    return query


class CatalogueSearch:
    def __init__(self, es: AsyncElasticsearch, fields: CatalogueFields) -> None:
        self.es = es
        self.fields = fields
        self.alias = fields.alias

    async def keyword(self, params: SearchParams, size: int) -> KeywordAnswer:
        """The top `size` keyword/filter hits, how many there are, and their facet counts."""
        facets = self.fields.facets
        resp = await self.es.search(
            index=self.alias,
            query=keyword_query(params, self.fields),
            size=size,
            source_excludes=self.fields.internal,
            track_total_hits=True,
            aggs={
                name: {"terms": {"field": on, "size": FACET_SIZE}} for name, on in facets.items()
            },
        )
        counts = {
            name: {b["key"]: int(b["doc_count"]) for b in resp["aggregations"][name]["buckets"]}
            for name in facets
        }
        total = resp["hits"]["total"]
        return KeywordAnswer(
            hits=self._cards(resp),
            total=int(total["value"] if isinstance(total, dict) else total),
            facets=counts,
        )

    async def similar(self, params: SearchParams, vector: str, size: int) -> list[dict[str, Any]]:
        """The `size` nearest images by the embedding (as stored: search_index.stored_vector)
        among those passing the filters (the filters inside the kNN clause: they never leave
        fewer when enough images pass)."""
        knn: dict[str, Any] = {
            "field": self.fields.embedding,
            "query_vector": vector,
            "k": size,
            "num_candidates": max(KNN_MIN_CANDIDATES, KNN_CANDIDATES_PER_RESULT * size),
        }
        filters = filter_clauses(params, self.fields, vectors_only=True)
        if filters:
            knn["filter"] = {"bool": {"filter": filters}}
        resp = await self.es.search(
            index=self.alias, knn=knn, size=size, source_excludes=self.fields.internal
        )
        return self._cards(resp)

    async def hydrate(self, params: SearchParams, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The documents of the given ids that pass the filters. A multi-get by id is the
        cheapest read Elasticsearch has (and real-time); the filters are then applied here,
        with `passes_filters`, the same rules `filter_clauses` gives Elasticsearch."""
        if not ids:
            return {}
        resp = await self.es.mget(index=self.alias, ids=ids, source_excludes=self.fields.internal)
        cards = {
            doc["_id"]: self.fields.card(doc["_source"]) for doc in resp["docs"] if doc.get("found")
        }
        return {image_id: card for image_id, card in cards.items() if passes_filters(card, params)}

    async def keyword_scores(self, params: SearchParams, ids: list[str]) -> dict[str, float]:
        """Keyword relevance of given ids, to re-rank image results when words are given too."""
        if not ids or not params.q:
            return {}
        query = keyword_query(params, self.fields)
        query["bool"]["filter"] = [{"ids": {"values": ids}}]
        resp = await self.es.search(index=self.alias, query=query, size=len(ids), source=False)
        return {hit["_id"]: float(hit["_score"] or 0.0) for hit in resp["hits"]["hits"]}

    async def document(self, image_id: str) -> dict[str, Any] | None:
        try:
            resp = await self.es.get(index=self.alias, id=image_id)
        except NotFoundError:
            return None
        card = self.fields.card(dict(resp["_source"]))
        return card if is_live(card) else None

    async def embedding_of(self, image_id: str) -> str | None:
        """The stored look-alike vector of a catalogue image ("" if its document has none:
        indexed before the embedding, or not yet by lookalike); None if there is no such
        image."""
        try:
            resp = await self.es.get(
                index=self.alias, id=image_id, source_includes=[self.fields.embedding, "deleted"]
            )
        except NotFoundError:
            return None
        if not is_live(resp["_source"]):
            return None  # a deletion marker: the image is gone
        return str(value_at(resp["_source"], self.fields.embedding) or "")

    def _cards(self, resp: Any) -> list[dict[str, Any]]:
        return [
            {**hit, "_source": self.fields.card(hit["_source"])} for hit in resp["hits"]["hits"]
        ]
