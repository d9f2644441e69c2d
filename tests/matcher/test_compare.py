"""POST /v1/compare on a real matcher: the verdict on two images, with the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fingerprint import fingerprint_bytes
from tests.fixtures.images import jpeg_bytes, sample_path
from tests.fixtures.matcher import make_topics, publish_fingerprints, running_matcher
from tests.fixtures.services import wait_until

CAT = "img-00003"
CROP = (0.3, 0.2, 0.5, 0.6)  # x, y, w, h of the crop in the original (30% of its area)


def _crop_of(root: Path, image_id: str) -> bytes:
    with Image.open(sample_path(root, image_id)) as img:
        rgb = img.convert("RGB")
        x, y, w, h = CROP
        box = (
            round(x * rgb.width),
            round(y * rgb.height),
            round((x + w) * rgb.width),
            round((y + h) * rgb.height),
        )
        return jpeg_bytes(rgb.crop(box), 85)


async def _compare_uploads(
    http: aiohttp.ClientSession, url: str, a: bytes | None, b: bytes | None
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    for name, data in (("a", a), ("b", b)):
        if data is not None:
            form.add_field(name, data, filename=f"{name}.jpg", content_type="image/jpeg")
    async with http.post(f"{url}/v1/compare", data=form) as resp:
        return resp.status, dict(await resp.json())


def _inside(point: tuple[float, float], box: dict[str, float], slack: float = 0.02) -> bool:
    x, y = point
    return (
        box["x"] - slack <= x <= box["x"] + box["w"] + slack
        and box["y"] - slack <= y <= box["y"] + box["h"] + slack
    )


async def test_a_crop_is_the_same_artwork_and_says_where_it_lies(
    lookalike_settings: CommonSettings, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    original = sample_path(root, CAT).read_bytes()
    async with running_matcher(lookalike_settings) as (url, _, http):
        status, verdict = await _compare_uploads(http, url, _crop_of(root, CAT), original)

    assert status == 200, verdict
    assert verdict["duplicate"] is True
    assert verdict["score"] >= verdict["threshold"]
    region = verdict["region_b"]
    x, y, w, h = CROP
    found = (region["x"], region["y"], region["w"], region["h"])
    assert all(abs(f - e) < 0.05 for f, e in zip(found, CROP, strict=True)), (region, CROP)
    assert verdict["overlap_a"] > 0.9  # all of the crop lies on the original
    assert abs(verdict["overlap_b"] - w * h) < 0.06  # it shows 30% of the original
    assert len(verdict["inliers"]) >= 8
    for ax, ay, bx, by in verdict["inliers"]:
        # Each matched point of the crop sits where the crop puts it in the original.
        assert abs(x + ax * w - bx) < 0.02 and abs(y + ay * h - by) < 0.02
        assert _inside((bx, by), region)


async def test_different_artworks_are_not_the_same(
    lookalike_settings: CommonSettings, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    async with running_matcher(lookalike_settings) as (url, _, http):
        for other in ("img-00008", "img-00020", "img-00024"):
            status, verdict = await _compare_uploads(
                http,
                url,
                sample_path(root, CAT).read_bytes(),
                sample_path(root, other).read_bytes(),
            )
            assert status == 200, verdict
            assert verdict["duplicate"] is False, other
            assert verdict["score"] < verdict["threshold"]
            assert verdict["region_a"] is None and verdict["region_b"] is None
            assert verdict["overlap_a"] == 0 and verdict["overlap_b"] == 0


async def test_a_catalogue_image_is_compared_by_its_id(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, Any],
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    await publish_fingerprints(lookalike_settings, {CAT: sample_fingerprints[CAT]})
    async with running_matcher(lookalike_settings) as (url, _, http):

        async def holds_it() -> bool:
            async with http.get(f"{url}/v1/images/{CAT}") as resp:
                return resp.status == 200

        await wait_until(holds_it, 30, "the matcher to hold the cat")
        form = aiohttp.FormData()
        form.add_field("image", _crop_of(root, CAT), filename="q.jpg")
        async with http.post(f"{url}/v1/search", data=form) as resp:
            found = (await resp.json())["matches"]
        assert found and found[0]["image_id"] == CAT  # a search finds it: so must compare

        crop = fingerprint_bytes(_crop_of(root, CAT), query=True)
        for side_a, side_b in (
            ({"image_id": CAT}, {"image_id": CAT}),
            ({"fingerprint": crop.model_dump(mode="json")}, {"image_id": CAT}),
        ):
            async with http.post(f"{url}/v1/compare", json={"a": side_a, "b": side_b}) as resp:
                verdict = await resp.json()
            assert resp.status == 200, verdict
            assert verdict["duplicate"] is True

        async with http.post(
            f"{url}/v1/compare", json={"a": {"image_id": CAT}, "b": {"image_id": "not-here"}}
        ) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["field"] == "b"


async def test_bad_comparisons_are_a_clear_4xx_naming_the_side(
    lookalike_settings: CommonSettings, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    cat = sample_path(root, CAT).read_bytes()
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
    async with running_matcher(lookalike_settings) as (url, _, http):
        status, body = await _compare_uploads(http, url, cat, None)
        assert (status, body["error"]["field"]) == (400, "b")
        status, body = await _compare_uploads(http, url, pdf, cat)
        assert (status, body["error"]["field"]) == (422, "a")
        status, body = await _compare_uploads(http, url, cat, cat[: len(cat) // 3])
        assert (status, body["error"]["field"]) == (422, "b")
        both = {"a": {"image_id": CAT, "fingerprint": None}, "b": {"image_id": CAT}}
        both["a"]["fingerprint"] = {"phash": "0" * 16}
        async with http.post(f"{url}/v1/compare", json=both) as resp:
            assert resp.status == 400
        async with http.post(f"{url}/v1/compare", json={"a": {"image_id": CAT}}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["field"] == "b"
        async with http.post(f"{url}/v1/compare", data=b"a=1", headers={}) as resp:
            assert resp.status == 415
