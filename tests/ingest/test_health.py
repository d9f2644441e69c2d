"""Ingest's own HTTP side, on its port: /livez, /readyz (why it is not ready yet, 200 once
its consumer runs) and /metrics; a consumer loop that dies is the service's failure."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

from lookalike_ingest.service import init_app
from lookalike_ingest.settings import IngestSettings
from lookalike_shared.config import CommonSettings
from lookalike_shared.service import FAILURE
from lookalike_stack.processes import free_port
from tests.fixtures.services import ready_or_failed, start_app


@asynccontextmanager
async def running_ingest(
    settings: CommonSettings, **overrides: Any
) -> AsyncIterator[tuple[web.Application, str, aiohttp.ClientSession]]:
    port = free_port()
    app = init_app(
        IngestSettings(
            **{
                **settings.model_dump(),
                "bind_host": "127.0.0.1",
                "ingest_port": port,
                "group_id": f"lookalike-ingest-{uuid.uuid4().hex[:8]}",
                "pool_workers": 1,
                **overrides,
            }
        )
    )
    runner = await start_app(app, port)
    try:
        async with aiohttp.ClientSession() as http:
            yield app, f"http://127.0.0.1:{port}", http
    finally:
        await runner.cleanup()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()


async def test_readyz_says_why_while_the_backends_are_unreachable(
    lookalike_settings: CommonSettings,
) -> None:
    dead = lookalike_settings.model_copy(update={"es_url": f"http://127.0.0.1:{free_port()}"})
    async with running_ingest(dead) as (_, url, http):
        assert await _get(http, f"{url}/readyz") == (
            503,
            {
                "status": "not-ready",
                "reason": "BACKENDS-UNREACHABLE",
                "reasons": ["BACKENDS-UNREACHABLE"],
            },
        )
        assert await _get(http, f"{url}/livez") == (200, {"status": "ok"})


async def test_readyz_is_200_once_consuming_and_metrics_are_ingests(
    lookalike_settings: CommonSettings,
) -> None:
    async with running_ingest(lookalike_settings) as (app, url, http):
        await ready_or_failed(app, 120)
        assert await _get(http, f"{url}/readyz") == (200, {"status": "ready"})
        async with http.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            assert "lookalike_ingest_events_total" in await resp.text()


async def test_a_consumer_loop_that_dies_fails_the_service_and_readyz_says_so(
    lookalike_settings: CommonSettings,
) -> None:
    # An index name Elasticsearch refuses (upper case, a space): the loop dies setting up.
    async with running_ingest(lookalike_settings, es_alias="Not An Index") as (app, url, http):
        reason = await asyncio.wait_for(app[FAILURE].wait(), 60)
        assert reason.startswith("the consumer failed (BadRequestError"), reason
        status, body = await _get(http, f"{url}/readyz")
        assert (status, body["reason"]) == (503, "CONSUMER-FAILED")
