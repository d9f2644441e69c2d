"""The search request: parameters validated by pydantic, the image from one of four places."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lookalike_shared.contracts import NAMED_COLORS, ImageFormat, ImageId, Orientation
from lookalike_shared.http import MAX_FIELD_BYTES as MAX_HEADER_BYTES
from lookalike_shared.http import JsonTooComplex, check_json_shape
from lookalike_shared.profile import ExtraFilter

from .palette_param import check_palette, parse_palette


class BadRequest(Exception):
    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.code = code
        self.field = field
        self.status = status


MAX_CURSOR_CHARS = 64  # the cursors this server issues are about 16 characters
DEFAULT_PAGE_SIZE = 24  # a search without `limit`: a full grid on a desktop screen
MAX_PAGE_SIZE = 100  # every backend is asked for offset + limit results


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    q: Annotated[str, Field(max_length=500)] | None = None
    image_id: ImageId | None = None
    image_url: Annotated[str, Field(max_length=4096)] | None = None
    # At most one of each: a longer list only makes Elasticsearch's query longer.
    colors: list[str] = Field(default_factory=list, max_length=len(NAMED_COLORS))
    palette: list[tuple[str, float]] = Field(
        default_factory=list,
        description="Colour search: 1-5 colours as hex with a weight (share of the picture, "
        "0-100), e.g. `1f4e79:60,e0b040:20`; images rank by how much of each they hold.",
    )
    format: list[ImageFormat] = Field(default_factory=list, max_length=len(get_args(ImageFormat)))
    orientation: Orientation | None = None
    min_width: int | None = Field(None, ge=1, le=100_000)
    min_height: int | None = Field(None, ge=1, le=100_000)
    year_from: int | None = Field(None, ge=-5000, le=3000)
    year_to: int | None = Field(None, ge=-5000, le=3000)
    limit: int = Field(
        DEFAULT_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="Hits in this page; without it, the gateway's page size (LOOKALIKE_PAGE_SIZE).",
    )
    cursor: Annotated[str, Field(max_length=MAX_CURSOR_CHARS)] | None = None
    # A catalogue profile's own filters (`license_type=rm`, `price_min=10`): read apart
    # (read_search_request), as their names are the library's.
    _extra_terms: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _extra_ranges: dict[str, tuple[float | None, float | None]] = PrivateAttr(default_factory=dict)

    @property
    def extra_terms(self) -> dict[str, list[str]]:
        return self._extra_terms

    @property
    def extra_ranges(self) -> dict[str, tuple[float | None, float | None]]:
        return self._extra_ranges

    @field_validator("colors", "format", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """`red,blue`, or several such (a repeated form field, a JSON list of strings)."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [p.strip().lower() for v in value for p in v.split(",") if p.strip()]
        return value

    @field_validator("colors")
    @classmethod
    def _known_colors(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in NAMED_COLORS]
        if unknown:
            raise ValueError(f"unknown colour {unknown[0]!r}; use one of {', '.join(NAMED_COLORS)}")
        return value

    _parse_palette = field_validator("palette", mode="before")(parse_palette)
    _check_palette = field_validator("palette")(check_palette)

    @field_validator("q", "image_url", "image_id", "cursor", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("year_to")
    @classmethod
    def _years_in_order(cls, value: int | None, info: ValidationInfo) -> int | None:
        year_from = info.data.get("year_from")
        if value is not None and year_from is not None and year_from > value:
            raise ValueError(f"year_to ({value}) is before year_from ({year_from})")
        return value

    @property
    def offset(self) -> int:
        return decode_cursor(self.cursor) if self.cursor else 0


MAX_OFFSET = 1000  # deep pages cost every backend offset + limit results; nobody reads them
MAX_FIELD_BYTES = 8 * 1024  # a form field other than the image: words, filters, a URL
LIST_FIELDS = frozenset({"colors", "format"})  # may be repeated: colors=red&colors=blue
# Every parameter once, the image, and each colour and format as a part of its own: 32.
# Twice that leaves room; thousands of parts would only be work for the event loop.
MAX_FORM_FIELDS = 64
# A search is an object of scalars and short lists: two levels, a few dozen values.
MAX_JSON_DEPTH = 8
MAX_JSON_VALUES = 256


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if len(cursor) > MAX_CURSOR_CHARS:  # also keeps what json.loads sees small and shallow
        raise BadRequest("invalid_parameter", "cursor is not one this server issued", "cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["o"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "invalid_parameter", "cursor is not one this server issued", "cursor"
        ) from exc
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest("invalid_parameter", "cursor is out of range", "cursor")
    return offset


@dataclass
class SearchRequest:
    params: SearchParams
    image: bytes | None  # uploaded or pasted bytes


async def _read_capped(
    part: BodyPartReader, cap: int, name: str, status: int, image: bool = False
) -> bytes:
    """Read one multipart part, giving up as soon as it passes `cap` bytes: a chunked upload
    has no Content-Length to refuse it by, so the cap holds while streaming."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > cap:
            code = "image_too_large" if image else "invalid_parameter"
            raise BadRequest(code, f"{name} is over the size limit ({cap} bytes)", name, status)
        chunks.append(chunk)
    return b"".join(chunks)


def _add_field(fields: dict[str, Any], name: str, value: str) -> None:
    """Form fields: a list field may repeat (its values are collected), any other only
    once."""
    if name in LIST_FIELDS:
        fields.setdefault(name, []).append(value)
    elif name not in fields:
        fields[name] = value
    else:
        raise BadRequest("invalid_parameter", f"{name} is given twice", name)


def _too_many_fields() -> BadRequest:
    return BadRequest(
        "too_many_fields", f"the form has more than {MAX_FORM_FIELDS} fields", status=413
    )


def _pasted_image(value: object, max_image_bytes: int, name: str) -> bytes:
    """An image in JSON: a data URL (what a browser's clipboard gives) or plain base64."""
    if not isinstance(value, str) or not value:
        raise BadRequest("invalid_parameter", f"{name}: expected a data: URL or base64", name)
    if value.startswith("data:"):
        header, sep, value = value.partition(",")
        if not sep or not header.endswith(";base64"):
            raise BadRequest("invalid_parameter", f"{name}: a data: URL must be base64", name)
    if len(value) > max_image_bytes * 4 // 3 + 4:
        raise BadRequest("image_too_large", f"{name} is over the size limit", name, 413)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid_parameter", f"{name}: not valid base64", name) from exc


Images = dict[str, bytes]  # file field name -> its bytes


async def _read_multipart(
    request: web.Request, max_image_bytes: int, image_fields: tuple[str, ...]
) -> tuple[dict[str, Any], Images]:
    fields: dict[str, Any] = {}
    images: Images = {}
    parts = 0
    async for part in await request.multipart():
        parts += 1
        if parts > MAX_FORM_FIELDS:
            raise _too_many_fields()
        if not isinstance(part, BodyPartReader):
            raise BadRequest("invalid_body", "nested multipart bodies are not accepted")
        name = part.name or ""
        if name in image_fields:
            if name in images:
                raise BadRequest("invalid_parameter", f"{name} is given twice", name)
            images[name] = await _read_capped(part, max_image_bytes, name, 413, image=True)
            continue
        raw = await _read_capped(part, MAX_FIELD_BYTES, name, 400)
        try:
            text = raw.decode(part.get_charset(default="utf-8"))
        except LookupError as exc:
            raise BadRequest("invalid_body", f"{name}: unknown charset", name) from exc
        _add_field(fields, name, text)
    return fields, images


async def _read_form(request: web.Request) -> dict[str, Any]:
    text = (await request.read()).decode(request.charset or "utf-8")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:  # "Max number of fields exceeded"
        raise _too_many_fields() from exc
    fields: dict[str, Any] = {}
    for name, value in pairs:
        _add_field(fields, name, value)
    return fields


async def _read_json(
    request: web.Request, max_image_bytes: int, image_fields: tuple[str, ...]
) -> tuple[dict[str, Any], Images]:
    raw = await request.read()
    try:
        check_json_shape(raw, MAX_JSON_DEPTH, MAX_JSON_VALUES)
    except JsonTooComplex as exc:
        raise BadRequest("invalid_body", str(exc)) from exc
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise BadRequest("invalid_body", "the JSON body must be an object")
    images = {
        name: _pasted_image(body.pop(name), max_image_bytes, name)
        for name in image_fields
        if name in body
    }
    return body, images


async def _read_body(
    request: web.Request, max_image_bytes: int, image_fields: tuple[str, ...]
) -> tuple[dict[str, Any], Images]:
    content_type = request.content_type
    if content_type.startswith("multipart/"):
        return await _read_multipart(request, max_image_bytes, image_fields)
    if content_type == "application/json":
        return await _read_json(request, max_image_bytes, image_fields)
    if content_type == "application/x-www-form-urlencoded":
        return await _read_form(request), {}
    if request.can_read_body:
        raise BadRequest(
            "unsupported_media_type",
            "send multipart/form-data, application/x-www-form-urlencoded or application/json",
            status=415,
        )
    return {}, {}


def _validated(fields: dict[str, Any], page_size: int) -> SearchParams:
    fields.setdefault("limit", page_size)
    try:
        return SearchParams.model_validate(fields)
    except ValidationError as exc:
        raise invalid_parameter(exc) from exc


async def read_body(
    request: web.Request, max_image_bytes: int, image_fields: tuple[str, ...]
) -> tuple[dict[str, Any], Images]:
    """Multipart (images as file fields), urlencoded form, or JSON (images as data URLs):
    the fields and the images, or BadRequest."""
    if request.content_length is not None and request.content_length > max_image_bytes:
        # Refused from the header alone, before a byte of the body is read.
        raise BadRequest("request_too_large", "the request body is over the size limit", status=413)
    try:
        return await _read_body(request, max_image_bytes, image_fields)
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadRequest(
            "request_too_large", "the request body is over the size limit", status=413
        ) from exc
    except HttpProcessingError as exc:
        # A multipart part whose headers are too long (a 100 KB filename) or malformed.
        raise BadRequest(
            "invalid_body",
            f"a part of the body is malformed or its headers are over {MAX_HEADER_BYTES} bytes",
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, AssertionError) as exc:
        raise BadRequest("invalid_body", f"the body could not be read: {exc}") from exc


def invalid_parameter(exc: ValidationError) -> BadRequest:
    """pydantic's first complaint about a request's fields, naming the field."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    field = str(err["loc"][0]) if err["loc"] else None  # the parameter, not an index in it
    message = f"{path}: {err['msg']}" if path else err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown parameter {field!r}"
    return BadRequest("invalid_parameter", message, field)


async def read_search_request(
    request: web.Request,
    max_image_bytes: int,
    page_size: int = DEFAULT_PAGE_SIZE,
    extra_filters: Sequence[ExtraFilter] = (),
) -> SearchRequest:
    """Multipart (file field `image`), urlencoded form, or JSON (`image` as a data URL);
    400 naming the field. A request without `limit` gets `page_size` hits; a catalogue
    profile's `extra_filters` are taken by their names."""
    fields, images = await read_body(request, max_image_bytes, ("image",))
    terms, ranges = _extra_filters(fields, extra_filters)
    params = _validated(fields, page_size)
    params._extra_terms, params._extra_ranges = terms, ranges
    image = images.get("image")
    sources = [s for s in (image is not None, params.image_url, params.image_id) if s]
    if len(sources) > 1:
        raise BadRequest("invalid_parameter", "give one of image, image_url or image_id", "image")
    params.offset  # noqa: B018 - validates the cursor before anything streams
    return SearchRequest(params=params, image=image)


def _extra_filters(
    fields: dict[str, Any], filters: Sequence[ExtraFilter]
) -> tuple[dict[str, list[str]], dict[str, tuple[float | None, float | None]]]:
    """Take a profile's filters out of the fields: a term filter's values (comma-separated),
    a range filter's `NAME_min` and `NAME_max`."""
    terms: dict[str, list[str]] = {}
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for extra in filters:
        if extra.kind == "term":
            raw = fields.pop(extra.name, None)
            values = [v.strip() for v in str(raw or "").split(",") if v.strip()]
            if len(values) > MAX_TERM_VALUES or any(len(v) > 256 for v in values):
                raise BadRequest(
                    "invalid_parameter",
                    f"{extra.name}: at most {MAX_TERM_VALUES} values",
                    extra.name,
                )
            if values:
                terms[extra.name] = values
            continue
        bounds = [_number(fields, f"{extra.name}_{end}") for end in ("min", "max")]
        if bounds != [None, None]:
            ranges[extra.name] = (bounds[0], bounds[1])
    return terms, ranges


MAX_TERM_VALUES = 20


def _number(fields: dict[str, Any], name: str) -> float | None:
    raw = fields.pop(name, None)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadRequest("invalid_parameter", f"{name}: expected a number", name) from None
    if not math.isfinite(value):
        raise BadRequest("invalid_parameter", f"{name}: expected a finite number", name)
    return value
