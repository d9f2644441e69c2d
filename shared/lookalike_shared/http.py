"""Pieces every service's HTTP side shares: health and metrics routes, JSON errors."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from .contracts import ErrorBody, ErrorDetail

# Returns None when ready, else a short reason such as "INDEX-NOT-LOADED".
ReadinessCheck = Callable[[], str | None]


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    return web.json_response(body.model_dump(exclude_none=True), status=status)


def add_health_routes(
    app: web.Application, readiness: ReadinessCheck, registry: CollectorRegistry = REGISTRY
) -> None:
    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reason = readiness()
        if reason is None:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not-ready", "reason": reason}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return resp

    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
