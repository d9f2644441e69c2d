"""The fingerprint: every hash and visual attribute of an image from one decode.

    bytes --decode_image (draft-mode, guarded)--> small RGB image
          --trim uniform borders/frames--> content box
          --> pHash + dHash (+ the 8 flips/quarter turns of the pHash) of the content,
              pHashes of overlapping regions (so crops match), palette, named colours,
              and a colour-layout vector for look-alike search.

pHash follows imagehash.phash bit for bit (32x32 greyscale, 2-D DCT-II, 8x8 low
frequencies against their median), so stored hashes stay comparable with that library.
"""

from __future__ import annotations

import colorsys
from functools import lru_cache

import numpy as np
from PIL import Image

from .contracts import NAMED_COLORS, Box, Fingerprint, PaletteColor, RegionHash
from .imaging import DECODE_SIDE, DecodedImage, decode_image

Array = np.ndarray

BORDER_TOLERANCE = 18  # grey levels a border row may differ from the border colour
MAX_TRIM_SHARE = 0.35  # never cut more than this from one side: it is content, not frame
# Regions hashed per catalogue image, as (x, y, w, h) of the trimmed content: overlapping
# windows at two scales, so a query that is a crop of the artwork meets a similar window.
REGION_WINDOWS: tuple[tuple[float, float, float, float], ...] = (
    (0.1, 0.1, 0.8, 0.8),
    (0.0, 0.0, 0.7, 0.7),
    (0.3, 0.0, 0.7, 0.7),
    (0.0, 0.3, 0.7, 0.7),
    (0.3, 0.3, 0.7, 0.7),
    (0.2, 0.2, 0.6, 0.6),
    (0.0, 0.0, 0.5, 0.5),
    (0.5, 0.0, 0.5, 0.5),
    (0.0, 0.5, 0.5, 0.5),
    (0.5, 0.5, 0.5, 0.5),
    (0.25, 0.25, 0.5, 0.5),
)
LAYOUT_GRID = 4  # the look-alike vector is a 4x4 grid of CIELAB means: 48 numbers
PALETTE_SIZE = 5
COLOR_MIN_WEIGHT = 0.08  # a named colour must cover this share of the image to be listed


def fingerprint_bytes(data: bytes) -> Fingerprint:
    """Decode once and fingerprint; raises imaging.ImageRejected for anything unusable."""
    return fingerprint_decoded(decode_image(data))


def fingerprint_decoded(decoded: DecodedImage) -> Fingerprint:
    rgb = decoded.image
    trim_box = find_content_box(np.asarray(rgb))
    left, top, right, bottom = trim_box
    content = rgb.crop(trim_box) if trim_box != (0, 0, *rgb.size) else rgb
    grey = content.convert("L")
    grey32 = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    width, height = decoded.width, decoded.height
    return Fingerprint(
        phash=phash_hex(grey32),
        dhash=dhash_hex(grey),
        phash_dihedral=[phash_hex(v) for v in dihedral_variants(grey32)],
        regions=region_hashes(grey),
        trim=Box(
            x=left / rgb.width,
            y=top / rgb.height,
            w=(right - left) / rgb.width,
            h=(bottom - top) / rgb.height,
        ),
        width=width,
        height=height,
        megapixels=round(width * height / 1e6, 3),
        orientation=orientation(width, height),
        format=decoded.format,
        palette=palette(content),
        colors=named_colors(content),
        layout=layout_vector(content),
    )


def orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.05:
        return "landscape"
    if ratio < 1 / 1.05:
        return "portrait"
    return "square"


# --- hashes ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> Array:
    # scipy.fftpack.dct type II without normalisation: y[k] = 2 * sum x[i] cos(pi k (2i+1) / 2n)
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def phash_bits(grey32: Array) -> Array:
    m = _dct_matrix()
    dct = m @ grey32 @ m.T
    low = dct[:8, :8]
    bits: Array = low > np.median(low)
    return bits


def phash_hex(grey32: Array) -> str:
    return bits_to_hex(phash_bits(grey32))


def dhash_hex(grey: Image.Image) -> str:
    small = np.asarray(grey.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return bits_to_hex(small[:, 1:] > small[:, :-1])


def bits_to_hex(bits: Array) -> str:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def dihedral_variants(square: Array) -> list[Array]:
    """The 8 flips and quarter turns, in contracts.DIHEDRAL_TRANSFORMS order.

    Resizing to a square commutes with these, so transforming the 32x32 thumbnail gives the
    same pixels as thumbnailing the transformed image."""
    return [
        square,
        np.rot90(square, 1),
        np.rot90(square, 2),
        np.rot90(square, 3),
        np.fliplr(square),
        np.flipud(square),
        square.T,
        np.rot90(square, 2).T,
    ]


def region_hashes(grey: Image.Image) -> list[RegionHash]:
    w, h = grey.size
    out = []
    for x, y, rw, rh in REGION_WINDOWS:
        box = (round(x * w), round(y * h), round((x + rw) * w), round((y + rh) * h))
        if box[2] - box[0] < 16 or box[3] - box[1] < 16:
            continue
        region = grey.crop(box).resize((32, 32), Image.Resampling.LANCZOS)
        out.append(
            RegionHash(
                box=Box(x=x, y=y, w=rw, h=rh),
                phash=phash_hex(np.asarray(region, dtype=np.float64)),
            )
        )
    return out


# --- borders and frames ----------------------------------------------------------------------


def find_content_box(rgb: Array) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) inside uniform borders such as mats and plain frames.

    A side is cut while its outermost row or column stays close to that side's colour; a
    run reaching MAX_TRIM_SHARE of the dimension is left, so a dark sky is not cut as a mat."""
    h, w = rgb.shape[:2]
    img = rgb.astype(np.int16)

    def run(lines: Array, limit: int) -> int:
        # lines: (count, pixels, 3) from the edge inwards
        ref = np.median(lines[0], axis=0)
        dev = np.abs(lines - ref).max(axis=2)  # (count, pixels)
        close = np.percentile(dev, 95, axis=1) <= BORDER_TOLERANCE
        n = 0
        while n < limit and close[n]:
            n += 1
        # A "border" as deep as the limit is a plain part of the picture (sky, colour
        # field), not a mat: leave that side alone.
        return 0 if n >= limit else n

    max_rows, max_cols = int(h * MAX_TRIM_SHARE), int(w * MAX_TRIM_SHARE)
    top = run(img[: max_rows + 1], max_rows)
    bottom = run(img[::-1][: max_rows + 1], max_rows)
    left = run(img.transpose(1, 0, 2)[: max_cols + 1], max_cols)
    right = run(img.transpose(1, 0, 2)[::-1][: max_cols + 1], max_cols)
    if (h - top - bottom) < 8 or (w - left - right) < 8:
        return (0, 0, w, h)  # a plain image: nothing is border
    return (left, top, w - right, h - bottom)


# --- colour ------------------------------------------------------------------------------------


def _small(content: Image.Image, side: int) -> Image.Image:
    img = content.copy()
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    return img


def palette(content: Image.Image) -> list[PaletteColor]:
    small = _small(content, 64)
    quantized = small.quantize(colors=PALETTE_SIZE, method=Image.Quantize.MEDIANCUT)
    flat = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], reverse=True)
    total = sum(c for c, _ in counts) or 1
    out = []
    for count, index in counts[:PALETTE_SIZE]:
        index = int(index)  # type: ignore[call-overload]
        r, g, b = (int(v) for v in flat[3 * index : 3 * index + 3])
        out.append(PaletteColor(hex=f"#{r:02x}{g:02x}{b:02x}", weight=round(count / total, 4)))
    return out


def color_name(r: int, g: int, b: int) -> str:
    """Map an RGB colour to one of NAMED_COLORS by hue, saturation and lightness."""
    h, lightness, s = colorsys.rgb_to_hls(r / 255, g / 255, b / 255)
    if lightness < 0.13:
        return "black"
    if lightness > 0.9 and s < 0.5:
        return "white"
    if s < 0.15 or (s < 0.25 and 0.2 < lightness < 0.8):
        return "white" if lightness > 0.82 else "grey"
    deg = h * 360
    if deg < 15 or deg >= 345:
        return "brown" if lightness < 0.35 else ("pink" if lightness > 0.75 else "red")
    if deg < 45:
        return "brown" if lightness < 0.45 else "orange"
    if deg < 70:
        return "brown" if lightness < 0.3 else "yellow"
    if deg < 160:
        return "green"
    if deg < 195:
        return "teal"
    if deg < 260:
        return "blue"
    if deg < 295:
        return "purple"
    return "pink"


def named_colors(content: Image.Image) -> list[str]:
    """Named colours covering at least COLOR_MIN_WEIGHT of the image, most covered first."""
    pixels = np.asarray(_small(content, 48)).reshape(-1, 3)
    # Coarse quantisation keeps this a few hundred colorsys calls instead of thousands.
    levels = (pixels // 32) * 32 + 16
    colours, counts = np.unique(levels, axis=0, return_counts=True)
    weights: dict[str, float] = {}
    for (r, g, b), count in zip(colours.tolist(), counts.tolist(), strict=True):
        name = color_name(r, g, b)
        weights[name] = weights.get(name, 0.0) + count / len(pixels)
    ranked = sorted(weights.items(), key=lambda item: -item[1])
    return [name for name, share in ranked if share >= COLOR_MIN_WEIGHT and name in NAMED_COLORS]


def layout_vector(content: Image.Image) -> list[float]:
    """4x4 grid of CIELAB cells for cosine kNN look-alikes: lightness relative to the image's
    mean (the layout of light and dark) and the colour axes a*, b* (the palette). Without
    removing the mean lightness, every mid-grey image would look alike."""
    grid = content.resize((LAYOUT_GRID, LAYOUT_GRID), Image.Resampling.BOX)
    lab = np.asarray(grid.convert("LAB"), dtype=np.float64)  # PIL LAB: all channels 0..255
    lightness = (lab[..., 0] - lab[..., 0].mean()) / 64.0
    chroma = (lab[..., 1:] - 128.0) / 32.0
    vector = np.concatenate([lightness[..., None], chroma], axis=-1).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:  # a flat grey field: give it a direction all flat greys share
        vector = np.zeros_like(vector)
        vector[0] = 1.0
    else:
        vector = vector / norm
    return [round(float(v), 5) for v in vector]


__all__ = ["DECODE_SIDE", "fingerprint_bytes", "fingerprint_decoded"]
