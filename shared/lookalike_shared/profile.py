"""A catalogue profile: how lookalike works inside a library's own Elasticsearch index.

Without a profile lookalike keeps an index of its own (search_index.py). With one
(LOOKALIKE_CATALOGUE_PROFILE, a TOML file; docs/integration.md has a full example), ingest
adds its fields to the library's documents under one object, the namespace (`lookalike`:
colours, palette, embedding, subjects, measured size and format, the catalogue version it
wrote), as partial updates that never touch the library's own fields, and the gateway
searches the library's index with the library's own text fields, filters and card fields.

Documents are keyed by image id: the document `_id` is the catalogue's image id.

The profile is checked against the index's mapping before anything is written
(check_profile): a field it names that the index lacks, a field of the wrong type for its
use, or a namespace that is the library's own field stops the service with a message
naming the profile key and the field.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from elasticsearch import AsyncElasticsearch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .analysis import ImageAnalysis
from .search_index import MAPPING, check_document, measured_fields

FieldPath = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_@][\w@-]*(\.[\w@-]+)*$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]

# What lookalike writes under the namespace: its own fields of search_index.MAPPING.
ENRICHMENT_FIELDS = (
    "version",
    "image_url",  # where ingest read the picture: thumbnails and comparisons read it too
    "indexed_at",
    "deleted",
    "width",
    "height",
    "megapixels",
    "orientation",
    "format",
    "colors",
    "palette",
    "colour_bins",
    "subjects",
    "embedding",
)
ENRICHMENT_MAPPING: dict[str, Any] = {
    name: MAPPING["properties"][name] for name in ENRICHMENT_FIELDS
}
# The standard filters and facets lookalike answers from its own fields when the library's
# index has none for them.
STANDARD_FACETS = ("colors", "format", "orientation", "subjects")

_TEXT = {"text", "match_only_text", "keyword", "wildcard", "constant_keyword"}
_NUMBER = {"integer", "long", "short", "byte", "float", "double", "half_float", "scaled_float"}
_TERM = {"keyword", "constant_keyword", "boolean"} | _NUMBER
_RANGE = _NUMBER | {"date"}


class ProfileError(Exception):
    """The profile cannot be used as written; the message names what to change."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexSection(_Strict):
    alias: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    namespace: Name = "lookalike"


class SearchSection(_Strict):
    text_fields: dict[FieldPath, Annotated[float, Field(gt=0, le=100)]] = Field(min_length=1)


class ExtraFilter(_Strict):
    """A filter the library wants people to have: a term (one of its values) or a range."""

    name: Name  # the search parameter: `license_type=rm`, or `price_min` / `price_max`
    field: FieldPath
    kind: Literal["term", "range"]
    label: str | None = None


class FilterSection(_Strict):
    """The standard filters answered by the library's own fields; any left out is answered
    by what lookalike measures (width, height, format, orientation; age needs a year)."""

    year: FieldPath | None = None
    width: FieldPath | None = None
    height: FieldPath | None = None
    format: FieldPath | None = None
    orientation: FieldPath | None = None
    extra: list[ExtraFilter] = Field(default_factory=list)


class CardSection(_Strict):
    title: FieldPath
    creator: FieldPath | None = None
    year: FieldPath | None = None
    thumbnail: FieldPath | None = None  # the library's thumbnail URL; else lookalike's own


class FacetSection(_Strict):
    fields: list[Name] = Field(default_factory=lambda: list(STANDARD_FACETS))


class CatalogueProfile(_Strict):
    index: IndexSection
    search: SearchSection
    filters: FilterSection = Field(default_factory=FilterSection)
    card: CardSection
    facets: FacetSection = Field(default_factory=FacetSection)

    @property
    def alias(self) -> str:
        return self.index.alias

    def ours(self, name: str) -> str:
        """The path of one of lookalike's own fields in the library's documents."""
        return f"{self.index.namespace}.{name}"

    def extra_filter(self, name: str) -> ExtraFilter | None:
        return next((f for f in self.filters.extra if f.name == name), None)


def load_profile(path: str | Path) -> CatalogueProfile:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ProfileError(f"catalogue profile {path}: cannot be read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"catalogue profile {path}: not TOML ({exc})") from exc
    try:
        profile = CatalogueProfile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the file"
        raise ProfileError(f"catalogue profile {path}: {where}: {err['msg']}") from exc
    _check_names(profile, str(path))
    return profile


def _check_names(profile: CatalogueProfile, path: str) -> None:
    taken = set(STANDARD_FACETS)
    for extra in profile.filters.extra:
        if extra.name in taken:
            raise ProfileError(
                f"catalogue profile {path}: filters.extra: the name {extra.name!r} is "
                "taken (a standard filter or another extra filter)"
            )
        taken.add(extra.name)
    for facet in profile.facets.fields:
        if facet not in taken:
            raise ProfileError(
                f"catalogue profile {path}: facets.fields: {facet!r} is neither a standard "
                f"facet ({', '.join(STANDARD_FACETS)}) nor an extra filter's name"
            )


# --- the profile against the index --------------------------------------------------------


def field_spec(properties: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping of a dotted field path (objects' properties, then multi-fields such as
    `name.keyword`), or None if the mapping has no such field."""
    spec: dict[str, Any] | None = None
    level: dict[str, Any] | None = properties
    for part in path.split("."):
        if level is not None and part in level:
            spec = level[part]
        elif spec is not None and part in spec.get("fields", {}):
            spec = spec["fields"][part]
        else:
            return None
        level = spec.get("properties") if spec else None
    return spec


def _kind(spec: dict[str, Any]) -> str:
    return str(spec.get("type", "object"))


def profile_problems(profile: CatalogueProfile, properties: dict[str, Any]) -> list[str]:
    """Every way the profile does not fit the index's mapping, each naming the key."""
    alias = profile.alias
    problems: list[str] = []

    def need(key: str, path: str | None, kinds: set[str], use: str) -> None:
        if path is None:
            return
        spec = field_spec(properties, path)
        if spec is None:
            problems.append(f"{key} names {path!r}, which the index {alias} does not have")
        elif _kind(spec) not in kinds:
            problems.append(
                f"{key} names {path!r}, a {_kind(spec)} field: {use} needs "
                + " or ".join(sorted(kinds))
            )

    for path in profile.search.text_fields:
        need(f"search.text_fields.{path!r}", path, _TEXT, "searching words")
    sections = profile.filters
    need("filters.year", sections.year, _NUMBER | {"date"}, "the age filter")
    need("filters.width", sections.width, _NUMBER, "a size filter")
    need("filters.height", sections.height, _NUMBER, "a size filter")
    need("filters.format", sections.format, _TERM, "the format filter")
    need("filters.orientation", sections.orientation, _TERM, "the orientation filter")
    for n, extra in enumerate(sections.extra):
        kinds = _TERM if extra.kind == "term" else _RANGE
        need(f"filters.extra[{n}].field", extra.field, kinds, f"a {extra.kind} filter")
    card = profile.card
    for key in ("title", "creator", "year", "thumbnail"):
        path = getattr(card, key)
        if path is not None and field_spec(properties, path) is None:
            problems.append(f"card.{key} names {path!r}, which the index {alias} does not have")
    namespace = profile.index.namespace
    own = properties.get(namespace)
    if own is not None and not _is_ours(own):
        problems.append(
            f"index.namespace {namespace!r} is a field of the library's own in {alias}: "
            "choose a namespace the index does not use"
        )
    return problems


def _is_ours(spec: dict[str, Any]) -> bool:
    """The namespace holds lookalike's own fields (from an earlier start), nothing else."""
    if _kind(spec) != "object" or "properties" not in spec:
        return False
    return all(
        name in ENRICHMENT_MAPPING and _kind(field) == _kind(ENRICHMENT_MAPPING[name])
        for name, field in spec["properties"].items()
    )


async def index_properties(es: AsyncElasticsearch, alias: str) -> dict[str, Any]:
    """The mapping's properties of the index (or of every index behind the alias, merged)."""
    try:
        found = await es.indices.get_mapping(index=alias)
    except Exception as exc:
        if getattr(exc, "status_code", None) == 404:
            raise ProfileError(f"index.alias: the index {alias!r} does not exist") from exc
        raise
    properties: dict[str, Any] = {}
    for index in found.body.values():
        properties.update(index.get("mappings", {}).get("properties", {}))
    return properties


async def check_profile(es: AsyncElasticsearch, profile: CatalogueProfile) -> None:
    """Raise ProfileError if the profile does not fit the index; write nothing."""
    problems = profile_problems(profile, await index_properties(es, profile.alias))
    if problems:
        raise ProfileError("the catalogue profile does not fit the index: " + "; ".join(problems))


async def add_enrichment_mapping(es: AsyncElasticsearch, profile: CatalogueProfile) -> None:
    """Add lookalike's fields under the namespace (adding fields is allowed in place; a
    mapped field cannot be removed without a reindex: docs/integration.md)."""
    await es.indices.put_mapping(
        index=profile.alias,
        properties={profile.index.namespace: {"properties": ENRICHMENT_MAPPING}},
    )


# --- what ingest writes ----------------------------------------------------------------------

# One painless script for every write: the namespace object is replaced whole, and only by
# a newer catalogue version (partial updates cannot use external versions). An older or
# repeated event is a noop, which the bulk answers with result "noop".
GUARDED_WRITE = (
    "def own = ctx._source[params.namespace]; "
    "if (own != null && own.version != null && own.version >= params.version) "
    "{ ctx.op = 'noop' } else { ctx._source[params.namespace] = params.fields }"
)


def enrichment(
    analysis: ImageAnalysis, version: int, image_url: str, indexed_at: datetime
) -> dict[str, Any]:
    """lookalike's fields of one image, as they go under the namespace."""
    fields = {
        "version": version,
        "image_url": image_url,
        "deleted": False,
        **measured_fields(analysis, indexed_at),
    }
    check_document(fields, ENRICHMENT_MAPPING)
    return fields


def enrichment_removed(version: int) -> dict[str, Any]:
    """What a catalogue delete leaves under the namespace: only the version it was deleted
    at, so an older upsert that arrives late stays stale. The library's document stays."""
    return {"version": version, "deleted": True, "indexed_at": datetime.now(UTC).isoformat()}


def guarded_update(
    profile: CatalogueProfile, version: int, fields: dict[str, Any]
) -> dict[str, Any]:
    """The body of a bulk `update` that writes `fields` under the namespace if `version` is
    newer than the one there."""
    params = {"namespace": profile.index.namespace, "version": version, "fields": fields}
    return {"script": {"lang": "painless", "source": GUARDED_WRITE, "params": params}}
