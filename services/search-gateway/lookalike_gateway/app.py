"""The gateway's HTTP side: the search page, POST /v1/search (NDJSON), thumbnails, health."""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from elasticsearch import AsyncElasticsearch
from pydantic import TypeAdapter, ValidationError

from lookalike_shared.analysis import load_models
from lookalike_shared.contracts import ImageId
from lookalike_shared.fetch import FetchError, ImageFetcher
from lookalike_shared.http import (
    add_health_routes,
    body_deadline,
    error_response,
    json_errors,
    secure_headers,
)
from lookalike_shared.imaging import ImageRejected
from lookalike_shared.pool import WorkerPool
from lookalike_shared.profile import CatalogueProfile, check_profile, index_properties, load_profile
from lookalike_shared.search_index import wait_for_elasticsearch
from lookalike_shared.service import READINESS, pool_context, service_app

from . import metrics
from .catalogue_fields import OWN_FACETS, CatalogueFields
from .compare import compare_images, read_compare_request
from .es_queries import CatalogueSearch
from .matcher_client import MatcherClient
from .openapi import openapi_document
from .palette_param import MAX_COLOURS
from .params import MAX_PAGE_SIZE, BadRequest, read_search_request
from .search import SearchService
from .settings import GatewaySettings
from .thumbnails import ThumbnailCache
from .timing import BackendFailed, start_timeline, timed

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SETTINGS = web.AppKey("settings", GatewaySettings)
SERVICE = web.AppKey("service", SearchService)
THUMBNAILS = web.AppKey("thumbnails", ThumbnailCache)
POOL = web.AppKey("pool", WorkerPool)
INDEX_HTML = web.AppKey("index_html", bytes)
PROFILE = web.AppKey("profile", CatalogueProfile)  # present only with a catalogue profile
# The page loads its own script, style sheet and thumbnails, and shows a pasted or typed
# query image (blob:, data:, or the https URL typed); it talks only to this origin, and
# no other page may frame it. No inline script or style: the page's modules set styles
# through the CSSOM, which a CSP allows.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_IMAGE_ID: TypeAdapter[str] = TypeAdapter(ImageId)
# What a client is told when image_url cannot be used: the reason in its own terms, never
# the fetcher's detail (resolved addresses, file paths, our own network's errors).
_FETCH_MESSAGES = {
    "url_forbidden": "image_url points where this server does not fetch images from",
    "fetch_timeout": "image_url did not answer in time",
    "fetch_unreachable": "image_url's server could not be reached",
    "fetch_not_found": "image_url's server has no image there",
    "fetch_http_error": "image_url's server answered with an error",
    "fetch_refused": "image_url's server refused to give the image",
    "too_many_redirects": "image_url redirects too many times",
    "image_too_large": "the image at image_url is over the size limit",
}


def init_app(settings: GatewaySettings) -> web.Application:
    app = service_app(
        client_max_size=settings.max_upload_bytes,
        # Outermost first: count the status the client gets, after errors become JSON.
        middlewares=[count_requests, json_errors, body_deadline(settings.body_timeout_seconds)],
    )
    app[SETTINGS] = settings
    if settings.catalogue_profile:
        app[PROFILE] = load_profile(settings.catalogue_profile)  # ProfileError: refuse to start
    app[INDEX_HTML] = render_index(settings, app.get(PROFILE))
    app[POOL] = WorkerPool(
        settings.pool_workers or None,
        start_timeout_seconds=settings.pool_start_timeout_seconds,
        warm_up=load_models,  # the embedding model, in every worker, before the first query
        readiness=app[READINESS],
    )
    # A pool that cannot start leaves the gateway up, /readyz says why.
    app.cleanup_ctx.append(pool_context(POOL))
    app.cleanup_ctx.append(_backends)
    secure_headers(app, PAGE_CSP)
    app.on_response_prepare.append(_revalidate_static)
    add_health_routes(app, app[READINESS], metrics.REGISTRY)
    app.router.add_get("/", index_page)
    app.router.add_static("/static/", STATIC, name="static")
    app.router.add_post("/v1/search", search)
    app.router.add_post("/v1/compare", compare)
    app.router.add_get("/v1/images/{image_id}/thumbnail", thumbnail)
    app.router.add_get("/v1/images/{image_id}/colors", image_colors)
    app.router.add_get("/v1/page-config", page_config)
    app.router.add_get("/openapi.json", openapi_json)
    return app


async def _revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    """The page is a graph of modules: a browser that kept some from before a deploy and
    fetched others after would run a mix. Asking again each time costs a 304."""
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-cache"


def page_config_of(
    settings: GatewaySettings, profile: CatalogueProfile | None = None
) -> dict[str, Any]:
    """What the search page must not decide for itself: the server's own page size, the
    facets the done line counts, the limits a request is held to, and a catalogue
    profile's own filters (their parameter names, labels and kinds)."""
    return {
        "page_size": settings.page_size,
        "max_page_size": MAX_PAGE_SIZE,
        "facets": list(profile.facets.fields if profile else OWN_FACETS),
        "max_palette_colours": MAX_COLOURS,
        "filters": [
            {"name": f.name, "label": f.label or f.name, "kind": f.kind}
            for f in (profile.filters.extra if profile else [])
        ],
    }


def render_index(settings: GatewaySettings, profile: CatalogueProfile | None = None) -> bytes:
    """The page with its config in a <meta>: read as the modules load, so no event of the
    page's first moments waits on a second request (a module's top-level await would not
    hold back `load`, and a drop made meanwhile would be lost)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    config = html.escape(json.dumps(page_config_of(settings, profile)), quote=True)
    return page.replace("{{page_config}}", config).encode()


async def page_config(request: web.Request) -> web.Response:
    return web.json_response(
        page_config_of(request.app[SETTINGS], request.app.get(PROFILE)),
        headers={"Cache-Control": "no-cache"},  # settings change with a restart, not a page
    )


async def openapi_json(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())


async def _backends(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = app[POOL]
    es = AsyncElasticsearch(settings.es_url, request_timeout=settings.es_timeout_seconds + 1)
    try:
        catalogue = CatalogueSearch(es, await _catalogue_fields(es, app))
    except BaseException:
        await es.close()  # a profile that does not fit: nothing else was started here
        raise
    session = aiohttp.ClientSession()
    # An image_url's body is held to the same cap as an upload.
    fetcher = ImageFetcher(settings.fetch_policy(settings.max_upload_bytes))
    matcher = MatcherClient(session, settings.matcher_urls, settings.matcher_timeout_seconds)
    app[SERVICE] = SearchService(settings, catalogue, matcher, pool, fetcher)
    app[THUMBNAILS] = ThumbnailCache(pool)
    yield
    await fetcher.close()
    await session.close()
    await es.close()


async def _catalogue_fields(es: AsyncElasticsearch, app: web.Application) -> CatalogueFields:
    """lookalike's own index, or the library's, checked against its profile (ProfileError
    naming the field: the gateway does not start)."""
    profile = app.get(PROFILE)
    if profile is None:
        return CatalogueFields.own(app[SETTINGS].es_alias)
    await wait_for_elasticsearch(es, timeout=120)
    await check_profile(es, profile)
    return CatalogueFields.of_profile(profile, await index_properties(es, profile.alias))


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


async def index_page(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[INDEX_HTML],
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def public_message(exc: BadRequest) -> str:
    """The message a client sees: what was wrong with its request, in its own terms."""
    cause = exc.__cause__
    if isinstance(cause, FetchError):
        field = exc.field or "image_url"
        log.info(
            "image URL refused", extra={"field": field, "code": cause.code, "detail": str(cause)}
        )
        message = _FETCH_MESSAGES.get(cause.code, "image_url cannot be fetched")
        return message.replace("image_url", field)
    return str(exc)


def public_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A search document as anyone may see it: a file:// image_url names a path on our
    disks, so only an http(s) one is shown."""
    url = doc.get("image_url")
    if isinstance(url, str) and not url.lower().startswith(("http://", "https://")):
        return {k: v for k, v in doc.items() if k != "image_url"}
    return doc


async def search(request: web.Request) -> web.StreamResponse:
    timeline = start_timeline()
    started = timeline.started
    service = request.app[SERVICE]
    try:
        # Waiting for the client's upload is not the gateway's own time: note it apart.
        settings = request.app[SETTINGS]
        parsed = await read_search_request(
            request, settings.max_upload_bytes, settings.page_size, service.catalogue.fields.extra
        )
        timeline.record("upload", started, time.perf_counter())
        # PoolUnavailable (no worker process can analyse) becomes a 503 in json_errors.
        query = await service.query_image(parsed)
    except BadRequest as exc:
        refused = error_response(exc.status, exc.code, public_message(exc), exc.field)
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
            if line["type"] == "hit":
                line["doc"] = public_doc(line["doc"])
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


async def compare(request: web.Request) -> web.Response:
    """Is b the same artwork as a? Two images in, the matcher's verdict out."""
    try:
        parsed = await read_compare_request(request, request.app[SETTINGS].max_upload_bytes)
        answer = await compare_images(request.app[SERVICE], parsed)
    except BadRequest as exc:
        refused = error_response(exc.status, exc.code, public_message(exc), exc.field)
        if exc.status == 413:
            refused.force_close()
        return refused
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def catalogue_document(request: web.Request) -> tuple[str, dict[str, Any]] | web.Response:
    """The id in the path and its catalogue document, or the error answer: 400 for an id
    that is not a catalogue id, 404 for one not in the catalogue, 503 while it cannot say."""
    try:
        image_id = _IMAGE_ID.validate_python(request.match_info["image_id"])
    except ValidationError:
        return error_response(
            400, "invalid_parameter", "image_id is not a catalogue image id", "image_id"
        )
    try:
        doc = await timed(
            "es_hydrate",
            request.app[SERVICE].catalogue.document(image_id),
            request.app[SETTINGS].es_timeout_seconds,
        )
    except BackendFailed:
        return error_response(503, "backend_unavailable", "the catalogue is unavailable right now")
    if doc is None:
        return error_response(404, "not_found", f"no catalogue image {image_id!r}")
    return image_id, doc


async def image_colors(request: web.Request) -> web.Response:
    """The palette of a catalogue image (colours and their shares), to show or search by."""
    found = await catalogue_document(request)
    if isinstance(found, web.Response):
        return found
    image_id, doc = found
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
    found = await catalogue_document(request)
    if isinstance(found, web.Response):
        return found
    image_id, doc = found
    service = request.app[SERVICE]
    cache = request.app[THUMBNAILS]
    version = int(doc.get("version", 0))
    headers = {"Cache-Control": "public, max-age=3600", "ETag": f'"{image_id}-{version}"'}
    if _matches_etag(request.headers.get("If-None-Match"), headers["ETag"]):
        return web.Response(status=304, headers=headers)  # the browser's copy is current
    body = cache.get(image_id, version)
    if body is None:
        try:
            data = await service.fetcher.fetch(doc["image_url"])
            body = await cache.render(image_id, version, data)
        except (FetchError, ImageRejected) as exc:
            log.warning(
                "catalogue image cannot be shown",
                extra={"image_id": image_id, "code": exc.code, "detail": str(exc)},
            )
            return error_response(502, exc.code, "the catalogue image cannot be shown")
    return web.Response(body=body, content_type="image/jpeg", headers=headers)


def _matches_etag(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match holds `*` or a list of entity tags, weak ones (W/"...") included."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
