"""POST /v1/compare: two images in (each uploaded, by URL under the same rules as a search,
or a catalogue id), the matcher's verdict out, and on request the overlay picture.

Both images are fingerprinted here and sent whole to the matcher, so any shard can judge
the pair; a catalogue image is read from its own image_url, as its thumbnail is, because
the overlay needs its pixels anyway.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lookalike_shared.contracts import ImageId
from lookalike_shared.fetch import FetchError
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import fingerprint_in_pool

from .overlay import draw_overlay
from .params import BadRequest, invalid_parameter, read_body
from .query import image_refused, url_refused
from .search import SearchService
from .timing import BackendFailed, timed

log = logging.getLogger(__name__)
SIDES = ("a", "b")


class CompareParams(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    a_url: Annotated[str, Field(max_length=4096)] | None = None
    b_url: Annotated[str, Field(max_length=4096)] | None = None
    a_id: ImageId | None = None
    b_id: ImageId | None = None
    overlay: bool = Field(False, description="Add the overlay picture (a PNG data URL).")

    @field_validator("a_url", "b_url", "a_id", "b_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


@dataclass
class CompareRequest:
    params: CompareParams
    uploads: dict[str, bytes]

    def url(self, side: str) -> str | None:
        return self.params.a_url if side == "a" else self.params.b_url

    def image_id(self, side: str) -> str | None:
        return self.params.a_id if side == "a" else self.params.b_id


async def read_compare_request(request: web.Request, max_bytes: int) -> CompareRequest:
    fields, uploads = await read_body(request, max_bytes, SIDES)
    try:
        params = CompareParams.model_validate(fields)
    except ValidationError as exc:
        raise invalid_parameter(exc) from exc
    parsed = CompareRequest(params, uploads)
    for side in SIDES:
        given = (
            (side in uploads) + (parsed.url(side) is not None) + (parsed.image_id(side) is not None)
        )
        if given != 1:
            raise BadRequest(
                "invalid_parameter" if given else "missing_image",
                f"give one of {side} (an image), {side}_url or {side}_id",
                side,
            )
    return parsed


async def compare_images(service: SearchService, request: CompareRequest) -> dict[str, Any]:
    """The verdict as the API answers it; BadRequest for what the client must change."""
    images = {side: await _image_of(service, request, side) for side in SIDES}
    fingerprints = {}
    for side in SIDES:
        try:
            # a is the query (with the codes only a query carries), b the one it is held to
            fingerprints[side] = await fingerprint_in_pool(service.pool, images[side], side == "a")
        except ImageRejected as exc:
            raise image_refused(exc, _field(request, side)) from exc
    try:
        verdict = await timed(
            "matcher",
            service.matcher.compare(fingerprints["a"], fingerprints["b"]),
            service.settings.matcher_timeout_seconds,
        )
    except BackendFailed as exc:
        raise BadRequest("backend_unavailable", str(exc), status=503) from exc
    answer = verdict.model_dump()
    if request.params.overlay:
        picture = await service.pool.run(draw_overlay, images["a"], images["b"], answer)
        if isinstance(picture, tuple):
            raise BadRequest(picture[0], picture[1], status=422)
        answer["overlay"] = "data:image/png;base64," + base64.b64encode(picture).decode()
    return answer


def _field(request: CompareRequest, side: str) -> str:
    """The field a side was given in, for the error that names it."""
    if request.url(side) is not None:
        return f"{side}_url"
    return f"{side}_id" if request.image_id(side) is not None else side


async def _image_of(service: SearchService, request: CompareRequest, side: str) -> bytes:
    if side in request.uploads:
        return request.uploads[side]
    url = request.url(side)
    if url is not None:
        try:
            # A stranger's URL: never a file on our disks, whatever the file root.
            return await service.fetcher.fetch(url, allow_files=False)
        except FetchError as exc:
            raise url_refused(exc, f"{side}_url") from exc
    image_id = request.image_id(side) or ""
    field = f"{side}_id"
    try:
        doc = await timed(
            "es_hydrate",
            service.catalogue.document(image_id),
            service.settings.es_timeout_seconds,
        )
    except BackendFailed as exc:
        raise BadRequest("backend_unavailable", str(exc), field, 503) from exc
    if doc is None or not doc.get("image_url"):
        raise BadRequest("not_found", f"no catalogue image {image_id!r}", field, 404)
    try:
        return await service.fetcher.fetch(doc["image_url"])  # the catalogue's own URL
    except FetchError as exc:
        log.warning(
            "catalogue image cannot be read",
            extra={"image_id": image_id, "code": exc.code, "detail": str(exc)},
        )
        # Not the client's URL: nothing of the fetcher's own words goes back (from None).
        raise BadRequest(exc.code, "the catalogue image cannot be read", field, 502) from None
