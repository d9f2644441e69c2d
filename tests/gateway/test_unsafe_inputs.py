"""Whatever a stranger sends gets a clear 4xx before anything is streamed: broken and hostile
images, oversized bodies, and image URLs that point inside our network."""

from __future__ import annotations

import asyncio
import io
import zlib
from collections.abc import AsyncIterator
from struct import pack

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from lookalike_stack.processes import free_port
from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.services import start_app


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return pack(">I", len(data)) + kind + data + pack(">I", zlib.crc32(kind + data))


def decompression_bomb(side: int = 30_000) -> bytes:
    """A valid, tiny PNG that declares side x side pixels (900 MP of zeros, a few hundred KB
    compressed): what a bomb looks like to a decoder."""
    row = b"\x00" + b"\x00" * (side // 8)  # filter byte + 1-bit pixels
    body = zlib.compress(row * side, 9)
    header = pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def _jpeg(indexed: IndexedCatalogue) -> bytes:
    return resized_copy(sample_path(indexed.root, "img-00003"), 0.5)


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("empty", 422, "empty_image"),
        ("truncated_jpeg", 422, "corrupt_image"),
        ("pdf_named_jpg", 422, "not_an_image"),
        ("text_named_png", 422, "not_an_image"),
        ("decompression_bomb", 413, "decompression_bomb"),
        ("too_small", 422, "image_too_small"),
    ],
)
async def test_search_refuses_an_upload_that_is_not_a_usable_image(
    indexed_catalogue: IndexedCatalogue, name: str, status: int, code: str
) -> None:
    good = _jpeg(indexed_catalogue)
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4)).save(tiny, "PNG")
    bodies = {
        "empty": b"",
        "truncated_jpeg": good[: len(good) // 2],
        "pdf_named_jpg": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
        "text_named_png": b"hello, this is not a picture",
        "decompression_bomb": decompression_bomb(),
        "too_small": tiny.getvalue(),
    }

    answer = await indexed_catalogue.gateway.search(bodies[name], filename="photo.jpg")

    assert answer.status == status, answer.lines
    assert answer.error["code"] == code
    assert answer.error["field"] == "image"


async def test_search_rejects_oversized_upload_with_413(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    image = _jpeg(indexed_catalogue)
    async with indexed_catalogue.another_gateway(max_upload_bytes=len(image) - 1) as gateway:
        too_big = await gateway.search(image)
        too_big_json = await gateway.search_json({"q": "x" * len(image)})

    assert too_big.status == 413
    assert too_big.error["code"] in ("request_too_large", "image_too_large")
    assert too_big_json.status == 413


async def test_search_rejects_oversized_chunked_upload_while_streaming(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    """No Content-Length to refuse it by: the cap must hold while the body streams in."""
    boundary = "lookalikeboundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f"--{boundary}\r\nContent-Disposition: form-data; name=image; filename=a.jpg\r\n"
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(64):  # 4 MB in all, the limit is 1 MB
            yield b"\xff" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    async with indexed_catalogue.another_gateway(max_upload_bytes=1024 * 1024) as gateway:
        try:
            answer = await gateway.post(
                data=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
            )
        except aiohttp.ClientError:
            pytest.fail("the gateway should answer 413, not drop the connection")

    assert answer.status == 413
    assert answer.error["field"] == "image"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/cat.jpg",
        "http://localhost:{port}/cat.jpg",
        "http://[::1]:{port}/cat.jpg",
        "http://[::ffff:127.0.0.1]:{port}/cat.jpg",
        "http://2130706433:{port}/cat.jpg",  # 127.0.0.1 as one number: caught after DNS
        "http://127.1:{port}/cat.jpg",
        "http://0x7f000001:{port}/cat.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/cat.jpg",
        "http://192.168.0.1/cat.jpg",
        "http://[fe80::1]/cat.jpg",
        "ftp://example.org/cat.jpg",
        "file:///etc/passwd",
        "file:///{root}/../../etc/passwd",
    ],
)
async def test_image_url_inside_our_network_is_refused(
    indexed_catalogue: IndexedCatalogue, url: str
) -> None:
    # A real server with a real image listens there, so only the policy stands in the way.
    image = _jpeg(indexed_catalogue)

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/cat.jpg", serve)
    port = free_port()
    runner = await start_app(app, port)
    try:
        target = url.format(port=port, root=str(indexed_catalogue.root).lstrip("/"))
        answer = await indexed_catalogue.gateway.search(image_url=target)
    finally:
        await runner.cleanup()

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "url_forbidden"
    assert answer.error["field"] == "image_url"


@pytest.fixture
async def image_host() -> AsyncIterator[str]:
    """A host the tests' gateways trust: redirects inwards, a slow answer, a huge body."""

    async def to_loopback(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{request.url.port}/secret.jpg")

    async def to_metadata(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.Event().wait()  # never answers; the client's deadline must end it
        raise AssertionError("unreachable")

    async def huge(_: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await resp.prepare(_)
        for _i in range(64):
            await resp.write(b"\xff" * 65536)
        return resp

    app = web.Application()
    app.router.add_get("/to-loopback.jpg", to_loopback)
    app.router.add_get("/to-metadata.jpg", to_metadata)
    app.router.add_get("/slow.jpg", slow)
    app.router.add_get("/huge.jpg", huge)
    port = free_port()
    runner = await start_app(app, port)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/to-loopback.jpg", "/to-metadata.jpg"])
async def test_image_url_redirect_inside_our_network_is_refused(
    indexed_catalogue: IndexedCatalogue, image_host: str, path: str
) -> None:
    # Only this one test host is trusted; where it redirects is checked again.
    async with indexed_catalogue.another_gateway(
        allowed_hosts=["127.0.0.1"], allow_private_networks=True
    ) as gateway:
        answer = await gateway.search(image_url=f"{image_host}{path}")

    assert answer.status == 400
    assert answer.error["code"] == "url_forbidden"


async def test_image_url_that_never_answers_fails_within_the_fetch_deadline(
    indexed_catalogue: IndexedCatalogue, image_host: str
) -> None:
    async with indexed_catalogue.another_gateway(
        allow_private_networks=True, fetch_timeout_seconds=0.5
    ) as gateway:
        answer = await asyncio.wait_for(gateway.search(image_url=f"{image_host}/slow.jpg"), 10)

    assert 400 <= answer.status < 600 and answer.status != 500
    assert answer.error["code"] == "fetch_timeout"


async def test_image_url_with_a_body_over_the_cap_is_refused(
    indexed_catalogue: IndexedCatalogue, image_host: str
) -> None:
    async with indexed_catalogue.another_gateway(
        allow_private_networks=True, max_upload_bytes=1024 * 1024
    ) as gateway:
        answer = await gateway.search(image_url=f"{image_host}/huge.jpg")

    assert 400 <= answer.status < 500
    assert answer.error["code"] == "image_too_large"
