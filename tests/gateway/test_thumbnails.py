"""The thumbnail route as the page and a browser cache use it: a JPEG with an ETag that
follows the image's version, 304 for a copy that is current, 404 for an unknown image and
502 (never a 500) for a catalogue image that cannot be fetched or decoded."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch
from multidict import CIMultiDict
from PIL import Image

from lookalike_shared.search_index import ensure_index
from tests.fixtures.gateway import Gateway, IndexedCatalogue

CAT = "img-00003"


async def _get(
    gateway: Gateway, image_id: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    url = f"{gateway.url}/v1/images/{image_id}/thumbnail"
    async with gateway.http.get(url, headers=headers or {}) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def test_a_thumbnail_is_a_small_jpeg_and_a_current_copy_is_not_sent_again(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway
    status, headers, body = await _get(gateway, CAT)
    assert status == 200
    assert headers["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(body)) as im:
        assert im.format == "JPEG"
        assert max(im.size) <= 360

    etag = headers["ETag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, again, body = await _get(gateway, CAT, {"If-None-Match": sent})
        assert (status, body) == (304, b""), sent
        assert again["ETag"] == etag
    status, _, body = await _get(gateway, CAT, {"If-None-Match": '"img-00003-0"'})
    assert status == 200 and body  # a stale copy gets the image


async def test_an_unknown_image_is_a_404(indexed_catalogue: IndexedCatalogue) -> None:
    status, _, body = await _get(indexed_catalogue.gateway, "img-99999")
    assert status == 404
    assert b"not_found" in body


async def _catalogue_of(
    indexed: IndexedCatalogue, alias: str, documents: dict[str, dict[str, Any]]
) -> None:
    async with AsyncElasticsearch(indexed.settings.es_url) as es:
        await ensure_index(es, alias)
        for image_id, doc in documents.items():
            await es.index(index=alias, id=image_id, document=doc, refresh=True)


async def test_an_image_that_cannot_be_shown_is_a_502_and_a_new_version_a_new_etag(
    indexed_catalogue: IndexedCatalogue, tmp_path: Path
) -> None:
    """A catalogue of its own: a missing file, a PDF named .jpg, and an image replaced by a
    new version (whose thumbnail and ETag must change)."""
    (tmp_path / "fake.jpg").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n")
    Image.new("RGB", (640, 480), "red").save(tmp_path / "red.jpg")
    Image.new("RGB", (480, 640), "blue").save(tmp_path / "blue.jpg")

    def doc(version: int, name: str) -> dict[str, Any]:
        return {"version": version, "image_url": (tmp_path / name).as_uri(), "deleted": False}

    alias = f"lookalike-thumbs-{uuid.uuid4().hex[:8]}"
    await _catalogue_of(
        indexed_catalogue,
        alias,
        {
            "img-gone": doc(1, "gone.jpg"),
            "img-pdf": doc(1, "fake.jpg"),
            "img-art": doc(1, "red.jpg"),
        },
    )
    async with indexed_catalogue.another_gateway(es_alias=alias, file_root=str(tmp_path)) as gw:
        for image_id in ("img-gone", "img-pdf"):
            status, _, body = await _get(gw, image_id)
            assert status == 502, image_id
            assert b"cannot be shown" in body

        status, first, body = await _get(gw, "img-art")
        assert status == 200
        with Image.open(io.BytesIO(body)) as im:
            assert im.width > im.height  # the red landscape

        await _catalogue_of(indexed_catalogue, alias, {"img-art": doc(2, "blue.jpg")})
        status, second, body = await _get(gw, "img-art", {"If-None-Match": first["ETag"]})
        assert status == 200  # the browser's copy is of version 1: it gets version 2
        assert second["ETag"] != first["ETag"]
        with Image.open(io.BytesIO(body)) as im:
            assert im.height > im.width  # the blue portrait, not the cached red one
