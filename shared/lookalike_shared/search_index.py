"""The Elasticsearch index of catalogue images: mapping, creation behind an alias, and the
document built from catalogue metadata plus visual attributes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as ESConnectionError

from .contracts import CatalogueImage, Fingerprint
from .fingerprint import LAYOUT_GRID

log = logging.getLogger(__name__)

LAYOUT_DIMS = LAYOUT_GRID * LAYOUT_GRID * 3

_text_with_keyword = {
    "type": "text",
    "fields": {"keyword": {"type": "keyword", "ignore_above": 512}},
}

MAPPING: dict[str, Any] = {
    "dynamic": False,  # unknown catalogue fields are kept in _source but not indexed
    "properties": {
        "image_id": {"type": "keyword"},
        "version": {"type": "long"},
        "image_url": {"type": "keyword", "index": False},
        "title": _text_with_keyword,
        "creator": _text_with_keyword,
        "medium": _text_with_keyword,
        "tags": {"type": "keyword"},
        "license": {"type": "keyword"},
        "year": {"type": "integer"},
        "decade": {"type": "integer"},
        "width": {"type": "integer"},
        "height": {"type": "integer"},
        "megapixels": {"type": "float"},
        "orientation": {"type": "keyword"},
        "format": {"type": "keyword"},
        "colors": {"type": "keyword"},
        "palette": {"type": "object", "enabled": False},
        "layout": {
            "type": "dense_vector",
            "dims": LAYOUT_DIMS,
            "index": True,
            "similarity": "cosine",
        },
        "indexed_at": {"type": "date"},
        # Kept for "more like this" by image id; never searched.
        "fingerprint": {"type": "object", "enabled": False},
    },
}


# Fields only machines need: left out of what the gateway returns to people.
INTERNAL_FIELDS = ["layout", "fingerprint"]


def index_name_for(alias: str, generation: int = 1) -> str:
    return f"{alias}-v{generation}"


async def wait_for_elasticsearch(es: AsyncElasticsearch, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await es.info()
            return
        except (ESConnectionError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Elasticsearch did not answer in {timeout}s") from exc
            await asyncio.sleep(0.5)


async def ensure_index(es: AsyncElasticsearch, alias: str) -> str:
    """Create `<alias>-v1` with the mapping and point the alias at it, unless the alias
    exists already (a reindex moves the alias to a newer generation). Returns the index."""
    if await es.indices.exists_alias(name=alias):
        found = await es.indices.get_alias(name=alias)
        return next(iter(found))
    index = index_name_for(alias)
    if not await es.indices.exists(index=index):
        await es.indices.create(
            index=index,
            mappings=MAPPING,
            settings={"number_of_shards": 1, "refresh_interval": "1s"},
        )
    await es.indices.put_alias(index=index, name=alias)
    log.info("created index", extra={"index": index, "alias": alias})
    return index


def search_document(image: CatalogueImage, fingerprint: Fingerprint) -> dict[str, Any]:
    doc = image.model_dump(mode="json")
    if image.year is not None:
        doc["decade"] = image.year // 10 * 10
    doc.update(
        width=fingerprint.width,
        height=fingerprint.height,
        megapixels=fingerprint.megapixels,
        orientation=fingerprint.orientation,
        format=fingerprint.format,
        colors=fingerprint.colors,
        palette=[p.model_dump() for p in fingerprint.palette],
        layout=fingerprint.layout,
        # Keypoints (kilobytes) stay out: "more like this" matches on the hashes.
        fingerprint=fingerprint.model_dump(
            mode="json", exclude={"layout", "palette", "colors", "keypoints", "thumb"}
        ),
    )
    return doc
