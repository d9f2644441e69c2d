"""The Elasticsearch index of catalogue images: mapping, creation behind an alias, and the
document built from catalogue metadata plus visual attributes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as ESConnectionError

from .analysis import ImageAnalysis
from .colour_bins import image_bins
from .contracts import CatalogueImage
from .embedding import EMBEDDING_DIMS

log = logging.getLogger(__name__)

# The index generation this code writes and searches: 2 added the learned embedding, subject
# words and colour bins, and dropped the fingerprint and layout vector (the matcher holds
# those). docs/operations.md says how a catalogue indexed in an older one moves.
GENERATION = 2

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
        # How much of the image each coarse colour cell holds (colour_bins.py): colour search.
        "colour_bins": {"type": "rank_features"},
        # ImageNet classes the embedding model sees (embedding.SUBJECT_MIN_CONFIDENCE):
        # searched by words, counted as a facet.
        "subjects": _text_with_keyword,
        # The look-alike embedding, searched by filtered kNN. int8 quantised HNSW keeps the
        # graph a quarter of float32's RAM; cosine on unit vectors.
        "embedding": {
            "type": "dense_vector",
            "dims": EMBEDDING_DIMS,
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": "int8_hnsw"},
        },
        "indexed_at": {"type": "date"},
    },
}


# Fields only machines need: left out of what the gateway returns to people.
INTERNAL_FIELDS = ["embedding", "colour_bins"]


def index_name_for(alias: str, generation: int = GENERATION) -> str:
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
    """Create `<alias>-v2` (GENERATION) with the mapping and point the alias at it, unless
    the alias exists already (a reindex moves the alias to a newer generation). Returns the
    index."""
    if await es.indices.exists_alias(name=alias):
        found = await es.indices.get_alias(name=alias)
        current = next(iter(found))
        if current != index_name_for(alias):
            log.warning(
                "the alias points at an older index generation: look-alikes and colour "
                "search need the new one (docs/operations.md, reindex)",
                extra={"index": current, "alias": alias, "wanted": index_name_for(alias)},
            )
        return current
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


def search_document(image: CatalogueImage, analysis: ImageAnalysis) -> dict[str, Any]:
    """Catalogue metadata plus what people filter and search on. Lean on purpose: the
    stand-in parses every document's source per search (the matcher keeps the hashes)."""
    fingerprint = analysis.fingerprint
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
        colour_bins=image_bins((p.hex, p.weight) for p in fingerprint.palette),
        subjects=analysis.subjects,
        embedding=analysis.embedding,
    )
    return doc
