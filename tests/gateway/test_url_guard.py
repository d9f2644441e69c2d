"""The gateway judges a stranger's image_url as its HTTP client will read it: loopback in
disguise is still loopback, a malformed URL is a 400, and file:// is never read for one."""

from __future__ import annotations

import pytest
from aiohttp import web

from lookalike_stack.processes import free_port
from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.services import start_app


@pytest.mark.parametrize(
    "host",
    [
        "127\u30020\u30020\u30021",  # ideographic full stops
        "\u2460\u2461\u2466.0.0.1",  # circled digits
        "\uff11\uff12\uff17.0.0.1",  # full-width digits
    ],
)
async def test_image_url_naming_loopback_in_disguise_is_refused_before_any_request(
    indexed_catalogue: IndexedCatalogue, host: str
) -> None:
    image = resized_copy(sample_path(indexed_catalogue.root, "img-00003"), 0.5)
    asked: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=image, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/cat.jpg", serve)
    port = free_port()
    runner = await start_app(app, port)
    try:
        answer = await indexed_catalogue.gateway.search(image_url=f"http://{host}:{port}/cat.jpg")
    finally:
        await runner.cleanup()

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "url_forbidden"
    assert asked == []  # nothing inside our network was reached


@pytest.mark.parametrize(
    "url",
    [
        "http://[x]/a.png",
        "http://[::1",
        "http://2130706433/a.png",  # 127.0.0.1 as one number, to some resolvers
        "http://127.1/a.png",
        "http://0x7f000001/a.png",
    ],
)
async def test_malformed_image_url_is_a_400_naming_the_field(
    indexed_catalogue: IndexedCatalogue, url: str
) -> None:
    answer = await indexed_catalogue.gateway.search(image_url=url)

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "url_invalid"
    assert answer.error["field"] == "image_url"


async def test_image_url_never_reads_a_file_even_inside_the_file_root(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    inside = sample_path(indexed_catalogue.root, "img-00003").as_uri()

    answer = await indexed_catalogue.gateway.search(image_url=inside)

    assert answer.status == 400, answer.lines
    assert answer.error["code"] == "url_forbidden"
    assert str(indexed_catalogue.root) not in answer.error["message"]
