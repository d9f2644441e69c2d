"""The Elasticsearch index of catalogue images: mapping, creation behind an alias, and the
document built from catalogue metadata plus visual attributes.

A deleted image leaves a deletion marker, not a hole: a small document `{image_id, version,
deleted: true, deleted_at}` under the delete's external version. Elasticsearch forgets the
version of a document it deleted (index.gc_deletes, 60 s), so without the marker a late,
older upsert would bring the image back; with it, that upsert is stale like any other.
Every read leaves markers out (`NOT_DELETED`, `is_live`); prune_deletions removes old ones.

Two fields are kept in a compact stored form and turned back on reading (`readable`): the
embedding as int8 bytes in hex (`stored_vector`) and the palette as one `hex:share,...`
string (`stored_palette`). The embedded stand-in parses every document's source for every
search, and lists of floats and of small objects are what it parses slowest (measured on
10,000 documents: a look-alike kNN took about 690 ms with 256 floats and a palette of
objects, about 220 ms in the compact forms); a cluster stores a quarter of the vector bytes.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from elasticsearch import AsyncElasticsearch
from elasticsearch import ConnectionError as ESConnectionError

from .analysis import ImageAnalysis
from .colour_bins import image_bins
from .contracts import CatalogueImage, PaletteColor
from .embedding import EMBEDDING_DIMS

log = logging.getLogger(__name__)

# The index generation this code writes and searches: 2 added the learned embedding, subject
# words and colour bins, and dropped the fingerprint and layout vector (the matcher holds
# those); 3 stores the embedding as bytes and the palette as one string (stored_vector,
# stored_palette). docs/operations.md says how a catalogue indexed in an older one moves.
GENERATION = 3

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
        # "1f4e79:0.4012,e0b040:0.2" (stored_palette): shown on cards, never searched.
        "palette": {"type": "keyword", "index": False, "doc_values": False},
        # How much of the image each coarse colour cell holds (colour_bins.py): colour search.
        "colour_bins": {"type": "rank_features"},
        # ImageNet classes the embedding model sees (embedding.SUBJECT_MIN_CONFIDENCE):
        # searched by words, counted as a facet.
        "subjects": _text_with_keyword,
        # The look-alike embedding, searched by filtered kNN: int8 components (stored_vector),
        # so the HNSW graph holds a quarter of float32's bytes; cosine similarity.
        "embedding": {
            "type": "dense_vector",
            "element_type": "byte",
            "dims": EMBEDDING_DIMS,
            "index": True,
            "similarity": "cosine",
            "index_options": {"type": "hnsw"},
        },
        "indexed_at": {"type": "date"},
        "deleted": {"type": "boolean"},
        "deleted_at": {"type": "date"},
    },
}


# Fields only machines need: left out of what the gateway returns to people.
INTERNAL_FIELDS = ["embedding", "colour_bins"]

# The filter clause every search of the index carries: deletion markers are never answers.
NOT_DELETED: dict[str, Any] = {"bool": {"must_not": [{"term": {"deleted": True}}]}}


def stored_vector(vector: Sequence[float]) -> str:
    """A look-alike vector as the index stores it and kNN is asked with it: int8, scaled so
    its largest component is 127 (cosine does not see the scale; on the labelled set of
    bench/lookalikes.py precision@10 is unchanged), as hex (Elasticsearch 8.14 and later)."""
    values = np.asarray(vector, dtype=np.float64)
    peak = float(np.abs(values).max(initial=0.0)) or 1.0
    return np.round(values * (127.0 / peak)).astype(np.int8).tobytes().hex()


def stored_palette(palette: Iterable[PaletteColor]) -> str:
    return ",".join(f"{p.hex.lstrip('#')}:{p.weight:g}" for p in palette)


def palette_from_stored(text: str) -> list[dict[str, Any]]:
    out = []
    for entry in filter(None, text.split(",")):
        hex_value, _, weight = entry.partition(":")
        out.append({"hex": f"#{hex_value}", "weight": float(weight)})
    return out


def readable(source: dict[str, Any]) -> dict[str, Any]:
    """A stored document as people and the API see it: the palette as a list of
    `{hex, weight}` (shares 0-1). Every document the gateway returns goes through here."""
    palette = source.get("palette")
    if isinstance(palette, str):
        return {**source, "palette": palette_from_stored(palette)}
    return source


def is_live(source: dict[str, Any]) -> bool:
    """False for a deletion marker's _source."""
    return not source.get("deleted")


def deletion_marker(image_id: str, version: int) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "version": version,
        "deleted": True,
        "deleted_at": datetime.now(UTC).isoformat(),
    }


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
    """Create `<alias>-v3` (GENERATION) with the mapping and point the alias at it, unless
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
        else:
            # Fields added within a generation (adding is allowed in place; nothing else is).
            await es.indices.put_mapping(index=current, properties=MAPPING["properties"])
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


class InvalidDocument(ValueError):
    """A search document Elasticsearch would refuse: a field of the wrong type for the mapping."""


def search_document(
    image: CatalogueImage, analysis: ImageAnalysis, indexed_at: datetime
) -> dict[str, Any]:
    """Catalogue metadata plus what people filter and search on. Lean on purpose: the
    stand-in parses every document's source per search (the matcher keeps the hashes). The
    fields lookalike computes always win over catalogue fields of the same name (a
    catalogue's own `decade` or `deleted` is not ours to keep); raises InvalidDocument if any
    field would be refused by the mapping."""
    doc = image.model_dump(mode="json")
    doc.update(
        decade=None if image.year is None else image.year // 10 * 10,
        deleted=False,
        deleted_at=None,
        **measured_fields(analysis, indexed_at),
    )
    check_document(doc)
    return doc


def measured_fields(analysis: ImageAnalysis, indexed_at: datetime) -> dict[str, Any]:
    """What lookalike itself knows of an image: its size and format as decoded, colours,
    subject words and look-alike vector (in the stored forms)."""
    fingerprint = analysis.fingerprint
    return {
        "indexed_at": indexed_at.isoformat(),
        "width": fingerprint.width,
        "height": fingerprint.height,
        "megapixels": fingerprint.megapixels,
        "orientation": fingerprint.orientation,
        "format": fingerprint.format,
        "colors": fingerprint.colors,
        "palette": stored_palette(fingerprint.palette),
        "colour_bins": image_bins((p.hex, p.weight) for p in fingerprint.palette),
        "subjects": analysis.subjects,
        "embedding": stored_vector(analysis.embedding),
    }


_INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
MAX_KEYWORD_BYTES = 32766  # Lucene's longest term: a longer keyword value fails the document


def check_document(doc: dict[str, Any], properties: dict[str, Any] | None = None) -> None:
    """Raise InvalidDocument naming the first field whose value the mapping would refuse, so
    an event that cannot be indexed is refused before anything is written anywhere."""
    for name, value in doc.items():
        spec = (properties or MAPPING["properties"]).get(name)
        if spec is None or value is None:
            continue  # not indexed (dynamic: false): kept in _source as it is
        problem = _type_problem(spec, value)
        if problem:
            raise InvalidDocument(f"field {name!r}: {problem}")


def _type_problem(spec: dict[str, Any], value: Any) -> str | None:
    kind = spec.get("type", "object")
    if kind == "object":
        if spec.get("enabled") is False:
            return None
        return None if isinstance(value, dict) else "expected an object"
    if kind == "dense_vector":
        if spec.get("element_type") == "byte":
            ok = isinstance(value, str) and len(value) == 2 * spec["dims"]
            return None if ok else f"expected {spec['dims']} bytes in hex"
        ok = isinstance(value, list) and len(value) == spec.get("dims", len(value))
        ok = ok and all(_is_number(v) for v in value)
        return None if ok else f"expected {spec.get('dims')} numbers"
    for item in value if isinstance(value, list) else [value]:
        if kind in ("keyword", "text") and not isinstance(item, str):
            return f"expected text, got {type(item).__name__}"
        # (a keyword field with ignore_above skips longer values instead of failing)
        too_long = kind == "keyword" and len(item.encode()) > MAX_KEYWORD_BYTES
        if too_long and "ignore_above" not in spec:
            return f"a value is over {MAX_KEYWORD_BYTES} bytes"
        if kind in _INTEGER_RANGES:
            low, high = _INTEGER_RANGES[kind]
            if not (isinstance(item, int) and not isinstance(item, bool) and low <= item <= high):
                return f"expected a whole number from {low} to {high}"
        if kind == "float" and not _is_number(item):
            return "expected a finite number"
        if kind == "boolean" and not isinstance(item, bool):
            return "expected true or false"
        if kind == "date" and not _is_date(item):
            return "expected an ISO 8601 date"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
