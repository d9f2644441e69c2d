from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike_shared.fingerprint import (
    TURNED_WINDOW,
    color_name,
    find_content_box,
    find_print,
    fingerprint_bytes,
)
from lookalike_shared.imaging import ImageRejected
from tests.fixtures.images import jpeg_bytes, png_bytes, sample_path, watermarked
from tests.fixtures.matcher import transformed_fingerprint


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.mark.parametrize("image_id", ["img-00001", "img-00003", "img-00024"])
def test_phash_agrees_with_imagehash_phash(
    sample_catalogue: tuple[Path, Any], image_id: str
) -> None:
    # Same construction, cheaper resampling from a small decode: a catalogue hashed with
    # imagehash stays comparable at the matcher's usual duplicate radius.
    root, _ = sample_catalogue
    path = sample_path(root, image_id)
    with Image.open(path) as img:
        expected = str(imagehash.phash(img.convert("RGB")))
    assert hamming(fingerprint_bytes(path.read_bytes()).phash, expected) <= 6


def test_resized_recompressed_copy_keeps_a_close_fingerprint(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    path = sample_path(root, "img-00024")
    original = fingerprint_bytes(path.read_bytes())
    with Image.open(path) as img:
        copy = fingerprint_bytes(jpeg_bytes(img.resize((img.width // 3, img.height // 3)), 40))
    assert hamming(original.phash, copy.phash) <= 6
    assert hamming(original.dhash, copy.dhash) <= 10
    assert (original.width, original.height, original.format) == (640, 427, "jpeg")
    assert (copy.width, copy.height) == (213, 142)


def test_mirrored_copy_matches_one_of_the_dihedral_hashes(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    path = sample_path(root, "img-00001")
    original = fingerprint_bytes(path.read_bytes())
    with Image.open(path) as img:
        mirrored = fingerprint_bytes(jpeg_bytes(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert hamming(original.phash, mirrored.phash) > 20  # the plain hash loses it
    assert hamming(original.phash, mirrored.phash_dihedral[4]) <= 4  # flip_horizontal finds it


def test_turned_copy_meets_its_originals_centre_through_the_turned_hashes(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    original = fingerprint_bytes(sample_path(root, "img-00011").read_bytes())
    assert original.turned_centre is None  # a catalogue image does not need them
    query = transformed_fingerprint(
        root, "img-00011", lambda im: im.rotate(-5, resample=Image.Resampling.BILINEAR)
    )

    def centre(fingerprint: Any) -> str:
        return next(
            r.phash
            for r in fingerprint.regions
            if (r.box.x, r.box.y, r.box.w, r.box.h) == TURNED_WINDOW
        )

    assert hamming(centre(query), centre(original)) > 10  # beyond the matcher's radius
    assert query.turned_centre is not None
    assert min(hamming(h, centre(original)) for h in query.turned_centre) <= 6


def test_watermarked_copy_meets_its_original_through_the_unmarked_hash(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    original = fingerprint_bytes(sample_path(root, "img-00019").read_bytes())
    assert original.unmarked_phash is None  # a catalogue image does not need it
    query = transformed_fingerprint(root, "img-00019", watermarked)
    assert hamming(query.phash, original.phash) > 10  # the text moved the plain hash
    assert query.unmarked_phash is not None
    assert hamming(query.unmarked_phash, original.phash) <= 6


def test_uniform_border_is_trimmed_before_hashing(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    path = sample_path(root, "img-00004")
    original = fingerprint_bytes(path.read_bytes())
    with Image.open(path) as img:
        framed = Image.new("RGB", (img.width + 160, img.height + 120), (250, 248, 240))
        framed.paste(img.convert("RGB"), (80, 60))
    result = fingerprint_bytes(jpeg_bytes(framed))
    assert hamming(original.phash, result.phash) <= 6
    assert result.trim.x == pytest.approx(80 / framed.width, abs=0.02)


def test_nested_borders_are_trimmed_to_the_same_content_as_the_unframed_picture() -> None:
    # A colour-field painting with its own plain margin, then a mat, then a dark moulding:
    # each column of an inner border runs into the outer ones, so one pass stops early.
    painting = np.full((300, 400, 3), (200, 190, 170), dtype=np.uint8)
    painting[24:276, 40:360] = (40, 90, 160)
    painting[150:276, 40:360] = (170, 60, 40)
    framed = np.full((420, 520, 3), (70, 45, 25), dtype=np.uint8)  # moulding
    framed[25:395, 25:495] = (245, 243, 235)  # mat
    framed[60:360, 60:460] = painting
    left, top, right, bottom = find_content_box(painting)
    assert (left, top, right, bottom) == (40, 24, 360, 276)
    assert find_content_box(framed) == (60 + left, 60 + top, 60 + right, 60 + bottom)


def test_plain_part_of_a_picture_is_not_trimmed_pass_after_pass() -> None:
    # A night sky darkening towards one side is picture, not a mat: it is cut in one pass
    # at most, not a band more in each.
    photo = np.full((300, 400, 3), 12, dtype=np.uint8)
    photo[:, 100:] = 40
    photo[::2, 100:] = 60  # a band of faint streaks: one colour across, not along
    photo[:, 160:] = np.random.default_rng(4).integers(0, 255, (300, 240, 3))
    left, top, right, bottom = find_content_box(photo)
    assert left <= 100  # the plainest band may go, never the streaked sky within it
    assert (top, right, bottom) == (0, 400, 300)  # nothing else is cut


def _photographed_on_a_wall(img: Image.Image, far_side_shorter_by: float) -> Image.Image:
    """The picture as if photographed off-axis on a grey wall: its right side further away."""
    w, h = img.size
    pad = w // 8
    k = far_side_shorter_by * h / 2
    quad = np.float32([[pad, pad], [pad + w, pad + k], [pad + w, pad + h - k], [pad, pad + h]])
    square = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    warp = cv2.getPerspectiveTransform(square, quad)
    wall = cv2.warpPerspective(
        np.asarray(img.convert("RGB")),
        warp,
        (w + 2 * pad, h + 2 * pad),
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(128, 126, 120),
    )
    return Image.fromarray(wall)


def test_print_photographed_at_a_slant_is_straightened_before_hashing(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    path = sample_path(root, "img-00003")
    original = fingerprint_bytes(path.read_bytes())
    with Image.open(path) as img:
        photo = _photographed_on_a_wall(img, far_side_shorter_by=0.16)
    corners = find_print(np.asarray(photo.resize((256, 256 * photo.height // photo.width))))
    assert corners is not None
    straightened = fingerprint_bytes(jpeg_bytes(photo), query=True)
    assert hamming(original.phash, straightened.phash) <= 6
    aspect = straightened.trim.w * straightened.width / (straightened.trim.h * straightened.height)
    assert aspect == pytest.approx(original.width / original.height, rel=0.1)


def test_shapes_and_mats_are_not_taken_for_slanted_prints(
    sample_catalogue: tuple[Path, Any],
) -> None:
    diamond = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(diamond).polygon([(150, 20), (280, 150), (150, 280), (20, 150)], "navy")
    assert find_print(np.asarray(diamond)) is None  # a shape in the picture, 45 degrees off
    root, _ = sample_catalogue
    with Image.open(sample_path(root, "img-00004")) as img:
        matted = Image.new("RGB", (img.width + 80, img.height + 80), (250, 248, 240))
        matted.paste(img.convert("RGB"), (40, 40))
    assert find_print(np.asarray(matted)) is None  # square to the image: trimming's job


def test_plain_image_is_not_trimmed_away() -> None:
    flat = np.full((100, 120, 3), 128, dtype=np.uint8)
    assert find_content_box(flat) == (0, 0, 120, 100)


def test_named_colours_follow_what_a_person_would_call_them() -> None:
    assert color_name(200, 30, 30) == "red"
    assert color_name(30, 60, 200) == "blue"
    assert color_name(20, 20, 20) == "black"
    assert color_name(250, 250, 250) == "white"
    assert color_name(128, 128, 128) == "grey"
    blue_image = Image.new("RGB", (64, 64), (30, 60, 200))
    assert fingerprint_bytes(jpeg_bytes(blue_image)).colors == ["blue"]


def test_palette_and_named_colours_give_each_colour_its_share() -> None:
    flag = Image.new("RGB", (400, 300), (200, 30, 30))  # red on half of it
    flag.paste((245, 245, 245), (200, 0, 400, 300))  # white on 30%
    flag.paste((30, 60, 200), (320, 0, 400, 300))  # blue on 20%
    fingerprint = fingerprint_bytes(png_bytes(flag))
    assert fingerprint.colors == ["red", "white", "blue"]
    top = fingerprint.palette[:3]
    assert [p.hex for p in top] == ["#c81e1e", "#f5f5f5", "#1e3cc8"]
    assert [p.weight for p in top] == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


def _truncated_jpeg() -> bytes:
    data = jpeg_bytes(Image.effect_noise((400, 300), 60))
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    # A tiny file that declares a huge canvas: decoding it would take gigabytes.
    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_image"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj", "not_an_image"),
        (_truncated_jpeg(), "corrupt_image"),
        (_bomb_png(), "decompression_bomb"),
        (jpeg_bytes(Image.new("RGB", (4, 4))), "image_too_small"),
        (png_bytes(Image.effect_noise((2000, 8), 60)), "image_too_narrow"),
    ],
    ids=["zero-bytes", "pdf-named-jpg", "truncated-jpeg", "decompression-bomb", "tiny", "strip"],
)
def test_unusable_images_are_refused_with_a_clear_code(data: bytes, code: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        fingerprint_bytes(data)
    assert caught.value.code == code
    assert str(caught.value)
