"""The matcher's HTTP API (DESIGN.md): search by fingerprint or image, lookup, stats.

Searches run in threads (numpy and OpenCV release the GIL), uploads are fingerprinted in the
process pool, so the event loop only parses and routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from lookalike_shared.contracts import MatcherSearchRequest, MatcherSearchResponse, MatcherStats
from lookalike_shared.http import add_health_routes, error_response
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import fingerprint_in_pool, make_pool, warm_pool

from . import metrics
from .by_id import query_of
from .index import FingerprintIndex, SearchTrace
from .openapi import openapi_document
from .replay import FingerprintReplay
from .settings import MatcherSettings

INDEX = web.AppKey("index", FingerprintIndex)
REPLAY = web.AppKey("replay", FingerprintReplay)
SETTINGS = web.AppKey("settings", MatcherSettings)
POOL = web.AppKey("pool", ProcessPoolExecutor)


def init_app(settings: MatcherSettings, index: FingerprintIndex | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.max_request_bytes)
    app[SETTINGS] = settings
    app[INDEX] = index or FingerprintIndex()
    app[REPLAY] = FingerprintReplay(settings, app[INDEX])
    app.cleanup_ctx.append(_replay_task)
    app.cleanup_ctx.append(_process_pool)
    add_health_routes(app, lambda: app[REPLAY].not_ready_reason)
    app.router.add_post("/v1/search", search)
    app.router.add_get("/v1/images/{image_id}", get_image)
    app.router.add_get("/v1/stats", stats)
    app.router.add_get("/openapi.json", openapi)
    return app


async def _replay_task(app: web.Application) -> AsyncIterator[None]:
    replay = app[REPLAY]
    task = asyncio.create_task(replay.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if replay.next_offsets:
        # The loop is stopped, so nothing writes: the snapshot is consistent.
        await asyncio.to_thread(replay.save_snapshot)


async def _process_pool(app: web.Application) -> AsyncIterator[None]:
    workers = app[SETTINGS].pool_workers
    pool = make_pool(workers)
    await warm_pool(pool, workers)
    app[POOL] = pool
    yield
    pool.shutdown(cancel_futures=True)


async def search(request: web.Request) -> web.Response:
    started = time.perf_counter()
    if request.content_type.startswith("multipart/"):
        parsed = await _request_from_upload(request)
    elif request.content_type == "application/json":
        try:
            parsed = MatcherSearchRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            return error_response(400, "invalid_request", f"{field}: {err['msg']}", field or None)
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
    body = MatcherSearchResponse(
        matches=matches,
        took_ms=round(total * 1000, 2),
        images=len(index),
        query=query if parsed.image_id is not None else None,
    )
    return web.json_response(text=body.model_dump_json())


async def _request_from_upload(request: web.Request) -> MatcherSearchRequest | web.Response:
    data = None
    limit = 20
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart body: no field of ours
        if part.name == "image":
            data = await part.read()
        elif part.name == "limit":
            text = await part.text()
            if not text.isdigit() or not 1 <= int(text) <= 200:
                return error_response(400, "invalid_request", "limit: 1..200", "limit")
            limit = int(text)
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


async def get_image(request: web.Request) -> web.Response:
    image = request.app[INDEX].get(request.match_info["image_id"])
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
        ready=replay.not_ready_reason is None,
        reason=replay.not_ready_reason,
        partitions=replay.partitions,
        entries=index.entries,
        memory_bytes=index.nbytes(),
        replayed=replay.applied,
        from_snapshot=replay.loaded_from_snapshot,
    )
    return web.json_response(body.model_dump())


async def openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())
