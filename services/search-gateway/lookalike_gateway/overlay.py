"""The evidence of a comparison as a picture: both images side by side, the part of each
that lies on the other outlined, and the keypoints matched under one geometry joined by
lines. Runs in the process pool (decoding and drawing are CPU work)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

from lookalike_shared.imaging import ImageRejected, decode_image

HEIGHT = 360  # each image is shown this tall (narrower when it is very wide)
MAX_WIDTH = 540
GAP = 16
REGION = (255, 196, 0)  # the matched regions
LINK = (0, 200, 255)  # lines between matched keypoints
MAX_LINKS = 60  # more lines hide the pictures


def _shown(data: bytes) -> Image.Image:
    image = decode_image(data, decode_side=2 * HEIGHT).image.convert("RGB")
    scale = min(HEIGHT / image.height, MAX_WIDTH / image.width)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def draw_overlay(a: bytes, b: bytes, verdict: dict[str, Any]) -> bytes | tuple[str, str]:
    """PNG bytes, or (code, message) when an image cannot be decoded."""
    try:
        left, right = _shown(a), _shown(b)
    except ImageRejected as exc:
        return (exc.code, str(exc))
    canvas = Image.new("RGB", (left.width + GAP + right.width, HEIGHT), (32, 32, 32))
    canvas.paste(left, (0, (HEIGHT - left.height) // 2))
    offset_b = (left.width + GAP, (HEIGHT - right.height) // 2)
    canvas.paste(right, offset_b)
    draw = ImageDraw.Draw(canvas)

    def at_a(x: float, y: float) -> tuple[float, float]:
        return (x * left.width, (HEIGHT - left.height) / 2 + y * left.height)

    def at_b(x: float, y: float) -> tuple[float, float]:
        return (offset_b[0] + x * right.width, offset_b[1] + y * right.height)

    step = max(1, len(verdict["inliers"]) // MAX_LINKS)
    for ax, ay, bx, by in verdict["inliers"][::step]:
        start, end = at_a(ax, ay), at_b(bx, by)
        draw.line([start, end], fill=LINK, width=1)
        for x, y in (start, end):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], outline=LINK)
    for box, place in ((verdict["region_a"], at_a), (verdict["region_b"], at_b)):
        if box is not None:
            top_left = place(box["x"], box["y"])
            bottom_right = place(box["x"] + box["w"], box["y"] + box["h"])
            draw.rectangle([top_left, bottom_right], outline=REGION, width=3)
    out = io.BytesIO()
    canvas.save(out, "PNG", optimize=True)
    return out.getvalue()
