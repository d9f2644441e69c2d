"""The search request: parameters validated by pydantic, the image from one of four places."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lookalike_shared.contracts import NAMED_COLORS, ImageFormat, ImageId, Orientation


class BadRequest(Exception):
    def __init__(self, code: str, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.code = code
        self.field = field
        self.status = status


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    q: Annotated[str, Field(max_length=500)] | None = None
    image_id: ImageId | None = None
    image_url: Annotated[str, Field(max_length=4096)] | None = None
    colors: list[str] = Field(default_factory=list)
    format: list[ImageFormat] = Field(default_factory=list)
    orientation: Orientation | None = None
    min_width: int | None = Field(None, ge=1, le=100_000)
    min_height: int | None = Field(None, ge=1, le=100_000)
    year_from: int | None = Field(None, ge=-5000, le=3000)
    year_to: int | None = Field(None, ge=-5000, le=3000)
    limit: int = Field(24, ge=1, le=100)
    cursor: str | None = None

    @field_validator("colors", "format", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value

    @field_validator("colors")
    @classmethod
    def _known_colors(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in NAMED_COLORS]
        if unknown:
            raise ValueError(f"unknown colour {unknown[0]!r}; use one of {', '.join(NAMED_COLORS)}")
        return value

    @field_validator("q", "image_url", "image_id", "cursor", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _years_in_order(self) -> SearchParams:
        if (
            self.year_from is not None
            and self.year_to is not None
            and self.year_from > self.year_to
        ):
            raise ValueError("year_from is after year_to")
        return self

    @property
    def offset(self) -> int:
        return decode_cursor(self.cursor) if self.cursor else 0


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset = json.loads(raw)["o"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "invalid_parameter", "cursor is not one this server issued", "cursor"
        ) from exc
    if not isinstance(offset, int) or not 0 <= offset <= 10_000:
        raise BadRequest("invalid_parameter", "cursor is out of range", "cursor")
    return offset


@dataclass
class SearchRequest:
    params: SearchParams
    image: bytes | None  # uploaded or pasted bytes


async def read_search_request(request: web.Request, max_image_bytes: int) -> SearchRequest:
    """Multipart (file field `image`), urlencoded form, or JSON; 400 naming the field."""
    fields: dict[str, Any] = {}
    image: bytes | None = None
    content_type = request.content_type
    try:
        if content_type.startswith("multipart/"):
            async for part in await request.multipart():
                name = part.name or ""
                if name == "image":
                    image = await part.read(decode=False)  # type: ignore[union-attr]
                    if len(image) > max_image_bytes:
                        raise BadRequest(
                            "image_too_large", "image is over the size limit", "image", 413
                        )
                elif name in fields:
                    raise BadRequest("invalid_parameter", f"{name} is given twice", name)
                else:
                    fields[name] = await part.text()  # type: ignore[union-attr]
        elif content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise BadRequest("invalid_body", "the JSON body must be an object")
            fields = body
        elif content_type == "application/x-www-form-urlencoded":
            fields = dict(await request.post())
        elif request.can_read_body:
            raise BadRequest(
                "unsupported_media_type",
                "send multipart/form-data, application/x-www-form-urlencoded or application/json",
                status=415,
            )
    except web.HTTPRequestEntityTooLarge as exc:
        raise BadRequest(
            "request_too_large", "the request body is over the size limit", status=413
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest("invalid_body", f"the body could not be read: {exc}") from exc
    try:
        params = SearchParams.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        message = f"{field}: {err['msg']}" if field else err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown parameter {field!r}"
        raise BadRequest("invalid_parameter", message, field) from exc
    sources = [s for s in (image is not None, params.image_url, params.image_id) if s]
    if len(sources) > 1:
        raise BadRequest("invalid_parameter", "give one of image, image_url or image_id", "image")
    params.offset  # noqa: B018 - validates the cursor before anything streams
    return SearchRequest(params=params, image=image)
