from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from lookalike_matcher.index import FingerprintIndex
from lookalike_shared.fingerprint import fingerprint_bytes
from tests.fixtures.images import jpeg_bytes, sample_path


def build_index(root: Path, ids: list[str]) -> FingerprintIndex:
    index = FingerprintIndex()
    for image_id in ids:
        index.upsert(image_id, 1, fingerprint_bytes(sample_path(root, image_id).read_bytes()))
    return index


ALL = [f"img-{n:05d}" for n in range(1, 28)]


def transformed(root: Path, image_id: str, change: Any) -> bytes:
    with Image.open(sample_path(root, image_id)) as img:
        return jpeg_bytes(change(img.convert("RGB")))


def test_crop_is_found_with_the_region_it_came_from(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    index = build_index(root, ALL)
    query = transformed(
        root, "img-00026", lambda im: im.crop((0, 0, im.width // 2, im.height // 2))
    )
    best = index.search(fingerprint_bytes(query))[0]
    assert (best.image_id, best.match) == ("img-00026", "duplicate")
    assert best.region.x < 0.1 and best.region.y < 0.1
    assert 0.35 < best.region.w < 0.65 and 0.35 < best.region.h < 0.65
    assert best.overlap.target < 0.5


def test_flip_and_quarter_turn_are_found_and_named(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    index = build_index(root, ALL)
    flipped = transformed(
        root, "img-00003", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    )
    turned = transformed(root, "img-00008", lambda im: im.transpose(Image.Transpose.ROTATE_90))
    flip_match = index.search(fingerprint_bytes(flipped))[0]
    turn_match = index.search(fingerprint_bytes(turned))[0]
    assert (flip_match.image_id, flip_match.transform) == ("img-00003", "flip_horizontal")
    assert turn_match.image_id == "img-00008"
    assert turn_match.transform in ("rotate_90", "rotate_270")


def test_border_added_around_the_artwork_still_matches(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    index = build_index(root, ALL)

    def frame(im: Image.Image) -> Image.Image:
        out = Image.new("RGB", (int(im.width * 1.4), int(im.height * 1.4)), (20, 20, 20))
        out.paste(im, (int(im.width * 0.2), int(im.height * 0.2)))
        return out

    best = index.search(fingerprint_bytes(transformed(root, "img-00025", frame)))[0]
    assert (best.image_id, best.match) == ("img-00025", "duplicate")


def test_update_replaces_and_stale_versions_change_nothing(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    index = FingerprintIndex()
    cat = fingerprint_bytes(sample_path(root, "img-00003").read_bytes())
    rocket = fingerprint_bytes(sample_path(root, "img-00008").read_bytes())
    assert index.upsert("art", 2, cat)
    assert not index.upsert("art", 1, rocket)  # older: ignored
    assert index.search(cat)[0].image_id == "art"
    assert index.upsert("art", 3, rocket)  # newer: the image was replaced in the catalogue
    assert [m.image_id for m in index.search(cat) if m.match == "duplicate"] == []
    assert [m.version for m in index.search(cat, limit=200) if m.image_id == "art"] in ([], [3])
    assert index.search(rocket)[0].version == 3
    assert len(index) == 1


def test_deleted_images_are_not_found(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    index = build_index(root, ALL)
    query = fingerprint_bytes(sample_path(root, "img-00020").read_bytes())
    assert index.delete("img-00020")
    assert not index.delete("img-00020")
    # Not as a duplicate, nor as anything else: a deleted image is gone from every answer.
    assert "img-00020" not in [m.image_id for m in index.search(query, limit=200)]
    assert len(index) == 26
