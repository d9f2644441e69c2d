"""Whatever a stranger sends gets a clear 4xx before anything is streamed: broken and hostile
images, oversized bodies, and image URLs that point inside our network."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zlib
from collections.abc import AsyncIterator
from struct import pack
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from yarl import URL

from lookalike_stack.processes import free_port
from tests.fixtures.gateway import Gateway, IndexedCatalogue
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


# --- requests shaped to cost the server: every one a 4xx in the JSON error shape ----------


async def _raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes and read the whole answer (the server closes after an error)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
        body = await reader.readexactly(int(headers.get("Content-Length", "0")))
        return int(status_line.split()[1]), headers, body
    finally:
        writer.close()


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "b0undary") -> bytes:
    """A multipart body from (content-disposition params, content-type, content)."""
    out = b""
    for disposition, content_type, content in parts:
        out += f"--{boundary}\r\nContent-Disposition: form-data; {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def _still_serves(gateway: Gateway) -> None:
    answer = await gateway.search(q="cat")
    assert answer.status == 200 and answer.hits


async def test_a_multipart_part_whose_headers_pass_the_limit_is_a_400(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    """A 100 KB filename makes the part's header line longer than aiohttp reads (it was a
    500)."""
    gateway = indexed_catalogue.gateway
    body = _multipart([(f'name="image"; filename="{"a" * 100_000}.jpg"', "image/jpeg", b"x")])

    answer = await gateway.post(
        data=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "invalid_body"
    assert "a" * 100 not in answer.error["message"]
    await _still_serves(gateway)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", _nested(5000)),
        ("application/json", '{"q": ' + _nested(5000) + "}"),
        ("application/json", '{"colors": ' + _nested(40) + "}"),
        ("application/json", '{"q": [' + "1," * 20_000 + "1]}"),
    ],
    ids=["array-5000-deep", "value-5000-deep", "value-40-deep", "20000-values"],
)
async def test_a_json_body_nested_deep_or_wide_is_a_400_before_it_is_parsed(
    indexed_catalogue: IndexedCatalogue, content_type: str, body: str
) -> None:
    gateway = indexed_catalogue.gateway

    answer = await gateway.post(data=body.encode(), headers={"Content-Type": content_type})

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "invalid_body"
    await _still_serves(gateway)


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(_nested(5000).encode()).decode(),  # was a RecursionError
        base64.urlsafe_b64encode(b'{"o": ' + _nested(20).encode() + b"}").decode(),
        "é" * 10,
        "x" * 10_000,
    ],
    ids=["5000-deep", "20-deep", "not-ascii", "long"],
)
async def test_a_cursor_this_server_did_not_issue_is_a_400(
    indexed_catalogue: IndexedCatalogue, cursor: str
) -> None:
    for answer in (
        await indexed_catalogue.gateway.search(q="cat", cursor=cursor),
        await indexed_catalogue.gateway.search_json({"q": "cat", "cursor": cursor}),
    ):
        assert answer.status == 400, answer.lines
        assert answer.error["field"] == "cursor"


@pytest.mark.parametrize(
    "raw_id",
    ["%2E%2E", "%2E", "..%2F..%2Fetc", "a%20b", "_search", "-1", "x" * 201, "%00"],
)
async def test_thumbnail_of_an_id_outside_the_id_pattern_is_a_400(
    indexed_catalogue: IndexedCatalogue, raw_id: str
) -> None:
    """`..` reached Elasticsearch as `GET /lookalike-images/` (the id was not checked)."""
    gateway = indexed_catalogue.gateway
    url = URL(f"{gateway.url}/v1/images/{raw_id}/thumbnail", encoded=True)

    async with gateway.http.get(url) as resp:
        status, body = resp.status, await resp.json()

    assert status == 400
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] == "image_id"


async def test_thousands_of_form_parts_are_refused_after_the_cap(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    """20,000 `colors` parts kept the event loop busy for seconds joining them."""
    gateway = indexed_catalogue.gateway
    body = _multipart([('name="colors"', "", b"red")] * 20_000)

    multipart = await gateway.post(  # (a file object: aiohttp warns of large raw bytes)
        data=io.BytesIO(body), headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    form = await gateway.post(
        data="&".join(["colors=red"] * 20_000),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    for answer in (multipart, form):
        assert answer.status == 413, answer.lines
        assert answer.error["code"] == "too_many_fields"
    await _still_serves(gateway)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"colors": ",".join(["red"] * 13)}, "colors"),
        ({"colors": ["red"] * 20_000}, "colors"),
        ({"format": ["png"] * 7}, "format"),
        ({"format": "png,jpeg,gif,tiff,webp,bmp,png"}, "format"),
    ],
    ids=["13-colours", "20000-colours-json", "7-formats-json", "7-formats"],
)
async def test_list_parameters_longer_than_their_choices_are_refused(
    indexed_catalogue: IndexedCatalogue, fields: dict[str, Any], field: str
) -> None:
    gateway = indexed_catalogue.gateway
    answers = [await gateway.search_json({"q": "cat", **fields})]
    if isinstance(fields[field], str):
        answers.append(await gateway.search(q="cat", **fields))

    for answer in answers:
        assert answer.status in (400, 413), answer.lines
        assert answer.error.get("field") == field or answer.error["code"] == "invalid_body"


async def test_a_body_trickled_past_the_deadline_is_cut_off_with_408(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with indexed_catalogue.another_gateway(body_timeout_seconds=0.5) as gateway:
        # Headers promise 10,000 bytes, 10 arrive, then nothing: the server must give up.
        request = (
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n" + b'{"q": "ca'
        )
        status, headers, body = await asyncio.wait_for(_raw_exchange(gateway.url, request), 10)
        await _still_serves(gateway)

    assert status == 408
    assert headers.get("Connection") == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"


async def test_a_header_over_the_server_limit_is_refused_without_a_500(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway
    request = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"

    status, _, _ = await asyncio.wait_for(_raw_exchange(gateway.url, request), 10)

    assert status == 400  # aiohttp's own answer, before any handler
    await _still_serves(gateway)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/page", 404, "not_found"),
        ("GET", "/v1/search", 405, "method_not_allowed"),
        ("DELETE", "/v1/images/img-00003/thumbnail", 405, "method_not_allowed"),
        ("GET", "/static/../../etc/passwd", 404, "not_found"),
    ],
)
async def test_routes_and_methods_that_do_not_exist_answer_in_the_json_error_shape(
    indexed_catalogue: IndexedCatalogue, method: str, path: str, status: int, code: str
) -> None:
    gateway = indexed_catalogue.gateway
    url = URL(f"{gateway.url}{path}", encoded=True)

    async with gateway.http.request(method, url) as resp:
        assert resp.status == status
        assert resp.content_type == "application/json"
        assert (await resp.json())["error"]["code"] == code


# --- what an answer shows: nothing of our insides -----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///nonexistent/x.png",
        "file:///{root}/../../etc/passwd",
        "file:///{root}/missing.png",
        "http://10.1.2.3/cat.jpg",
    ],
)
async def test_a_refused_image_url_says_why_without_our_paths_or_addresses(
    indexed_catalogue: IndexedCatalogue, url: str
) -> None:
    root = str(indexed_catalogue.root)
    answer = await indexed_catalogue.gateway.search(image_url=url.format(root=root.lstrip("/")))

    assert 400 <= answer.status < 500, answer.lines
    assert answer.error["field"] == "image_url"
    assert root not in answer.error["message"]
    assert "/etc" not in answer.error["message"]


async def test_search_documents_never_show_a_file_path(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    image = _jpeg(indexed_catalogue)  # the sample catalogue's image_url are all file://
    answers = [
        await indexed_catalogue.gateway.search(q="cat"),
        await indexed_catalogue.gateway.search(image),
        await indexed_catalogue.gateway.search(image_id="img-00003"),
    ]

    docs = [hit["doc"] for answer in answers for hit in answer.hits]
    assert docs
    assert all(doc.get("image_url", "https://").startswith(("http://", "https://")) for doc in docs)
    assert str(indexed_catalogue.root) not in json.dumps([a.lines for a in answers])


# --- what every answer carries ------------------------------------------------------------


async def test_every_answer_carries_the_security_headers_and_no_version(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway
    answers = []
    for method, path in [
        ("GET", "/"),
        ("GET", "/static/main.js"),
        ("GET", "/openapi.json"),
        ("GET", "/readyz"),
        ("GET", "/v1/images/img-00003/thumbnail"),
        ("GET", "/v1/images/%2E%2E/thumbnail"),
        ("GET", "/nowhere"),
        ("POST", "/v1/search"),
    ]:
        async with gateway.http.request(
            method, URL(f"{gateway.url}{path}", encoded=True), data={"q": "cat"}
        ) as resp:
            await resp.read()
            answers.append((path, resp.status, resp.headers))

    for path, _, headers in answers:
        csp = headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert headers.get("X-Frame-Options") == "DENY", path
        assert headers.get("Server") == "lookalike", path
    assert {status for _, status, _ in answers} >= {200, 400, 404}


@pytest.mark.parametrize(
    "body",
    [
        # Found by the OpenAPI fuzz run (tests/gateway/test_fuzz_openapi.py) on the code
        # before this test: a part with no headers and no blank line was a 500.
        b"--b0undary\r\nNone--b0undary--\r\n",
        b"--b0undary\r\n\r\n",  # a part that never ends
        b"--b0undary\r\nContent-Disposition: form-data; name=q\r\n\r\ncat",  # no closing
        b"--elsewhere\r\n\r\nx\r\n--elsewhere--\r\n",  # not the declared boundary
        b"--b0undary\r\nContent-Disposition: form-data; name=q\r\n"
        + b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n--inner--\r\n--b0undary--\r\n",
        b"--b0undary\r\n" + b"X-Header: 1\r\n" * 200 + b"\r\nx\r\n--b0undary--\r\n",
    ],
    ids=["no-headers", "unended", "unclosed", "other-boundary", "nested", "200-headers"],
)
async def test_a_malformed_multipart_body_is_a_400(
    indexed_catalogue: IndexedCatalogue, body: bytes
) -> None:
    gateway = indexed_catalogue.gateway

    answer = await gateway.post(
        data=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )

    assert 400 <= answer.status < 500, answer.lines
    assert answer.error["code"] in ("invalid_body", "invalid_parameter")
    await _still_serves(gateway)
