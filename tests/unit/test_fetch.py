from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from lookalike_shared.fetch import FetchError, FetchPolicy, ImageFetcher
from lookalike_stack.processes import free_port


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    """A local HTTP server: /ok (bytes), /missing (404), /boom (503), /to-metadata (redirect)."""

    async def ok(_: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8 image bytes")

    async def boom(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/boom", boom)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x.jpg",
        "http://localhost/x.jpg",
        "http://[::1]/x.jpg",
        "http://10.0.0.5/x.jpg",
        "http://192.168.1.1/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/x.jpg",
        "http://2130706433/x.jpg",  # 127.0.0.1 as one number
        "http://127.1/x.jpg",
        "http://0x7f000001/x.jpg",
        "ftp://example.org/x.jpg",
        "gopher://example.org/",
    ],
)
async def test_urls_inside_our_network_are_refused_by_default(url: str) -> None:
    async with ImageFetcher(FetchPolicy()) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(url)
    assert caught.value.code == "url_forbidden"
    assert not caught.value.transient


async def test_file_urls_outside_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "catalogue"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"ok")
    (tmp_path / "secret.txt").write_text("no")
    async with ImageFetcher(FetchPolicy(file_root=root)) as fetcher:
        assert await fetcher.fetch((root / "a.jpg").as_uri()) == b"ok"
        for url in (f"file://{root}/../secret.txt", "file:///etc/passwd"):
            with pytest.raises(FetchError, match="outside the file root"):
                await fetcher.fetch(url)
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch((root / "gone.jpg").as_uri())
        assert caught.value.code == "fetch_not_found"


async def test_http_answers_map_to_permanent_or_transient_errors(image_host: str) -> None:
    policy = FetchPolicy(allow_private_networks=True, max_bytes=1000)
    async with ImageFetcher(policy) as fetcher:
        assert await fetcher.fetch(f"{image_host}/ok") == b"\xff\xd8 image bytes"
        with pytest.raises(FetchError) as missing:
            await fetcher.fetch(f"{image_host}/missing")
        with pytest.raises(FetchError) as unavailable:
            await fetcher.fetch(f"{image_host}/boom")
        with pytest.raises(FetchError) as too_big:
            await fetcher.fetch(f"{image_host}/big")
    assert (missing.value.code, missing.value.transient) == ("fetch_not_found", False)
    assert (unavailable.value.code, unavailable.value.transient) == ("fetch_http_error", True)
    assert too_big.value.code == "image_too_large"


async def test_redirects_are_checked_hop_by_hop(image_host: str) -> None:
    # The test server itself is on loopback, so allow only its exact host and see the
    # redirect to the metadata address refused.
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_private_networks=True)
    async with ImageFetcher(policy) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"{image_host}/to-metadata")
    assert caught.value.code == "url_forbidden"


async def test_connection_refused_is_transient() -> None:
    async with ImageFetcher(FetchPolicy(allow_private_networks=True, timeout_seconds=2)) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"http://127.0.0.1:{free_port()}/x.jpg")
    assert caught.value.transient
