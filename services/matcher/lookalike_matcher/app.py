"""The matcher's HTTP API (docs/architecture.md): search by fingerprint or image, lookup, stats.

Searches run in threads (numpy and OpenCV release the GIL), uploads are fingerprinted in the
process pool, so the event loop only parses and routes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TypeVar

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, TypeAdapter, ValidationError

from lookalike_shared.contracts import (
    MATCHER_MAX_LIMIT,
    Fingerprint,
    ImageId,
    MatcherCompareRequest,
    MatcherSearchRequest,
    MatcherSearchResponse,
    MatcherStats,
)
from lookalike_shared.http import (
    JsonTooComplex,
    add_health_routes,
    body_deadline,
    check_json_shape,
    error_response,
    json_errors,
    secure_headers,
)
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import WorkerPool, fingerprint_in_pool
from lookalike_shared.service import READINESS, essential, pool_context, service_app

from . import metrics
from .by_id import query_of
from .compare import compare
from .index import FingerprintIndex, SearchTrace
from .openapi import MAX_JSON_DEPTH, MAX_JSON_VALUES, MAX_UPLOAD_PARTS, openapi_document
from .replay import PART as REPLAY_PART
from .replay import FingerprintReplay
from .settings import MatcherSettings

log = logging.getLogger(__name__)
Body = TypeVar("Body", bound=BaseModel)
INDEX = web.AppKey("index", FingerprintIndex)
REPLAY = web.AppKey("replay", FingerprintReplay)
SETTINGS = web.AppKey("settings", MatcherSettings)
POOL = web.AppKey("pool", WorkerPool)
_IMAGE_ID: TypeAdapter[str] = TypeAdapter(ImageId)


def init_app(settings: MatcherSettings, index: FingerprintIndex | None = None) -> web.Application:
    """If the replay loop dies, /readyz says REPLAY-FAILED and app[FAILURE] is set (run
    by run_service, the process then stops with a non-zero code)."""
    app = service_app(
        client_max_size=settings.max_request_bytes,
        middlewares=[json_errors, body_deadline(settings.body_timeout_seconds)],
    )
    app[SETTINGS] = settings
    app[INDEX] = index if index is not None else FingerprintIndex()  # an empty one is falsy
    app[REPLAY] = FingerprintReplay(settings, app[INDEX], app[READINESS])
    app[POOL] = WorkerPool(
        settings.pool_workers,
        start_timeout_seconds=settings.pool_start_timeout_seconds,
        readiness=app[READINESS],
    )
    app.cleanup_ctx.append(_replay_task)
    # One that cannot start: /readyz says POOL-BROKEN, uploads 503.
    app.cleanup_ctx.append(pool_context(POOL))
    secure_headers(app)
    add_health_routes(app, app[READINESS], metrics.REGISTRY)
    app.router.add_post("/v1/search", search)
    app.router.add_post("/v1/compare", compare_images)
    app.router.add_get("/v1/images/{image_id}", get_image)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/openapi.json", openapi)
    return app


async def _replay_task(app: web.Application) -> AsyncIterator[None]:
    replay = app[REPLAY]
    task = asyncio.create_task(replay.run())
    essential(app, task, "the replay")
    yield
    task.cancel()
    # Cancelling waits for the batch being applied in its thread to end (replay._in_thread),
    # so nothing writes any more and the snapshot is consistent. A replay that died has
    # said why already.
    await asyncio.wait({task})
    if replay.next_offsets and replay.failed is None:
        await asyncio.to_thread(replay.save_snapshot)


async def search(request: web.Request) -> web.Response:
    started = time.perf_counter()
    if request.content_type.startswith("multipart/"):
        parsed = await _request_from_upload(request)
    elif request.content_type == "application/json":
        parsed = await _json_body(request, MatcherSearchRequest)
    else:
        return error_response(
            415,
            "unsupported_media_type",
            "send application/json with a fingerprint, or multipart/form-data with an image",
        )
    if isinstance(parsed, web.Response):
        return parsed
    index = request.app[INDEX]
    query = parsed.fingerprint
    if parsed.image_id is not None:
        query = query_of(index, parsed.image_id)
        if query is None:
            return error_response(404, "not_found", "no such image in this matcher", "image_id")
    assert query is not None  # the request holds one or the other
    trace = SearchTrace()
    matches = await asyncio.to_thread(
        index.search, query, parsed.limit, parsed.include_similar, trace
    )
    metrics.SEARCH_SECONDS.labels("hash").observe(trace.hash_seconds)
    metrics.SEARCH_SECONDS.labels("local").observe(trace.local_seconds)
    metrics.SEARCH_SECONDS.labels("verify").observe(trace.verify_seconds)
    metrics.VERIFY_CANDIDATES.observe(trace.candidates)
    total = time.perf_counter() - started
    metrics.SEARCH_SECONDS.labels("total").observe(total)
    answer = MatcherSearchResponse(
        matches=matches,
        took_ms=round(total * 1000, 2),
        images=len(index),
        query=query if parsed.image_id is not None else None,
    )
    return web.json_response(text=answer.model_dump_json())


async def compare_images(request: web.Request) -> web.Response:
    """Is b the same artwork as a: each side a fingerprint or an image id (JSON), or both
    uploaded (multipart fields `a` and `b`)."""
    started = time.perf_counter()
    if request.content_type.startswith("multipart/"):
        sides = await _uploaded_pair(request)
        if isinstance(sides, web.Response):
            return sides
    elif request.content_type == "application/json":
        pair = await _json_body(request, MatcherCompareRequest)
        if isinstance(pair, web.Response):
            return pair
        sides = _stored_pair(request.app[INDEX], pair)
        if isinstance(sides, web.Response):
            return sides
    else:
        return error_response(
            415,
            "unsupported_media_type",
            "send application/json with sides a and b, or multipart/form-data with images a, b",
        )
    answer = await asyncio.to_thread(compare, *sides)
    answer.took_ms = round((time.perf_counter() - started) * 1000, 2)
    return web.json_response(text=answer.model_dump_json())


def _stored_pair(
    index: FingerprintIndex, pair: MatcherCompareRequest
) -> tuple[Fingerprint, Fingerprint] | web.Response:
    """Each side's fingerprint: as sent, or rebuilt from what this matcher holds."""
    found = []
    for name, side in (("a", pair.a), ("b", pair.b)):
        fingerprint = side.fingerprint or query_of(index, side.image_id or "")
        if fingerprint is None:
            return error_response(404, "not_found", f"no image {side.image_id!r} here", name)
        found.append(fingerprint)
    return found[0], found[1]


async def _uploaded_pair(request: web.Request) -> tuple[Fingerprint, Fingerprint] | web.Response:
    images: dict[str, bytes] = {}
    try:
        async for part in await request.multipart():
            if len(images) == 2 or not isinstance(part, BodyPartReader):
                return error_response(400, "invalid_body", "send exactly two fields: a and b")
            if part.name not in ("a", "b") or part.name in images:
                return error_response(400, "invalid_body", "send exactly two fields: a and b")
            images[part.name] = bytes(await part.read())
    except (ValueError, AssertionError):
        return error_response(400, "invalid_body", "the multipart body is malformed")
    for name in ("a", "b"):
        if name not in images:
            return error_response(400, "missing_image", f"send image {name!r}", name)
    fingerprints = []
    for name in ("a", "b"):
        try:
            fingerprints.append(
                await fingerprint_in_pool(request.app[POOL], images[name], query=name == "a")
            )
        except ImageRejected as exc:
            status = 413 if exc.code in ("image_too_large", "decompression_bomb") else 422
            return error_response(status, exc.code, str(exc), name)
    return fingerprints[0], fingerprints[1]


async def _json_body(request: web.Request, model: type[Body]) -> Body | web.Response:
    """A JSON request body as `model`, or the 400 that says what is wrong with it."""
    body = await request.read()
    try:
        check_json_shape(body, MAX_JSON_DEPTH, MAX_JSON_VALUES)
        return model.model_validate_json(body)
    except JsonTooComplex as exc:
        return error_response(400, "invalid_request", str(exc))
    except ValidationError as exc:
        return _invalid(exc)


def _invalid(exc: ValidationError) -> web.Response:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"])
    return error_response(400, "invalid_request", f"{field}: {err['msg']}", field or None)


async def _request_from_upload(request: web.Request) -> MatcherSearchRequest | web.Response:
    try:
        form = await _read_upload(request)
    except (ValueError, AssertionError) as exc:
        # aiohttp's multipart reader refuses a body that does not parse this way (a part
        # without headers, another boundary, a part that never ends).
        log.info("malformed upload", extra={"error": repr(exc)})
        return error_response(400, "invalid_body", "the multipart body is malformed")
    if isinstance(form, web.Response):
        return form
    data, limit = form
    if data is None:
        return error_response(
            400, "missing_image", "send the image in a field named 'image'", "image"
        )
    try:
        with metrics.SEARCH_SECONDS.labels("fingerprint").time():
            fingerprint = await fingerprint_in_pool(request.app[POOL], data, query=True)
    except ImageRejected as exc:
        return error_response(
            422 if exc.code != "image_too_large" else 413, exc.code, str(exc), "image"
        )
    return MatcherSearchRequest(fingerprint=fingerprint, limit=limit)


async def _read_upload(request: web.Request) -> tuple[bytes | None, int] | web.Response:
    """The `image` and `limit` fields of an upload, or the error answer."""
    data = None
    limit = 20
    parts = 0
    async for part in await request.multipart():
        parts += 1
        if parts > MAX_UPLOAD_PARTS:
            return error_response(
                413, "too_many_fields", f"the form has more than {MAX_UPLOAD_PARTS} fields"
            )
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart body: no field of ours
        if part.name == "image":
            data = await part.read()
        elif part.name == "limit":
            text = await _short_text(part)
            # isascii: str.isdigit also holds for digits such as "²" that int() refuses.
            if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MATCHER_MAX_LIMIT:
                return error_response(
                    400, "invalid_request", f"limit: 1..{MATCHER_MAX_LIMIT}", "limit"
                )
            limit = int(text)
    return data, limit


async def _short_text(part: BodyPartReader, cap: int = 16) -> str:
    """A small form field's text; "" (refused by the caller) when it is over `cap` bytes."""
    raw = b""
    while chunk := await part.read_chunk(64):
        raw += chunk
        if len(raw) > cap:
            return ""
    return raw.decode("utf-8", "replace")


async def get_image(request: web.Request) -> web.Response:
    try:
        image_id = _IMAGE_ID.validate_python(request.match_info["image_id"])
    except ValidationError:
        return error_response(400, "invalid_request", "not an image id", "image_id")
    image = request.app[INDEX].get(image_id)
    if image is None:
        return error_response(404, "not_found", "no such image in this matcher")
    return web.json_response(
        {
            "image_id": image.image_id,
            "version": image.version,
            "trim": image.trim.model_dump(),
            "regions": len(image.region_boxes),
            "keypoints": image.has_keypoints,
        }
    )


async def stats(request: web.Request) -> web.Response:
    replay = request.app[REPLAY]
    index = request.app[INDEX]
    body = MatcherStats(
        images=len(index),
        ready=request.app[READINESS].reason(REPLAY_PART) is None,
        reason=request.app[READINESS].reason(REPLAY_PART),
        partitions=replay.partitions,
        entries=index.entries,
        memory_bytes=index.nbytes(),
        replayed=replay.applied,
        from_snapshot=replay.loaded_from_snapshot,
    )
    return web.json_response(body.model_dump())


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())
