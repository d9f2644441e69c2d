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

import base64
import colorsys
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageCms

from .contracts import NAMED_COLORS, Box, Fingerprint, PaletteColor, RegionHash
from .imaging import DECODE_SIDE, DecodedImage, decode_image

Array = np.ndarray

BORDER_TOLERANCE = 18  # grey levels a border row may differ from the border colour
MAX_TRIM_SHARE = 0.35  # never cut more than this from one side: it is content, not frame
# Regions hashed per catalogue image, as (x, y, w, h) of the trimmed content: overlapping
# windows at three scales, so a query that is a crop of the artwork meets a similar window.
# A window is pHashed whole, so a crop meets one well when its offset from the window is
# small against the window's size: hence 3x3 grids at 0.9 (steps of 0.05) and 0.7 (steps
# of 0.15), and quarters plus the centre at 0.5. Every window costs ~25 bytes of matcher RAM
# per image (code and index tables).
REGION_WINDOWS: tuple[tuple[float, float, float, float], ...] = (
    *((x, y, 0.9, 0.9) for y in (0.0, 0.05, 0.1) for x in (0.0, 0.05, 0.1)),
    *((x, y, 0.7, 0.7) for y in (0.0, 0.15, 0.3) for x in (0.0, 0.15, 0.3)),
    (0.0, 0.0, 0.5, 0.5),
    (0.5, 0.0, 0.5, 0.5),
    (0.0, 0.5, 0.5, 0.5),
    (0.5, 0.5, 0.5, 0.5),
    (0.25, 0.25, 0.5, 0.5),
)
PROBE_BITS = 4  # the pHash's least certain bits, flipped in every combination for lookups
ORB_SIDE = 400  # keypoints are found on the content scaled to this long side
ORB_FEATURES = 128  # keypoints kept per image (36 bytes each packed)
_KEYPOINT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("d", "u1", (32,))])
LAYOUT_GRID = 4  # the look-alike vector is a 4x4 grid of CIELAB means: 48 numbers
PALETTE_SIZE = 5
COLOR_MIN_WEIGHT = 0.08  # a named colour must cover this share of the image to be listed


def fingerprint_bytes(data: bytes) -> Fingerprint:
    """Decode once and fingerprint; raises imaging.ImageRejected for anything unusable."""
    return fingerprint_decoded(decode_image(data))


def fingerprint_decoded(decoded: DecodedImage) -> Fingerprint:
    rgb = decoded.image
    trim_box = content_box(rgb)
    left, top, right, bottom = trim_box
    content = rgb.crop(trim_box) if trim_box != (0, 0, *rgb.size) else rgb
    grey = content.convert("L")
    # The pHash comes from the decoded pixels (so it equals imagehash.phash); everything
    # else that ends small is taken from a small copy, which costs far less to resample.
    small = content.copy()
    small.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)
    small_grey = small.convert("L")
    grey32 = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    grey64 = np.asarray(small_grey.resize((64, 64), Image.Resampling.BOX), dtype=np.float64)
    hashes256 = [hash256_hex(v) for v in dihedral_variants(grey64)]
    width, height = decoded.width, decoded.height
    untrimmed64: list[str] | None = None
    untrimmed256: list[str] | None = None
    if content is not rgb:
        whole = rgb.convert("L")
        whole32 = np.asarray(whole.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
        whole64 = np.asarray(whole.resize((64, 64), Image.Resampling.BOX), dtype=np.float64)
        untrimmed64 = [phash_hex(v) for v in dihedral_variants(whole32)]
        untrimmed256 = [hash256_hex(v) for v in dihedral_variants(whole64)]
    return Fingerprint(
        phash=phash_hex(grey32),
        dhash=dhash_hex(small_grey),
        phash_dihedral=[phash_hex(v) for v in dihedral_variants(grey32)],
        regions=region_hashes(small_grey),
        phash_probes=phash_probes(grey32),
        hash256=hashes256[0],
        hash256_dihedral=hashes256,
        untrimmed_phash_dihedral=untrimmed64,
        untrimmed_hash256_dihedral=untrimmed256,
        keypoints=orb_keypoints(grey),
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
        palette=palette(small),
        colors=named_colors(small),
        layout=layout_vector(small),
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


def phash_probes(grey32: Array) -> list[str]:
    """The pHash with every non-empty combination of its PROBE_BITS least certain bits
    flipped. Smooth images (gradients, colour fields) have many coefficients close to the
    median, so a gamma change or recompression tips a few bits the hash stage then misses."""
    m = _dct_matrix()
    low = (m @ grey32 @ m.T)[:8, :8].ravel()
    bits = low > np.median(low)
    weakest = np.argsort(np.abs(low - np.median(low)), kind="stable")[:PROBE_BITS]
    out = []
    for combo in range(1, 1 << PROBE_BITS):
        flipped = bits.copy()
        for k, position in enumerate(weakest):
            if combo >> k & 1:
                flipped[position] = not flipped[position]
        out.append(bits_to_hex(flipped))
    return out


def hash256_hex(grey64: Array) -> str:
    """A 256-bit DCT hash: 16x16 lowest frequencies of a 64x64 thumbnail against their
    median (the construction of PDQ's hash, without its pre-filter). Four times pHash's bits
    tell apart images pHash confuses: used to verify, not to look up."""
    m = _dct_matrix(64)
    low = (m @ grey64 @ m.T)[:16, :16]
    return bits_to_hex(low > np.median(low), width=64)


def dhash_hex(grey: Image.Image) -> str:
    small = np.asarray(grey.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return bits_to_hex(small[:, 1:] > small[:, :-1])


def bits_to_hex(bits: Array, width: int = 16) -> str:
    """Bits, first one most significant, as `width` hex digits (imagehash's spelling)."""
    return np.packbits(bits.ravel().astype(bool)).tobytes().hex().rjust(width, "0")[-width:]


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


REGION_SOURCE_SIDE = 160  # regions are cut from a copy this size; each ends as 32x32
WORKING_SIDE = 256  # the small copy that dHash, regions, colours and layout are taken from


def region_hashes(grey: Image.Image) -> list[RegionHash]:
    if max(grey.size) > REGION_SOURCE_SIDE:
        grey = grey.copy()
        grey.thumbnail((REGION_SOURCE_SIDE, REGION_SOURCE_SIDE), Image.Resampling.BOX)
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


# --- local features ---------------------------------------------------------------------------


def orb_keypoints(grey: Image.Image) -> str | None:
    """ORB keypoints of the content, packed as pack_keypoints; None when there are too few to
    verify anything with (smooth images: gradients, colour fields)."""
    small = grey.copy()
    small.thumbnail((ORB_SIDE, ORB_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.uint8)
    orb = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=ORB_FEATURES * 2, fastThreshold=12, edgeThreshold=15
    )
    found, descriptors = orb.detectAndCompute(pixels, None)
    if descriptors is None or len(found) < 8:
        return None
    order = np.argsort([-k.response for k in found])[:ORB_FEATURES]
    xy = np.array([found[i].pt for i in order], dtype=np.float64)
    return pack_keypoints(pixels.shape[1], pixels.shape[0], xy, descriptors[order])


def pack_keypoints(width: int, height: int, xy: Array, descriptors: Array) -> str:
    """base64 of: width, height (uint16), then per keypoint x, y (uint16, in 1/64000 of the
    side) and the 32-byte ORB descriptor."""
    packed = np.zeros(len(xy), dtype=_KEYPOINT_DTYPE)
    packed["x"] = np.clip(np.round(xy[:, 0] / width * 64000), 0, 64000)
    packed["y"] = np.clip(np.round(xy[:, 1] / height * 64000), 0, 64000)
    packed["d"] = descriptors
    header = np.array([width, height], dtype="<u2").tobytes()
    return base64.b64encode(header + packed.tobytes()).decode()


def unpack_keypoints(text: str) -> tuple[int, int, Array, Array]:
    """(width, height, xy in pixels of that size (float32, n x 2), descriptors (n x 32))."""
    return unpack_keypoint_bytes(base64.b64decode(text))


def unpack_keypoint_bytes(raw: bytes) -> tuple[int, int, Array, Array]:
    width, height = (int(v) for v in np.frombuffer(raw[:4], dtype="<u2"))
    packed = np.frombuffer(raw[4:], dtype=_KEYPOINT_DTYPE)
    xy = np.stack([packed["x"] * (width / 64000), packed["y"] * (height / 64000)], axis=1)
    return width, height, xy.astype(np.float32), np.ascontiguousarray(packed["d"])


# --- borders and frames ----------------------------------------------------------------------


TRIM_SEARCH_SIDE = 200  # borders are looked for on a copy this size: plenty for a frame


def content_box(rgb: Image.Image) -> tuple[int, int, int, int]:
    """find_content_box on a small copy, scaled back to the image's pixels."""
    scale = max(rgb.size) / TRIM_SEARCH_SIDE
    if scale <= 1:
        return find_content_box(np.asarray(rgb))
    small = rgb.resize(
        (max(1, round(rgb.width / scale)), max(1, round(rgb.height / scale))),
        Image.Resampling.BOX,
    )
    left, top, right, bottom = find_content_box(np.asarray(small))
    sx, sy = rgb.width / small.width, rgb.height / small.height
    return (
        min(rgb.width, round(left * sx)),
        min(rgb.height, round(top * sy)),
        min(rgb.width, round(right * sx)),
        min(rgb.height, round(bottom * sy)),
    )


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
        # A line belongs to the border if it stays close to the outermost line's colour (a
        # mat), or is one plain colour along its length (the shaded rings of a moulding).
        own = np.abs(lines - np.median(lines, axis=1, keepdims=True)).max(axis=2)
        close = (np.percentile(dev, 95, axis=1) <= BORDER_TOLERANCE) | (
            np.percentile(own, 85, axis=1) <= BORDER_TOLERANCE // 2  # corners of a frame
        )
        n = 0
        while n < limit and close[n]:
            n += 1
        # A "border" as deep as the limit is a plain part of the picture (sky, colour
        # field), not a mat: leave that side alone.
        return 0 if n >= limit else n

    max_rows, max_cols = int(h * MAX_TRIM_SHARE), int(w * MAX_TRIM_SHARE)
    # Every line is examined, but only every step-th pixel along it: depth stays exact.
    sx, sy = max(1, w // 160), max(1, h // 160)
    top = run(img[: max_rows + 1, ::sx], max_rows)
    bottom = run(img[::-1][: max_rows + 1, ::sx], max_rows)
    left = run(img.transpose(1, 0, 2)[: max_cols + 1, ::sy], max_cols)
    right = run(img.transpose(1, 0, 2)[::-1][: max_cols + 1, ::sy], max_cols)
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


@lru_cache(maxsize=1)
def _srgb_to_lab() -> ImageCms.ImageCmsTransform:
    # Building the colour transform costs more than applying it: build it once per process.
    return ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )


def layout_vector(content: Image.Image) -> list[float]:
    """4x4 grid of CIELAB cells for cosine kNN look-alikes: lightness relative to the image's
    mean (the layout of light and dark) and the colour axes a*, b* (the palette). Without
    removing the mean lightness, every mid-grey image would look alike."""
    grid = content.resize((LAYOUT_GRID, LAYOUT_GRID), Image.Resampling.BOX)
    converted = ImageCms.applyTransform(grid, _srgb_to_lab())
    assert converted is not None
    lab = np.asarray(converted)
    lightness = (lab[..., 0].astype(np.float64) - lab[..., 0].mean()) / 64.0
    # PIL stores a* and b* as signed bytes in unsigned pixels (neutral grey is 0, not 128).
    chroma = lab[..., 1:].astype(np.uint8).view(np.int8).astype(np.float64) / 32.0
    vector = np.concatenate([lightness[..., None], chroma], axis=-1).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:  # a flat grey field: give it a direction all flat greys share
        vector = np.zeros_like(vector)
        vector[0] = 1.0
    else:
        vector = vector / norm
    return [round(float(v), 5) for v in vector]


__all__ = ["DECODE_SIDE", "fingerprint_bytes", "fingerprint_decoded"]
