"""Where each thing a search needs lives in the catalogue index: lookalike's own index
(every field at the top, as search_index.MAPPING has them), or a library's index described
by a catalogue profile (its own text fields, filters and card fields; lookalike's under
the profile's namespace).

The queries (es_queries.py) ask this for field paths; the answers go through `card`, which
turns a stored document into the one a result shows: the library's own fields as they are,
plus the card's title, creator, year and thumbnail, lookalike's measured fields, and each
facet's and filter's value under its name, so pages, facets and filters read one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lookalike_shared.profile import CatalogueProfile, ExtraFilter, field_spec
from lookalike_shared.search_index import INTERNAL_FIELDS, NOT_DELETED, readable

OWN_FACETS = ("colors", "format", "orientation", "decade", "subjects")
OWN_TEXT_FIELDS = ("title^3", "creator^2", "medium", "tags^2", "subjects")
# Measured by lookalike, shown on every card: under the namespace in a library's index.
MEASURED = ("width", "height", "megapixels", "format", "orientation", "colors", "palette",
            "subjects", "image_url")  # fmt: skip


def value_at(source: dict[str, Any], path: str) -> Any:
    """The value of a dotted path in a document (None where any step is missing)."""
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True)
class CatalogueFields:
    alias: str
    text_fields: list[str]  # with boosts, as multi_match takes them
    embedding: str
    colour_bins: str
    # filter name -> the field it is answered by (colors, format, orientation, width,
    # height, year; and a library's extra filters by their names)
    filters: dict[str, str]
    facets: dict[str, str]  # facet name -> the field Elasticsearch counts it on
    extra: list[ExtraFilter] = field(default_factory=list)
    profile: CatalogueProfile | None = None
    not_deleted: dict[str, Any] | None = None  # the clause that leaves deletion markers out
    internal: list[str] = field(default_factory=list)  # left out of what is returned

    @classmethod
    def own(cls, alias: str) -> CatalogueFields:
        names = ("colors", "format", "orientation", "width", "height", "year")
        return cls(
            alias=alias,
            text_fields=list(OWN_TEXT_FIELDS),
            embedding="embedding",
            colour_bins="colour_bins",
            filters={name: name for name in names},
            facets={f: "subjects.keyword" if f == "subjects" else f for f in OWN_FACETS},
            not_deleted=NOT_DELETED,
            internal=list(INTERNAL_FIELDS),
        )

    @classmethod
    def of_profile(cls, profile: CatalogueProfile, properties: dict[str, Any]) -> CatalogueFields:
        """`properties`: the index's mapping (to count a text field on its keyword part)."""
        ours = profile.ours
        chosen = profile.filters
        filters = {
            "colors": ours("colors"),
            "format": chosen.format or ours("format"),
            "orientation": chosen.orientation or ours("orientation"),
            "width": chosen.width or ours("width"),
            "height": chosen.height or ours("height"),
        }
        if chosen.year:
            filters["year"] = chosen.year
        for extra in chosen.extra:
            filters[extra.name] = extra.field
        counted = {**filters, "subjects": ours("subjects.keyword")}
        facets = {name: _countable(counted[name], properties) for name in profile.facets.fields}
        text = [f"{path}^{boost:g}" for path, boost in profile.search.text_fields.items()]
        return cls(
            alias=profile.alias,
            text_fields=[*text, ours("subjects")],
            embedding=ours("embedding"),
            colour_bins=ours("colour_bins"),
            filters=filters,
            facets=facets,
            extra=list(chosen.extra),
            profile=profile,
            internal=[ours(name) for name in INTERNAL_FIELDS],
        )

    def card(self, source: dict[str, Any]) -> dict[str, Any]:
        """A stored document as a result shows it (search_index.readable applied)."""
        profile = self.profile
        if profile is None:
            return readable(source)
        namespace = profile.index.namespace
        own = source.get(namespace) or {}
        doc = {k: v for k, v in source.items() if k != namespace}
        doc.update({name: own.get(name) for name in MEASURED if own.get(name) is not None})
        card = profile.card
        for name, path in (("title", card.title), ("creator", card.creator), ("year", card.year)):
            if path is not None:
                doc[name] = value_at(source, path)
        if card.thumbnail and value_at(source, card.thumbnail):
            doc["thumbnail_url"] = value_at(source, card.thumbnail)
        for name, path in self.filters.items():
            if not path.startswith(f"{namespace}."):
                doc[name] = value_at(source, path)
        return readable(doc)

    def range_of(self, name: str) -> bool:
        extra = next((f for f in self.extra if f.name == name), None)
        return extra is not None and extra.kind == "range"


def _countable(path: str, properties: dict[str, Any]) -> str:
    """A text field is counted on its keyword part, if it has one."""
    spec = field_spec(properties, path) or {}
    if spec.get("type") == "text":
        for sub, sub_spec in spec.get("fields", {}).items():
            if sub_spec.get("type") == "keyword":
                return f"{path}.{sub}"
    return path
