"""An example of a licensing library's own catalogue index, and the catalogue profile that
describes it: names unlike lookalike's in every field (`name`, `artist.display_name`,
`created.year`, `dimensions.width_px`, `license_type`, `collection`, `thumbnail_href`), plus
fields of the library's own business that lookalike must leave alone (a price, an unmapped
note). The tests and the benchmarks that run with a profile both build it from here."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk

from lookalike_shared.profile import ENRICHMENT_MAPPING

NAMESPACE = "lookalike"
ALIAS = "library-works"

LIBRARY_MAPPING: dict[str, Any] = {
    "properties": {
        "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "artist": {"properties": {"display_name": {"type": "text"}}},
        "created": {"properties": {"year": {"type": "integer"}}},
        "dimensions": {"properties": {"width_px": {"type": "integer"}}},
        "license_type": {"type": "keyword"},
        "collection": {"type": "keyword"},
        "thumbnail_href": {"type": "keyword", "index": False},
        "price_eur": {"type": "scaled_float", "scaling_factor": 100},
    }
}

PROFILE = """\
[index]
alias = "{alias}"
namespace = "{namespace}"

[search]
text_fields = {{ "name" = 3, "artist.display_name" = 2 }}

[filters]
year = "created.year"
width = "dimensions.width_px"

[[filters.extra]]
name = "license_type"
field = "license_type"
kind = "term"
label = "Licence"

[[filters.extra]]
name = "collection"
field = "collection"
kind = "term"
label = "Collection"

[card]
title = "name"
creator = "artist.display_name"
year = "created.year"
thumbnail = "thumbnail_href"

[facets]
fields = ["license_type", "collection", "colors"]
"""


def library_document(image_id: str, entry: dict[str, Any], n: int) -> dict[str, Any]:
    """What the library's application writes for one image (`entry`: catalogue metadata as
    lookalike's own events carry it: title, creator, year)."""
    return {
        "name": entry.get("title") or image_id,
        "artist": {"display_name": entry.get("creator") or "unknown"},
        "created": {"year": entry.get("year") or 1900 + n % 120},
        "dimensions": {"width_px": entry.get("width") or 640 + n % 1000},
        "license_type": "rights-managed" if n % 2 else "royalty-free",
        "collection": "archive" if n % 3 else "highlights",
        "thumbnail_href": f"https://cdn.library.example/thumbs/{image_id}.jpg",
        "price_eur": 12.5 + n % 100,
        "internal_note": {"kept": ["as", "is"], "n": n},  # unmapped: the library's business
    }


async def create_library_index(
    es_url: str,
    documents: Iterable[tuple[str, dict[str, Any]]],
    alias: str = ALIAS,
    with_namespace: bool = False,
) -> None:
    """Create the library's index behind `alias` and fill it with (image id, document)
    pairs. `with_namespace` maps lookalike's fields under the namespace up front (for
    documents that already carry them)."""
    mapping = copy.deepcopy(LIBRARY_MAPPING)
    if with_namespace:
        mapping["properties"][NAMESPACE] = {"properties": copy.deepcopy(ENRICHMENT_MAPPING)}
    index = f"{alias}-2024"
    async with AsyncElasticsearch(es_url, request_timeout=120) as es:
        await es.indices.create(index=index, mappings=mapping)
        await es.indices.put_alias(index=index, name=alias)
        actions = ({"_index": index, "_id": i, "_source": doc} for i, doc in documents)
        await async_bulk(es, actions, chunk_size=1000)
        await es.indices.refresh(index=alias)


def profile_text(alias: str = ALIAS) -> str:
    """The profile (TOML) describing the library's index behind `alias`."""
    return PROFILE.format(alias=alias, namespace=NAMESPACE)


def write_profile(folder: Path, alias: str = ALIAS) -> Path:
    """The profile describing the library's index, written to `folder`; its path."""
    path = folder / "profile.toml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(profile_text(alias))
    return path
