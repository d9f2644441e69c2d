"""Pieces every service's HTTP side shares: health and metrics routes, the JSON error shape
for every failure (ours or aiohttp's), security headers, a deadline for request bodies and
a shape check for JSON bodies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .contracts import ErrorBody, ErrorDetail
from .pool import PoolUnavailable
from .readiness import Readiness

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVER = "lookalike"  # aiohttp's default names the Python and aiohttp versions
# What an API answer may load or run in a browser: nothing; and no page may frame it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# aiohttp's limits on the request line and on each header line, set here so each service
# states them. aiohttp answers a plain-text 400 itself when they are passed, before any
# handler runs; the same field limit applies to each multipart part's headers, which is
# ours to answer (json_errors).
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190

_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "unprocessable",
    429: "too_many_requests",
}
_MESSAGES = {
    404: "there is nothing at this address",
    405: "this address does not take that method",
    413: "the request body is over the size limit",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    return web.json_response(body.model_dump(exclude_none=True), status=status)


class BodyTimeout(Exception):
    """The client did not send its whole body before the deadline."""


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure in the JSON error shape, and none that says anything about our insides:
    aiohttp's own HTTP errors (404, 405, 413...) keep their status; malformed body framing
    is a 400; anything uncaught is logged and answered with a bare 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        response = error_response(
            exc.status,
            _CODES.get(exc.status, f"http_{exc.status}"),
            _MESSAGES.get(exc.status, exc.reason.lower()),
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except HttpProcessingError as exc:
        # Raised while reading the body: a multipart part whose headers are too long or
        # broken, a chunk that does not parse. The connection's framing is lost: close it.
        log.info("malformed request body", extra={"path": request.path, "error": repr(exc)})
        response = error_response(
            400, "invalid_body", "the request body is malformed or a part's headers too long"
        )
        response.force_close()
        return response
    except BodyTimeout as exc:
        response = error_response(408, "request_timeout", str(exc))
        response.force_close()  # the rest of the body may still be trickling in
        return response
    except PoolUnavailable as exc:
        log.warning("worker pool unavailable", extra={"path": request.path, "error": str(exc)})
        return error_response(
            503, "backend_unavailable", "images cannot be processed right now; try again shortly"
        )
    except (ConnectionResetError, asyncio.CancelledError):
        raise  # the client went away: nobody to answer
    except Exception:
        log.exception("request failed", extra={"path": request.path})
        return error_response(500, "internal_error", "something went wrong on our side")


def body_deadline(seconds: float) -> Middleware:
    """Cut off a client that trickles its body: once `seconds` have passed since the headers
    arrived and the body is still incomplete, whatever reads it gets BodyTimeout (408)."""

    def cut_off(request: web.Request) -> None:
        if not request.content.is_eof():
            request.content.set_exception(
                BodyTimeout(f"the request body did not arrive within {seconds:g} s")
            )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        timer = asyncio.get_running_loop().call_later(seconds, cut_off, request)
        try:
            return await handler(request)
        finally:
            timer.cancel()

    return middleware


def secure_headers(app: web.Application, csp: str = API_CSP) -> None:
    """Send the security headers on every answer of `app`, errors and files included."""

    async def add(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER
        response.headers["Content-Security-Policy"] = csp
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"

    app.on_response_prepare.append(add)


class JsonTooComplex(ValueError):
    pass


_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b"[]{},")


def check_json_shape(body: bytes, max_depth: int, max_values: int) -> None:
    """Refuse a JSON body nested deeper than `max_depth` or with more than `max_values`
    values, before parsing it (a parser recurses per level and builds every value). The
    scan is linear and runs in C but for one step per string and per bracket or comma, of
    which it takes at most `max_values`; a huge string value (a pasted image) costs one
    memchr. Raises JsonTooComplex."""
    if b"\\" in body:
        # Drop escaped backslashes, then escaped quotes: every quote left delimits a string.
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    depth = values = pos = 0
    while pos < len(body):
        quote = body.find(b'"', pos)
        outside = body[pos:] if quote < 0 else body[pos:quote]
        for char in outside.translate(None, _NOT_STRUCTURAL):
            values += 1
            if char in b"[{":
                depth += 1
                if depth > max_depth:
                    raise JsonTooComplex(f"the JSON body is nested deeper than {max_depth} levels")
            elif char in b"]}":
                depth -= 1
            if values > max_values:
                break
        if quote < 0:
            break
        end = body.find(b'"', quote + 1)
        values += 1
        if values > max_values or end < 0:  # unterminated: the parser will say so
            break
        pos = end + 1
    if values > max_values:
        raise JsonTooComplex(f"the JSON body has more than {max_values} values")


# What /readyz answers while a service is not ready (503), for the OpenAPI documents.
NOT_READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "const": "not-ready"},
        "reason": {"type": "string", "description": "The first part not ready, and why."},
        "reasons": {"type": "array", "items": {"type": "string"}, "description": "Each part."},
    },
}


def add_health_routes(
    app: web.Application, readiness: Readiness, registry: CollectorRegistry
) -> None:
    """/livez, /readyz (503 with the first reason as `reason`, all of them as `reasons`,
    while not ready) and /metrics: the service's own `registry` (lookalike_shared.metrics),
    never the process-global one, so that each service shows only its own families."""

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reasons = readiness.reasons
        if not reasons:
            return web.json_response({"status": "ready"})
        body = {"status": "not-ready", "reason": reasons[0], "reasons": reasons}
        return web.json_response(body, status=503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def start_site(
    app: web.Application, host: str, port: int, **runner_options: Any
) -> web.AppRunner:
    """Start up `app` (its cleanup contexts' first halves) and serve it on host:port."""
    runner = web.AppRunner(
        app,
        access_log=None,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
        **runner_options,
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
