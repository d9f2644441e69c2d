from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from lookalike_shared.fetch import FetchError, FetchPolicy, ImageFetcher
from lookalike_stack.processes import free_port


class ImageHost:
    """A local HTTP server and the paths it was asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.url = ""


async def _serve(host: str = "127.0.0.1") -> AsyncIterator[ImageHost]:
    """/ok (bytes), /missing (404), /boom (503), /to-metadata and /to-loopback (redirects)."""
    served = ImageHost()

    @web.middleware
    async def note(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        served.requests.append(request.path)
        return await handler(request)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8 image bytes")

    async def boom(_: web.Request) -> web.Response:
        return web.Response(status=503)

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def to_loopback(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.1:{port}/ok")

    app = web.Application(middlewares=[note])
    app.router.add_get("/to-loopback", to_loopback)
    app.router.add_get("/ok", ok)
    app.router.add_get("/boom", boom)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    served.url = f"http://{host}:{port}"
    yield served
    await runner.cleanup()


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    async for served in _serve():
        yield served.url


@pytest.fixture
async def loopback_host() -> AsyncIterator[ImageHost]:
    async for served in _serve():
        yield served


@pytest.fixture
async def trusted_host() -> AsyncIterator[ImageHost]:
    """A server on 127.0.0.2: a catalogue's image server on a network the policy trusts."""
    async for served in _serve("127.0.0.2"):
        yield served


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


@pytest.mark.parametrize(
    "spelling",
    [
        "127\u30020\u30020\u30021",  # ideographic full stops
        "\u2460\u2461\u2466.0.0.1",  # circled digits
        "\uff11\uff12\uff17.0.0.1",  # full-width digits
        "127.0.0.1.",  # a trailing dot
        "[::ffff:127.0.0.1]",  # IPv4 inside IPv6
    ],
)
async def test_loopback_in_disguise_is_refused_before_any_request(
    loopback_host: ImageHost, spelling: str
) -> None:
    port = loopback_host.url.rsplit(":", 1)[1]
    async with ImageFetcher(FetchPolicy()) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"http://{spelling}:{port}/ok")
    assert caught.value.code == "url_forbidden"
    assert loopback_host.requests == []


async def test_a_name_that_resolves_inside_our_network_is_refused_at_connect(
    loopback_host: ImageHost,
) -> None:
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    if ipaddress.ip_address(address).is_global:
        pytest.skip(f"{name!r} resolves to a public address")
    port = loopback_host.url.rsplit(":", 1)[1]
    async with ImageFetcher(FetchPolicy()) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"http://{name}:{port}/ok")
    assert caught.value.code == "url_forbidden"
    assert loopback_host.requests == []


async def test_each_redirect_hop_is_checked_at_connect(
    trusted_host: ImageHost, loopback_host: ImageHost
) -> None:
    trusted = (ipaddress.ip_network("127.0.0.2/32"),)
    async with ImageFetcher(FetchPolicy(trusted_networks=trusted)) as fetcher:
        assert await fetcher.fetch(f"{trusted_host.url}/ok") == b"\xff\xd8 image bytes"
        for path in ("/to-loopback", "/to-metadata"):
            with pytest.raises(FetchError) as caught:
                await fetcher.fetch(f"{trusted_host.url}{path}")
            assert caught.value.code == "url_forbidden"
    assert trusted_host.requests == ["/ok", "/to-loopback", "/to-metadata"]
    assert loopback_host.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[x]/a.png",
        "http://[::1",
        "http://exa mple.org/\r\nHost: x",
        "http:///a.png",
        "http://2130706433/x.jpg",  # 127.0.0.1 as one number
        "http://127.1/x.jpg",
        "http://0x7f000001/x.jpg",
    ],
)
async def test_malformed_urls_are_refused_as_invalid(url: str) -> None:
    async with ImageFetcher(FetchPolicy()) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(url)
    assert caught.value.code == "url_invalid"
    assert not caught.value.transient


async def test_file_urls_are_refused_where_files_are_not_allowed(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"ok")
    async with ImageFetcher(FetchPolicy(file_root=tmp_path)) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch((tmp_path / "a.jpg").as_uri(), allow_files=False)
        assert caught.value.code == "url_forbidden"
        with pytest.raises(FetchError) as nul:
            await fetcher.fetch(f"file://{tmp_path}/a.jpg%00.png")
        assert nul.value.code == "url_invalid"


async def test_connection_refused_is_transient() -> None:
    async with ImageFetcher(FetchPolicy(allow_private_networks=True, timeout_seconds=2)) as fetcher:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"http://127.0.0.1:{free_port()}/x.jpg")
    assert caught.value.transient
