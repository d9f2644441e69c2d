"""Safe decoding: one guarded decode per image, at reduced scale where the format allows.

Everything a stranger can upload or a catalogue URL can serve passes through here, so the
limits are checked before pixels are allocated.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_BYTES = 40 * 1024 * 1024  # a 40 MB file is far beyond any catalogue JPEG
MAX_IMAGE_PIXELS = 80_000_000  # 80 MP: larger headers are refused as decompression bombs
MIN_IMAGE_SIDE = 8  # fewer pixels than this cannot carry a fingerprint
# Beyond this, shrinking the long side to the fingerprint's working size leaves the short
# side under a pixel or two (a 2000x8 strip): no scroll or panorama in a catalogue is that
# thin, and nothing could be hashed from it.
MAX_ASPECT_RATIO = 32
DECODE_SIDE = 512  # decode at least this many pixels on the long side (JPEG draft mode)

# PIL format name -> our lowercase name; anything else is refused.
ACCEPTED_FORMATS = {
    "JPEG": "jpeg",
    "PNG": "png",
    "GIF": "gif",
    "TIFF": "tiff",
    "WEBP": "webp",
    "BMP": "bmp",
    "MPO": "jpeg",  # phone cameras' multi-picture JPEG
}

_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = {5, 6, 7, 8}  # EXIF orientations that swap width and height

# PIL's own bomb guard warns at MAX_IMAGE_PIXELS and raises at twice that; ours is stricter
# and runs first, so turn PIL's into a plain error too.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


class ImageRejected(ValueError):
    """The bytes are not an image we accept. `code` is a short stable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def refused_if_our_code_fails() -> Iterator[None]:
    """For work on pixels decode_image vouched for: anything else raised there is an image
    our own code cannot handle, so refuse this one image (unprocessable_image) rather than
    let it stop whoever asked."""
    try:
        yield
    except ImageRejected:
        raise
    except Exception as exc:
        raise ImageRejected(
            "unprocessable_image", f"the image could not be fingerprinted ({type(exc).__name__})"
        ) from exc


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, at most a few DECODE_SIDEs across, EXIF orientation applied
    width: int  # the original's size, after EXIF orientation
    height: int
    format: str


def decode_image(data: bytes, decode_side: int = DECODE_SIDE) -> DecodedImage:
    if not data:
        raise ImageRejected("empty_image", "the image is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(
            "image_too_large", f"image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            fmt = ACCEPTED_FORMATS.get(img.format or "")
            if fmt is None:
                raise ImageRejected(
                    "unsupported_format", f"image format {img.format!r} is not accepted"
                )
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageRejected(
                    "decompression_bomb",
                    f"image declares {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS}",
                )
            if min(width, height) < MIN_IMAGE_SIDE:
                raise ImageRejected(
                    "image_too_small", f"image is {width}x{height}; needs {MIN_IMAGE_SIDE}px"
                )
            if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
                raise ImageRejected(
                    "image_too_narrow",
                    f"image is {width}x{height}; one side may be at most "
                    f"{MAX_ASPECT_RATIO} times the other",
                )
            if fmt == "jpeg":
                # Let libjpeg scale by 1/2, 1/4 or 1/8 while decoding: far less work than
                # decoding every pixel and throwing most of them away.
                # The request keeps the aspect ratio: PIL picks the largest reduction that
                # keeps both sides at least as large as asked.
                long_side = max(width, height)
                img.draft(
                    "RGB",
                    (
                        max(1, -(-decode_side * width // long_side)),
                        max(1, -(-decode_side * height // long_side)),
                    ),
                )
            img.load()
            if img.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
                width, height = height, width
            img = ImageOps.exif_transpose(img)
            img = as_shown(img)
            if max(img.size) > 2 * decode_side:
                img.thumbnail((2 * decode_side, 2 * decode_side), Image.Resampling.BILINEAR)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            "decompression_bomb", f"refused as a decompression bomb: {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not_an_image", "the bytes are not a recognised image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated and corrupt data through these.
        raise ImageRejected("corrupt_image", f"the image is truncated or corrupt: {exc}") from exc
    return DecodedImage(image=img, width=width, height=height, format=fmt)


def as_shown(img: Image.Image) -> Image.Image:
    """The picture in RGB as a page shows it: transparent pixels over white paper, 16-bit
    grey scaled to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels count as white paper, the way the image is shown on a page.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")
