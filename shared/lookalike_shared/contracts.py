"""Pydantic models of the contracts in docs/architecture.md: catalogue events, fingerprint
records, the matcher API and the gateway's NDJSON lines. Extend these; never break them."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

UPSERTED = "catalogue.image.upserted"
DELETED = "catalogue.image.deleted"

# Kafka keys, Elasticsearch ids and URL path segments: keep ids to a safe alphabet.
ImageId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")]
HexHash64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
HexHash256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# Versions become Elasticsearch external versions and numpy int64 slots: a signed 64-bit long.
MAX_VERSION = 2**63 - 1
Version = Annotated[int, Field(ge=0, le=MAX_VERSION)]
# JSON parsers accept NaN and Infinity; no fingerprint or box holds them.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

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
    version: Version
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
    version: Version


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

    x: FiniteFloat
    y: FiniteFloat
    w: FiniteFloat
    h: FiniteFloat


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
    # The caps below are well above what fingerprint.py makes (23 regions, 5 palette colours,
    # 48 layout numbers): a fingerprint sent to the matcher's API is bounded work.
    regions: list[RegionHash] = Field(default_factory=list, max_length=64)
    trim: Box = Field(description="The part left after uniform borders and frames were cut.")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    megapixels: FiniteFloat = Field(ge=0)
    orientation: Orientation
    format: ImageFormat
    palette: list[PaletteColor] = Field(max_length=16)
    colors: list[str] = Field(
        max_length=len(NAMED_COLORS),
        description="Named colours from NAMED_COLORS covering the image.",
    )
    layout: list[FiniteFloat] = Field(
        max_length=256, description="Compact colour-layout vector for look-alikes."
    )
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

    @field_validator("keypoints")
    @classmethod
    def _packed_keypoints(cls, value: str | None) -> str | None:
        """The matcher unpacks these bytes: a blob that is not whole keypoints would fail
        there, mid-search. Header (width, height: uint16, non-zero), then 36 bytes each."""
        if value is None:
            return None
        raw = _strict_base64(value)
        if len(raw) < 4 + KEYPOINT_BYTES or (len(raw) - 4) % KEYPOINT_BYTES:
            raise ValueError(f"packed keypoints are 4 + {KEYPOINT_BYTES} x n bytes (n >= 1)")
        if raw[0:2] == b"\0\0" or raw[2:4] == b"\0\0":
            raise ValueError("packed keypoints name a zero width or height")
        return value

    @field_validator("thumb")
    @classmethod
    def _thumb_bytes(cls, value: str | None) -> str | None:
        if value is not None and len(_strict_base64(value)) != THUMB_BYTES:
            raise ValueError(f"thumb is base64 of exactly {THUMB_BYTES} bytes")
        return value


KEYPOINT_BYTES = 36  # fingerprint.pack_keypoints: x, y (uint16) and a 32-byte descriptor
THUMB_BYTES = 256  # fingerprint.THUMB_SIDE squared


def _strict_base64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64") from exc


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


# Header of every record on the fingerprint topic, a tombstone's too: the version it stands
# for, so a matcher remembers what version an image was deleted at.
VERSION_HEADER = "lookalike.version"


class FingerprintRecord(BaseModel):
    """Value on the compacted fingerprint topic (key = image id; tombstone on delete, with
    the deleted version in its VERSION_HEADER)."""

    image_id: ImageId
    version: Version
    fingerprint: Fingerprint
    indexed_at: datetime


# --- matcher API -------------------------------------------------------------------------


# The most matches one matcher search answers: the contract, the upload form and the
# gateway's deepest request all use this one number.
MATCHER_MAX_LIMIT = 200


class MatcherSearchRequest(BaseModel):
    """Search with a fingerprint, or with a catalogue image id (the matcher then builds the
    query from what it holds for that image: "more like this")."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Fingerprint | None = None
    image_id: ImageId | None = None
    limit: int = Field(20, ge=1, le=MATCHER_MAX_LIMIT)
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


class CompareSide(BaseModel):
    """One side of a comparison: a fingerprint, or a catalogue image the matcher holds."""

    model_config = ConfigDict(extra="forbid")

    fingerprint: Fingerprint | None = None
    image_id: ImageId | None = None

    @model_validator(mode="after")
    def _one_image(self) -> CompareSide:
        if (self.fingerprint is None) == (self.image_id is None):
            raise ValueError("give exactly one of fingerprint or image_id")
        return self


class MatcherCompareRequest(BaseModel):
    """Is b the same artwork as a? (POST /v1/compare)"""

    model_config = ConfigDict(extra="forbid")

    a: CompareSide
    b: CompareSide


class Comparison(BaseModel):
    """The verdict on two images, with the evidence a person can check."""

    duplicate: bool = Field(description="b is the same artwork as a (score >= the threshold).")
    score: float = Field(ge=0, le=100, description="On the same 0-100 scale as a search.")
    threshold: float = Field(description="The score from which two images are one artwork.")
    evidence: Literal["hash", "appearance", "whole_hash", "keypoints"] = Field(
        description="What decided the score: hash codes alone (never a duplicate), the small "
        "picture's structure and colour, the 256-bit hash of the whole content, or keypoints "
        "matched under one geometry."
    )
    transform: str = Field(description="Which flip or quarter turn of a matched b.")
    overlap_a: float = Field(ge=0, le=1, description="Share of a that lies on b (0: no match).")
    overlap_b: float = Field(ge=0, le=1, description="Share of b that a shows (0: no match).")
    region_a: Box | None = Field(None, description="Where b lies in a (duplicates only).")
    region_b: Box | None = Field(None, description="Where a lies in b (duplicates only).")
    inliers: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="Keypoints matched under one geometry: (x, y) in a, then (x, y) in b, in "
        "fractions of each image's width and height.",
    )
    took_ms: float = 0.0


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


class MatchTotals(BaseModel):
    """How many images of the whole answer each group holds."""

    duplicate: int = 0
    similar: int = 0
    text: int = 0


class DoneLine(BaseModel):
    type: Literal["done"] = "done"
    took_ms: float
    total: int
    facets: dict[str, list[dict[str, Any]]]
    warnings: list[str]
    next_cursor: str | None = None
    totals: MatchTotals = Field(default_factory=MatchTotals)
    timings_ms: dict[str, float | None] = Field(
        default_factory=dict,
        description="Where the time went: milliseconds reading the request (`upload`) and per "
        "backend (fingerprint, matcher, es_similar, es_keyword, es_hydrate, es_rerank), when "
        "the first hit and the keyword search were ready (`first_hit_at`, "
        "`es_keyword_done_at`, from the request's start), and `gateway`: the time with "
        "neither the upload nor any backend call in flight.",
    )
