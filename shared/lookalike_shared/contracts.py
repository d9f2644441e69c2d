"""Pydantic models of the contracts in DESIGN.md: catalogue events, fingerprint records,
the matcher API and the gateway's NDJSON lines. Extend these; never break them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

UPSERTED = "catalogue.image.upserted"
DELETED = "catalogue.image.deleted"

# Kafka keys, Elasticsearch ids and URL path segments: keep ids to a safe alphabet.
ImageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")]
HexHash64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
HexHash256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

NAMED_COLORS = (
    "red",
    "orange",
    "yellow",
    "green",
    "teal",
    "blue",
    "purple",
    "pink",
    "brown",
    "black",
    "grey",
    "white",
)
ImageFormat = Literal["jpeg", "png", "gif", "tiff", "webp", "bmp"]
Orientation = Literal["landscape", "portrait", "square"]


class CatalogueImage(BaseModel):
    """`data` of a `catalogue.image.upserted` event. Unknown fields are kept for the document."""

    model_config = ConfigDict(extra="allow")

    image_id: ImageId
    version: int = Field(ge=0)
    image_url: str = Field(min_length=1, max_length=4096)
    title: str | None = None
    creator: str | None = None
    year: int | None = Field(None, ge=-5000, le=3000)
    medium: str | None = None
    tags: list[str] = Field(default_factory=list)
    license: str | None = None


class ImageDeleted(BaseModel):
    """`data` of a `catalogue.image.deleted` event."""

    image_id: ImageId
    version: int = Field(ge=0)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope (structured mode JSON, or rebuilt from `ce_*` headers)."""

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    data: dict[str, Any]


class PaletteColor(BaseModel):
    hex: Annotated[str, StringConstraints(pattern=r"^#[0-9a-f]{6}$")]
    weight: float = Field(ge=0, le=1)


class Box(BaseModel):
    """A rectangle in fractions of an image's width and height."""

    x: float
    y: float
    w: float
    h: float


class RegionHash(BaseModel):
    """The pHash of one region of the (border-trimmed) image, so crops still match."""

    box: Box
    phash: HexHash64


class Fingerprint(BaseModel):
    """Everything computed from one decode of an image: what the matcher needs and the
    visual attributes Elasticsearch filters on."""

    algorithm: Literal["lookalike/1"] = "lookalike/1"
    phash: HexHash64
    dhash: HexHash64
    # The pHash of the 8 flips and quarter turns, in DIHEDRAL_TRANSFORMS order; queries use
    # them so a mirrored or rotated copy still matches.
    phash_dihedral: list[HexHash64] = Field(min_length=8, max_length=8)
    regions: list[RegionHash] = Field(default_factory=list)
    trim: Box = Field(description="The part left after uniform borders and frames were cut.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    megapixels: float
    orientation: Orientation
    format: ImageFormat
    palette: list[PaletteColor]
    colors: list[str] = Field(description="Named colours from NAMED_COLORS covering the image.")
    layout: list[float] = Field(description="Compact colour-layout vector for look-alikes.")
    # Added later, optional so records written before them stay readable.
    hash256: HexHash256 | None = Field(
        None, description="256-bit DCT hash of the trimmed content (16x16 low frequencies)."
    )
    hash256_dihedral: list[HexHash256] | None = Field(
        None, min_length=8, max_length=8, description="hash256 of the 8 flips and turns."
    )
    # The same two hashes of the whole image, borders included, when a border was trimmed:
    # trimming is a judgement that a resized or recoloured copy may judge differently.
    untrimmed_phash_dihedral: list[HexHash64] | None = Field(None, min_length=8, max_length=8)
    untrimmed_hash256_dihedral: list[HexHash256] | None = Field(None, min_length=8, max_length=8)
    phash_probes: list[HexHash64] | None = Field(
        None,
        max_length=64,
        description="pHash with its least certain bits flipped (the DCT coefficients nearest "
        "the median): extra lookups that find a copy whose edit tipped those bits.",
    )
    turned_centre: list[HexHash64] | None = Field(
        None,
        max_length=8,
        description="pHashes of the central window (fingerprint.TURNED_WINDOW) turned by "
        "each of fingerprint.TURNS degrees: a query's extra lookups that find the artwork "
        "through a slight rotation or tilt. Only query fingerprints carry them.",
    )
    unmarked_phash: HexHash64 | None = Field(
        None,
        description="pHash of the content after a grey-level opening, which erases thin "
        "bright strokes such as watermark text: a query's extra lookup. Only query "
        "fingerprints carry it.",
    )
    keypoints: str | None = Field(
        None,
        max_length=64_000,
        description="ORB keypoints of the trimmed content, packed and base64-encoded "
        "(fingerprint.pack_keypoints), for geometric verification.",
    )
    thumb: str | None = Field(
        None,
        max_length=400,
        description="16x16 greyscale thumbnail of the trimmed content, base64 of 256 bytes "
        "row by row: verifies smooth images (colour fields, gradients) whose hash bits are "
        "unsteady and which have no keypoints, by correlation.",
    )


DIHEDRAL_TRANSFORMS = (
    "identity",
    "rotate_90",
    "rotate_180",
    "rotate_270",
    "flip_horizontal",
    "flip_vertical",
    "transpose",
    "transverse",
)


class FingerprintRecord(BaseModel):
    """Value on the compacted fingerprint topic (key = image id; tombstone on delete)."""

    image_id: ImageId
    version: int = Field(ge=0)
    fingerprint: Fingerprint
    indexed_at: datetime


# --- matcher API -------------------------------------------------------------------------


class MatcherSearchRequest(BaseModel):
    """Search with a fingerprint, or with a catalogue image id (the matcher then builds the
    query from what it holds for that image: "more like this")."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Fingerprint | None = None
    image_id: ImageId | None = None
    limit: int = Field(20, ge=1, le=200)
    include_similar: bool = True

    @model_validator(mode="after")
    def _one_query(self) -> MatcherSearchRequest:
        if (self.fingerprint is None) == (self.image_id is None):
            raise ValueError("give exactly one of fingerprint or image_id")
        return self


class Overlap(BaseModel):
    query: float = Field(ge=0, le=1)
    target: float = Field(ge=0, le=1)


class MatcherMatch(BaseModel):
    image_id: str
    version: int
    match: Literal["duplicate", "similar"]
    score: float = Field(ge=0, le=100)
    distance: int = Field(description="Hamming distance of the best pHash pair (of 64 bits).")
    transform: str = Field(description="Which flip or quarter turn of the query matched.")
    overlap: Overlap
    region: Box = Field(description="Where the query sits in the catalogue image.")


class MatcherSearchResponse(BaseModel):
    matches: list[MatcherMatch]
    took_ms: float
    images: int
    query: Fingerprint | None = Field(
        None,
        description="For a search by image_id: the fingerprint the search was made with, so "
        "the other shards can be searched with it too.",
    )


class MatcherStats(BaseModel):
    images: int
    ready: bool
    reason: str | None = None
    partitions: list[int] = Field(default_factory=list)
    entries: int | None = Field(None, description="Hash entries (content and regions).")
    memory_bytes: int | None = Field(None, description="RAM held by the index.")
    replayed: int | None = Field(None, description="Records applied since the start.")
    from_snapshot: int | None = Field(None, description="Images loaded from the snapshot.")


# --- gateway NDJSON lines ----------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class HitLine(BaseModel):
    type: Literal["hit"] = "hit"
    rank: int
    image_id: str
    match: Literal["duplicate", "similar", "text"]
    score: float
    overlap: Overlap | None = None
    region: Box | None = None
    doc: dict[str, Any]


class DoneLine(BaseModel):
    type: Literal["done"] = "done"
    took_ms: float
    total: int
    facets: dict[str, list[dict[str, Any]]]
    warnings: list[str]
    next_cursor: str | None = None
