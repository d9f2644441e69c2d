"""The gateway's HTTP side: the search page, POST /v1/search (NDJSON), thumbnails, health."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web
from elasticsearch import AsyncElasticsearch

from lookalike_shared.analysis import load_models_in_pool
from lookalike_shared.fetch import FetchError, ImageFetcher, policy_from
from lookalike_shared.http import add_health_routes, error_response
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import default_workers, make_pool, warm_pool

from . import metrics
from .es_queries import CatalogueSearch
from .matcher_client import MatcherClient
from .openapi import openapi_document
from .params import BadRequest, read_search_request
from .search import BackendFailed, SearchService, start_timeline, timed
from .settings import GatewaySettings
from .thumbnails import ThumbnailCache

STATIC = Path(__file__).parent / "static"
SETTINGS = web.AppKey("settings", GatewaySettings)
SERVICE = web.AppKey("service", SearchService)
THUMBNAILS = web.AppKey("thumbnails", ThumbnailCache)
STATE = web.AppKey("state", dict)


def init_app(settings: GatewaySettings) -> web.Application:
    app = web.Application(client_max_size=settings.max_upload_bytes, middlewares=[count_requests])
    app[SETTINGS] = settings
    app[STATE] = {"reason": "POOL-STARTING"}
    app.cleanup_ctx.append(_backends)
    add_health_routes(app, lambda: app[STATE]["reason"])
    app.router.add_get("/", index_page)
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_post("/v1/search", search)
    app.router.add_get("/v1/images/{image_id}/thumbnail", thumbnail)
    app.router.add_get("/v1/images/{image_id}/colors", image_colors)
    app.router.add_get("/openapi.json", openapi_json)
    return app


async def openapi_json(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _backends(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    workers = settings.pool_workers or default_workers()
    pool: ProcessPoolExecutor = make_pool(workers)
    await warm_pool(pool, workers)
    await load_models_in_pool(pool, workers)
    es = AsyncElasticsearch(settings.es_url, request_timeout=settings.es_timeout_seconds + 1)
    session = aiohttp.ClientSession()
    # An image_url's body is held to the same cap as an upload.
    fetcher = ImageFetcher(replace(policy_from(settings), max_bytes=settings.max_upload_bytes))
    catalogue = CatalogueSearch(es, settings.es_alias)
    matcher = MatcherClient(session, settings.matcher_urls, settings.matcher_timeout_seconds)
    app[SERVICE] = SearchService(settings, catalogue, matcher, pool, fetcher)
    app[THUMBNAILS] = ThumbnailCache(pool)
    app[STATE]["reason"] = None
    yield
    await fetcher.close()
    await session.close()
    await es.close()
    pool.shutdown(cancel_futures=True)


@web.middleware
async def count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.REQUESTS.labels(route, f"{status // 100}xx").inc()


async def index_page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def search(request: web.Request) -> web.StreamResponse:
    timeline = start_timeline()
    started = timeline.started
    service = request.app[SERVICE]
    try:
        # Waiting for the client's upload is not the gateway's own time: note it apart.
        parsed = await read_search_request(request, request.app[SETTINGS].max_upload_bytes)
        timeline.record("upload", started, time.perf_counter())
        query = await service.query_image(parsed)
    except BadRequest as exc:
        refused = error_response(exc.status, exc.code, str(exc), exc.field)
        if exc.status == 413:
            # The rest of the body is not worth reading: close rather than drain it.
            refused.force_close()
        return refused
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must pass each line on at once
        }
    )
    await response.prepare(request)
    lines = service.lines(parsed.params, query)
    first_hit = True
    try:
        async for line in lines:
            await response.write(json.dumps(line).encode() + b"\n")
            if first_hit and line["type"] == "hit":
                metrics.FIRST_HIT_SECONDS.observe(time.perf_counter() - started)
                first_hit = False
    except ConnectionResetError:
        return response  # the client went away; nobody is left to answer
    finally:
        await lines.aclose()  # client gone or done: cancels the backend calls still running
    await response.write_eof()
    metrics.SEARCH_SECONDS.observe(time.perf_counter() - started)
    return response


async def image_colors(request: web.Request) -> web.Response:
    """The palette of a catalogue image (colours and their shares), to show or search by."""
    image_id = request.match_info["image_id"]
    service = request.app[SERVICE]
    try:
        doc = await timed(
            "es_hydrate",
            service.catalogue.document(image_id),
            request.app[SETTINGS].es_timeout_seconds,
        )
    except BackendFailed as exc:
        return error_response(503, "backend_unavailable", str(exc))
    if doc is None:
        return error_response(404, "not_found", f"no catalogue image {image_id!r}")
    palette = doc.get("palette") or []
    return web.json_response(
        {
            "image_id": image_id,
            "palette": palette,
            "colors": doc.get("colors") or [],
            "query": ",".join(
                f"{p['hex'].lstrip('#')}:{max(1, round(100 * p['weight']))}" for p in palette
            ),
        }
    )


async def thumbnail(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    service = request.app[SERVICE]
    try:
        doc = await timed(
            "es_hydrate",
            service.catalogue.document(image_id),
            request.app[SETTINGS].es_timeout_seconds,
        )
    except BackendFailed as exc:
        return error_response(503, "backend_unavailable", str(exc))
    if doc is None:
        return error_response(404, "not_found", f"no catalogue image {image_id!r}")
    cache = request.app[THUMBNAILS]
    version = int(doc.get("version", 0))
    body = cache.get(image_id, version)
    if body is None:
        try:
            data = await service.fetcher.fetch(doc["image_url"])
            body = await cache.render(image_id, version, data)
        except (FetchError, ImageRejected) as exc:
            return error_response(502, exc.code, f"the catalogue image cannot be shown: {exc}")
    return web.Response(
        body=body,
        content_type="image/jpeg",
        headers={"Cache-Control": "public, max-age=3600", "ETag": f'"{image_id}-{version}"'},
    )
