"""A backend that is down or slow costs its part of the answer and adds a warning, never a
hang or a 500; lines stream as each group is ready; a client that leaves cancels the work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from lookalike_stack.processes import free_port
from tests.fixtures.gateway import IndexedCatalogue, fake_matcher
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.services import start_app, wait_until

CAT = "img-00003"


def _cat_copy(indexed: IndexedCatalogue) -> bytes:
    return resized_copy(sample_path(indexed.root, CAT), 0.5)


def _nothing_listening() -> str:
    return f"http://127.0.0.1:{free_port()}"


class HeldElasticsearch:
    """A pass-through proxy to the real Elasticsearch that can hold some searches back until
    the test lets them go, to see what the gateway does while they are pending."""

    def __init__(self, upstream: str, hold: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold = hold  # a request body containing this is held (the keyword search: aggs)
        self.release = asyncio.Event()
        self.holding = asyncio.Event()  # set once a request is being held
        self.held = 0
        self.seen: list[tuple[str, bytes]] = []  # (path, body) of every request, in order
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HeldElasticsearch:
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        port = free_port()
        self._runner = await start_app(app, port)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self._runner is not None and self._http is not None
        await self._runner.cleanup()
        await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        self.seen.append((request.path, body))
        if self.hold and self.hold.encode() in body:
            self.held += 1
            self.holding.set()
            await self.release.wait()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._http.request(
            request.method, f"{self.upstream}{request.rel_url}", data=body, headers=headers
        ) as resp:
            payload = await resp.read()
            keep = ("content-type", "x-elastic-product", "content-encoding")
            out = {k: v for k, v in resp.headers.items() if k.lower() in keep}
            return web.Response(status=resp.status, body=payload, headers=out)


async def test_with_elasticsearch_down_the_same_artwork_still_comes_back_with_a_warning(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    dead_es = _nothing_listening()
    async with indexed_catalogue.another_gateway(es_url=dead_es) as gateway:
        image = await asyncio.wait_for(gateway.search(_cat_copy(indexed_catalogue), q="cat"), 20)
        words = await asyncio.wait_for(gateway.search(q="cat"), 20)
        by_id = await asyncio.wait_for(gateway.search(image_id=CAT), 20)

    assert image.status == 200
    assert image.hits[0]["image_id"] == CAT
    assert image.hits[0]["match"] == "duplicate"
    assert "look-alikes are unavailable right now" in image.done["warnings"]
    # The warnings say what is missing, not where or why: that is for the log.
    said = " ".join(image.done["warnings"] + [by_id.error["message"]])
    assert urlsplit(dead_es).netloc not in said and "onnect" not in said
    assert words.status == 200
    assert words.hits == []
    assert words.done["warnings"] == ["keyword results are unavailable right now"]
    # "More like this" needs the catalogue to know the image: a clear 503, not a 500.
    assert by_id.status == 503
    assert by_id.error["code"] == "backend_unavailable"


async def test_with_the_matcher_down_look_alikes_and_keyword_hits_still_come_back(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with indexed_catalogue.another_gateway(matcher_urls=[_nothing_listening()]) as gateway:
        answer = await asyncio.wait_for(
            gateway.search(_cat_copy(indexed_catalogue), q="motorcycle"), 20
        )

    assert answer.status == 200
    assert "duplicate" not in {h["match"] for h in answer.hits}
    assert {"img-00020", "img-00021"} <= set(answer.ids)
    assert CAT in answer.ids  # it still looks like itself
    assert "duplicates are unavailable right now" in answer.done["warnings"]


async def test_one_matcher_shard_down_gives_the_other_shards_results_and_a_warning(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    dead = _nothing_listening()
    async with indexed_catalogue.another_gateway(
        matcher_urls=[indexed_catalogue.matcher_url, dead]
    ) as gateway:
        answer = await gateway.search(_cat_copy(indexed_catalogue))

    assert answer.hits[0]["image_id"] == CAT
    assert answer.hits[0]["match"] == "duplicate"
    # Which shard and why is for the log: the client learns that a part is missing.
    assert answer.done["warnings"] == [
        "1 of 2 matcher shards did not answer; some duplicates may be missing"
    ]


async def test_a_matcher_that_never_answers_costs_only_its_deadline(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async def never(_: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with (
        fake_matcher(never) as matcher_url,
        indexed_catalogue.another_gateway(
            matcher_urls=[matcher_url], matcher_timeout_seconds=0.5
        ) as gateway,
    ):
        answer = await asyncio.wait_for(gateway.search(_cat_copy(indexed_catalogue)), 10)

    assert answer.status == 200
    assert CAT in answer.ids  # from the look-alike search
    assert "duplicates are unavailable right now" in answer.done["warnings"]


async def test_a_matcher_answering_garbage_is_a_warning_not_a_500(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async def garbage(_: web.Request) -> web.Response:
        return web.Response(text="{not json", content_type="application/json")

    async with (
        fake_matcher(garbage) as matcher_url,
        indexed_catalogue.another_gateway(matcher_urls=[matcher_url]) as gateway,
    ):
        answer = await gateway.search(_cat_copy(indexed_catalogue))

    assert answer.status == 200
    assert CAT in answer.ids
    assert "duplicates are unavailable right now" in answer.done["warnings"]


async def test_slow_elasticsearch_costs_only_its_deadline(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with (
        HeldElasticsearch(indexed_catalogue.settings.es_url, hold="{") as es,
        indexed_catalogue.another_gateway(es_url=es.url, es_timeout_seconds=0.5) as gateway,
    ):
        answer = await asyncio.wait_for(gateway.search(_cat_copy(indexed_catalogue), q="cat"), 10)

    assert answer.status == 200
    assert answer.hits[0]["image_id"] == CAT  # the matcher's answer, without details
    warnings = answer.done["warnings"]
    assert "look-alikes are unavailable right now" in warnings
    assert "keyword results are unavailable right now" in warnings


async def _stream(
    http: aiohttp.ClientSession, url: str, form: aiohttp.FormData
) -> AsyncIterator[dict[str, Any]]:
    async with http.post(f"{url}/v1/search", data=form) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/x-ndjson"
        async for raw in resp.content:
            yield json.loads(raw)


async def test_the_same_artwork_streams_before_the_keyword_search_has_finished(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with (
        HeldElasticsearch(indexed_catalogue.settings.es_url, hold='"aggs"') as es,
        indexed_catalogue.another_gateway(es_url=es.url, es_timeout_seconds=30) as gateway,
    ):
        form = aiohttp.FormData()
        form.add_field("image", _cat_copy(indexed_catalogue), filename="q.jpg")
        form.add_field("q", "nasa")
        lines = _stream(indexed_catalogue.http, gateway.url, form)
        first = await asyncio.wait_for(anext(lines), 10)

        # Every keyword search is held until now: the first line could not wait for one.
        assert (first["type"], first["image_id"], first["match"]) == ("hit", CAT, "duplicate")
        es.release.set()
        rest = [line async for line in lines]
        assert es.held >= 1

    assert rest[-1]["type"] == "done"
    # The keyword answer came, late, and still counted: its matches lead the look-alikes.
    about_nasa = set((await indexed_catalogue.gateway.search(q="nasa")).ids)
    similar = [line["image_id"] for line in rest if line.get("match") == "similar"]
    assert similar[0] in about_nasa
    assert rest[-1]["warnings"] == []
    timings = rest[-1]["timings_ms"]
    assert timings["first_hit_at"] < timings["es_keyword_done_at"]


async def test_elasticsearch_is_asked_for_the_duplicates_before_its_searches(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    # A busy cluster (or the stand-in, which scans) would queue the cheap lookup of the
    # same artwork behind the look-alike and keyword searches if all were sent at once.
    async with (
        HeldElasticsearch(indexed_catalogue.settings.es_url, hold="") as es,
        indexed_catalogue.another_gateway(
            es_url=es.url, duplicates_head_start_seconds=10
        ) as gateway,
    ):
        form = aiohttp.FormData()
        form.add_field("image", _cat_copy(indexed_catalogue), filename="q.jpg")
        form.add_field("q", "nasa")
        lines = [line async for line in _stream(indexed_catalogue.http, gateway.url, form)]

    assert (lines[0]["image_id"], lines[0]["match"]) == (CAT, "duplicate")
    kinds = [
        "lookup" if path.endswith("/_mget") else "similar" if b'"knn"' in body else "keyword"
        for path, body in es.seen
        if path.endswith("/_mget") or b'"knn"' in body or b'"aggs"' in body
    ]
    assert kinds[0] == "lookup" and {"similar", "keyword"} <= set(kinds[1:]), kinds


async def _one_search_waiting(http: aiohttp.ClientSession, gateway_url: str) -> bool:
    async with http.get(f"{gateway_url}/metrics") as resp:
        text = await resp.text()
    return "lookalike_gateway_es_searches_waiting 1.0" in text.splitlines()


async def test_searches_beyond_the_bulkhead_wait_in_the_gateway_not_in_elasticsearch(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with (
        HeldElasticsearch(indexed_catalogue.settings.es_url, hold='"aggs"') as es,
        indexed_catalogue.another_gateway(
            es_url=es.url, es_max_concurrent_searches=1, es_timeout_seconds=30
        ) as gateway,
    ):
        searches = [asyncio.create_task(gateway.search(q=words)) for words in ("nasa", "astronaut")]
        await asyncio.wait_for(es.holding.wait(), 10)
        # The second search is in the gateway, waiting for the one slot, not at the cluster.
        await wait_until(
            lambda: _one_search_waiting(indexed_catalogue.http, gateway.url),
            10,
            "the second search to wait in the gateway",
        )
        assert es.held == 1
        es.release.set()
        answers = await asyncio.gather(*searches)

    assert es.held == 2
    assert all(a.status == 200 and a.done["warnings"] == [] and a.ids for a in answers)


async def test_client_that_goes_away_cancels_the_backend_calls(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    called = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(_: web.Request) -> web.Response:
        called.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()  # the gateway hung up on us
            raise
        raise AssertionError("unreachable")

    async with (
        fake_matcher(stuck) as matcher_url,
        indexed_catalogue.another_gateway(
            matcher_urls=[matcher_url], matcher_timeout_seconds=60
        ) as gateway,
    ):
        form = aiohttp.FormData()
        form.add_field("image", _cat_copy(indexed_catalogue), filename="q.jpg")
        resp = await indexed_catalogue.http.post(f"{gateway.url}/v1/search", data=form)
        assert resp.status == 200  # headers are out: the search is under way
        await asyncio.wait_for(called.wait(), 10)

        resp.close()  # the person closed the tab

        await asyncio.wait_for(cancelled.wait(), 10)


async def test_answers_never_hang_when_every_backend_is_down(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with indexed_catalogue.another_gateway(
        es_url=_nothing_listening(), matcher_urls=[_nothing_listening()]
    ) as gateway:
        by_image = await asyncio.wait_for(gateway.search(_cat_copy(indexed_catalogue)), 20)
        by_id = await asyncio.wait_for(gateway.search(image_id=CAT), 20)

    # An image search streams an answer that says what is missing...
    assert by_image.status == 200
    assert by_image.hits == []
    assert len(by_image.done["warnings"]) >= 2
    # ...while "more like this" cannot even learn what the image is: a clear 503.
    assert by_id.status == 503
    assert by_id.error["code"] == "backend_unavailable"
