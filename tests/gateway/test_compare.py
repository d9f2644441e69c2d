"""POST /v1/compare on the gateway: uploads, URLs and catalogue ids in, the verdict and its
overlay picture out, over the real matcher and Elasticsearch of the indexed sample."""

from __future__ import annotations

import base64
import io
from typing import Any

import aiohttp
from PIL import Image

from lookalike_gateway.overlay import GAP, HEIGHT, MAX_WIDTH, REGION
from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import jpeg_bytes, sample_path

CAT = "img-00003"
CROP = (0.3, 0.2, 0.5, 0.6)  # x, y, w, h of the crop in the original


def _cat_crop(indexed: IndexedCatalogue) -> bytes:
    with Image.open(sample_path(indexed.root, CAT)) as img:
        rgb = img.convert("RGB")
    x, y, w, h = CROP
    box = (x * rgb.width, y * rgb.height, (x + w) * rgb.width, (y + h) * rgb.height)
    return jpeg_bytes(rgb.crop(tuple(round(v) for v in box)), 85)


async def _compare(
    indexed: IndexedCatalogue, files: dict[str, bytes] | None = None, **fields: str
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    for name, data in (files or {}).items():
        form.add_field(name, data, filename=f"{name}.jpg", content_type="image/jpeg")
    for name, value in fields.items():
        form.add_field(name, value)
    async with indexed.http.post(f"{indexed.gateway.url}/v1/compare", data=form) as resp:
        return resp.status, dict(await resp.json())


async def test_an_uploaded_crop_is_the_catalogue_artwork_shown_where_it_lies(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    status, verdict = await _compare(
        indexed_catalogue, {"a": _cat_crop(indexed_catalogue)}, b_id=CAT, overlay="true"
    )

    assert status == 200, verdict
    assert verdict["duplicate"] is True
    region = verdict["region_b"]
    found = (region["x"], region["y"], region["w"], region["h"])
    assert all(abs(f - e) < 0.05 for f, e in zip(found, CROP, strict=True)), region
    assert len(verdict["inliers"]) >= 8

    # The overlay shows the crop on the left, the catalogue image on the right, with the
    # matched region outlined where the verdict puts it.
    header, _, data = verdict["overlay"].partition(",")
    assert header == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as overlay:
        picture = overlay.convert("RGB")
    with Image.open(sample_path(indexed_catalogue.root, CAT)) as original:
        scale = min(HEIGHT / original.height, MAX_WIDTH / original.width)
        right_width, right_height = round(original.width * scale), round(original.height * scale)
    assert picture.height == HEIGHT
    left = picture.width - GAP - right_width  # where the catalogue image begins, less the gap
    top = (HEIGHT - right_height) / 2
    corner = (
        round(left + GAP + region["x"] * right_width),
        round(top + (region["y"] + region["h"] / 2) * right_height),
    )
    assert _near(picture.getpixel(corner), REGION), corner


def _near(pixel: Any, colour: tuple[int, int, int]) -> bool:
    return all(abs(int(p) - c) < 40 for p, c in zip(pixel, colour, strict=True))


async def test_two_catalogue_artworks_are_not_the_same(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    status, verdict = await _compare(indexed_catalogue, a_id=CAT, b_id="img-00008")

    assert status == 200, verdict
    assert verdict["duplicate"] is False
    assert verdict["region_a"] is None and verdict["region_b"] is None
    assert "overlay" not in verdict


async def test_bad_comparisons_are_a_4xx_naming_the_field(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    cat = sample_path(indexed_catalogue.root, CAT).read_bytes()
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
    cases: list[tuple[dict[str, bytes], dict[str, str], int, str, str]] = [
        ({"a": cat}, {}, 400, "missing_image", "b"),
        ({"a": cat}, {"a_id": CAT, "b_id": CAT}, 400, "invalid_parameter", "a"),
        ({"a": pdf}, {"b_id": CAT}, 422, "not_an_image", "a"),
        ({"a": cat}, {"b_id": "no-such-image"}, 404, "not_found", "b_id"),
        ({}, {"a_url": "http://127.0.0.1:9/cat.jpg", "b_id": CAT}, 400, "url_forbidden", "a_url"),
        ({}, {"a_url": "file:///etc/passwd", "b_id": CAT}, 400, "url_forbidden", "a_url"),
        ({"a": cat}, {"b_id": CAT, "colour": "red"}, 400, "invalid_parameter", "colour"),
    ]
    for files, fields, status, code, field in cases:
        got, body = await _compare(indexed_catalogue, files, **fields)
        assert (got, body["error"]["code"], body["error"]["field"]) == (status, code, field), (
            fields,
            body,
        )
        assert "/etc" not in body["error"]["message"]
