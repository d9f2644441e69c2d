"""The fingerprint: every hash and visual attribute of an image from one decode.

    bytes --decode_image (JPEG draft mode: libjpeg decodes at 1/2, 1/4 or 1/8 scale)
          --> one small RGB array, 256-511 px on its long side
          --trim uniform borders/frames--> content box
          --> pHash + dHash (+ the 8 flips/quarter turns) of the content, a 256-bit DCT
              hash, pHashes of overlapping regions (so crops match), ORB keypoints for
              verification, palette, named colours and a colour-layout vector.

Every hash follows imagehash's construction (pHash: 32x32 greyscale, 2-D DCT-II, 8x8 low
frequencies against their median) but shrinks with area averaging (OpenCV INTER_AREA) from
the small decode instead of Lanczos from full size: nearly the same bits, a fraction of the
cost. All resampling is OpenCV on numpy arrays; PIL only decodes.
"""

from __future__ import annotations

import base64
import colorsys
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageCms

from .contracts import NAMED_COLORS, Box, Fingerprint, PaletteColor, RegionHash
from .imaging import DecodedImage, decode_image, refused_if_our_code_fails

Array = np.ndarray
# Fingerprints run one per process in a pool sized to the cores; OpenCV's own threads on
# these small arrays would only fight the other processes for the same cores.
cv2.setNumThreads(1)

FINGERPRINT_SIDE = 256  # decode at least this long a side (JPEG draft mode picks the scale)
WORKING_SIDE = 256  # ...and compute everything from a copy this size: every hash and ORB
BORDER_TOLERANCE = 18  # grey levels a border row may differ from the border colour
MAX_TRIM_SHARE = 0.35  # never cut more than this from one side: it is content, not frame
MAX_NESTED_BORDERS = 3  # frame, mat, the picture's own margin
MATLIKE_EVENNESS = 0.5  # a mat's narrowest side is at least this share of its widest
# A photographed print (find_print) covers at least this share of the photograph, and its
# edges lean off the image's axes by more than the first and at most the second (a steeper
# quadrilateral is a shape in the picture, a diamond, not a print).
PRINT_MIN_SHARE = 0.3
PRINT_SOLIDITY = 0.95  # share of its convex hull the print's outline fills
PRINT_MIN_SLANT_DEGREES = 1.0
PRINT_MAX_SLANT_DEGREES = 15.0
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
REGION_SOURCE_SIDE = 160  # regions are cut from a copy this size; each ends as 32x32
# A query's central window is also hashed turned by a few degrees, so that a print turned or
# photographed askew by up to ~8 degrees meets that window of its original within a couple
# of degrees (a pHash shrugs off one or two). The 0.7 window: turned, its corners stay on
# the picture.
TURNED_WINDOW = (0.15, 0.15, 0.7, 0.7)
TURNS = (-6.0, -3.0, 3.0, 6.0)
PROBE_BITS = 4  # the pHash's least certain bits, flipped in every combination for lookups
# Keypoints kept per image, strongest first (36 bytes each packed). The matcher stores the
# first 192 of a catalogue image; a query brings all of them, so that a watermark or caption
# crowding the strongest spots does not leave it without the artwork's own keypoints.
ORB_FEATURES = 256
ORB_LEVELS = 6  # pyramid levels at scale 1.2: a 2.5x zoom (a 60% crop) still meets itself
_KEYPOINT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("d", "u1", (32,))])
THUMB_SIDE = 16  # the greyscale thumbnail smooth images are verified with
LAYOUT_GRID = 4  # the look-alike vector is a 4x4 grid of CIELAB means: 48 numbers
COLOR_SIDE = 48  # palette and named colours are counted on a copy this size
COLOR_LEVELS = 8  # per channel: colours are counted in 8x8x8 bins
PALETTE_SIZE = 5
COLOR_MIN_WEIGHT = 0.08  # a named colour must cover this share of the image to be listed


def fingerprint_bytes(data: bytes, query: bool = False) -> Fingerprint:
    """Decode once and fingerprint; raises imaging.ImageRejected for anything unusable. A
    query's fingerprint also carries what only searching needs (turned_centre,
    unmarked_phash)."""
    decoded = decode_image(data, decode_side=FINGERPRINT_SIDE)
    with refused_if_our_code_fails():
        return fingerprint_decoded(decoded, query)


def fingerprint_decoded(decoded: DecodedImage, query: bool = False) -> Fingerprint:
    rgb = working_copy(np.asarray(decoded.image))
    height_px, width_px = rgb.shape[:2]
    content, (left, top, right, bottom) = content_of(rgb)
    trimmed = (left, top, right, bottom) != (0, 0, width_px, height_px)
    grey = cv2.cvtColor(content, cv2.COLOR_RGB2GRAY)
    grey32 = shrink(grey, 32, 32)
    hashes64 = dihedral_hashes(grey32, 8)
    hashes256 = dihedral_hashes(shrink(grey, 64, 64), 16)
    untrimmed64: list[str] | None = None
    untrimmed256: list[str] | None = None
    if trimmed:
        whole = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        untrimmed64 = dihedral_hashes(shrink(whole, 32, 32), 8)
        untrimmed256 = dihedral_hashes(shrink(whole, 64, 64), 16)
    colour_sample = shrink_to_side(content, COLOR_SIDE)
    region_source = shrink_to_side(grey, REGION_SOURCE_SIDE)
    width, height = decoded.width, decoded.height
    return Fingerprint(
        phash=hashes64[0],
        dhash=dhash_hex(grey),
        phash_dihedral=hashes64,
        regions=region_hashes(region_source),
        turned_centre=turned_centre_hashes(region_source) if query else None,
        unmarked_phash=unmarked_phash(grey) if query else None,
        phash_probes=phash_probes(grey32),
        hash256=hashes256[0],
        hash256_dihedral=hashes256,
        untrimmed_phash_dihedral=untrimmed64,
        untrimmed_hash256_dihedral=untrimmed256,
        keypoints=orb_keypoints(grey),
        thumb=base64.b64encode(shrink(grey, THUMB_SIDE, THUMB_SIDE).tobytes()).decode(),
        trim=Box(
            x=left / width_px,
            y=top / height_px,
            w=(right - left) / width_px,
            h=(bottom - top) / height_px,
        ),
        width=width,
        height=height,
        megapixels=round(width * height / 1e6, 3),
        orientation=orientation(width, height),
        format=decoded.format,
        palette=palette(colour_sample),
        colors=named_colors(colour_sample),
        layout=layout_vector(colour_sample),
    )


def orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.05:
        return "landscape"
    if ratio < 1 / 1.05:
        return "portrait"
    return "square"


def working_copy(rgb: Array) -> Array:
    """The decode (256-511 px on the long side: JPEG draft mode, or decode_image's cap for
    other formats) brought to WORKING_SIDE: everything is computed from this one array.
    Under a 2x reduction bilinear sampling barely aliases and costs a fraction of area
    averaging at a fractional ratio."""
    h, w = rgb.shape[:2]
    scale = WORKING_SIDE / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out: Array = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    return out


def shrink(pixels: Array, width: int, height: int) -> Array:
    """Area-averaged resize: every source pixel counts, nothing aliases."""
    out: Array = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return out


def shrink_to_side(pixels: Array, side: int) -> Array:
    """Shrink so the long side is at most `side`, keeping the aspect ratio."""
    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return pixels
    return shrink(pixels, max(1, round(w * scale)), max(1, round(h * scale)))


# --- hashes ---------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _dct_matrix(n: int = 32) -> Array:
    # scipy.fftpack.dct type II without normalisation: y[k] = 2 * sum x[i] cos(pi k (2i+1) / 2n)
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def _low_frequencies(squares: Array, keep: int) -> Array:
    """The keep x keep lowest DCT-II frequencies of one square or a stack of them."""
    m = _dct_matrix(squares.shape[-1])[:keep]
    low: Array = m @ squares.astype(np.float64) @ m.T
    return low


def dct_hashes(squares: Array, keep: int) -> list[str]:
    """For each square in the stack: its keep x keep lowest DCT frequencies against their
    median, as hex. keep=8 on 32x32 is pHash; keep=16 on 64x64 is the 256-bit hash, the
    construction of PDQ's hash without its pre-filter: four times pHash's bits tell apart
    images pHash confuses, so it verifies rather than looks up. One batched call for a
    whole stack, since a fingerprint needs dozens."""
    low = _low_frequencies(squares, keep).reshape(len(squares), keep * keep)
    bits = low > np.median(low, axis=1, keepdims=True)
    return [bits_to_hex(row, width=keep * keep // 4) for row in bits]


def dihedral_hashes(square: Array, keep: int) -> list[str]:
    """dct_hashes of the 8 flips and quarter turns, in contracts.DIHEDRAL_TRANSFORMS order."""
    return dct_hashes(np.stack(dihedral_variants(square)), keep)


def phash_probes(grey32: Array) -> list[str]:
    """The pHash with every non-empty combination of its PROBE_BITS least certain bits
    flipped. Smooth images (gradients, colour fields) have many coefficients close to the
    median, so a gamma change or recompression tips a few bits the hash stage then misses."""
    low = _low_frequencies(grey32, 8).ravel()
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


def dhash_hex(grey: Array) -> str:
    small = shrink(grey, 9, 8).astype(np.int16)
    return bits_to_hex(small[:, 1:] > small[:, :-1])


def bits_to_hex(bits: Array, width: int = 16) -> str:
    """Bits, first one most significant, as `width` hex digits (imagehash's spelling)."""
    return np.packbits(bits.ravel().astype(bool)).tobytes().hex().rjust(width, "0")[-width:]


def dihedral_variants(square: Array) -> list[Array]:
    """The 8 flips and quarter turns, in contracts.DIHEDRAL_TRANSFORMS order.

    Resizing to a square commutes with these, so transforming the 32x32 thumbnail gives the
    same pixels as thumbnailing the transformed image. A trailing channel axis (a grid of
    colours) rides along."""
    swap = (1, 0, *range(2, square.ndim))
    return [
        square,
        np.rot90(square, 1),
        np.rot90(square, 2),
        np.rot90(square, 3),
        np.fliplr(square),
        np.flipud(square),
        square.transpose(swap),
        np.rot90(square, 2).transpose(swap),
    ]


def region_hashes(source: Array) -> list[RegionHash]:
    """The pHash of every REGION_WINDOWS window of `source` (grey, REGION_SOURCE_SIDE)."""
    h, w = source.shape
    boxes, squares = [], []
    for x, y, rw, rh in REGION_WINDOWS:
        x0, y0, x1, y1 = round(x * w), round(y * h), round((x + rw) * w), round((y + rh) * h)
        if x1 - x0 < 16 or y1 - y0 < 16:
            continue
        boxes.append(Box(x=x, y=y, w=rw, h=rh))
        squares.append(shrink(source[y0:y1, x0:x1], 32, 32))
    if not squares:
        return []
    hashes = dct_hashes(np.stack(squares), 8)
    return [RegionHash(box=box, phash=phash) for box, phash in zip(boxes, hashes, strict=True)]


def unmarked_phash(grey: Array) -> str:
    """The pHash of the content after a 3x3 grey-level opening (WORKING_SIDE pixels), which
    erases strokes a couple of pixels wide that are brighter than around them: the white,
    half-transparent text of a stock watermark. Compared with the catalogue's plain pHash:
    the opening barely moves the low frequencies of the picture itself."""
    opened = cv2.morphologyEx(grey, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return dct_hashes(shrink(opened, 32, 32)[None], 8)[0]


def turned_centre_hashes(source: Array) -> list[str]:
    """The pHash of TURNED_WINDOW of `source` (as region_hashes takes it) turned by each of
    TURNS degrees about the picture's centre."""
    h, w = source.shape
    x, y, rw, rh = TURNED_WINDOW
    x0, y0, x1, y1 = round(x * w), round(y * h), round((x + rw) * w), round((y + rh) * h)
    squares = []
    for angle in TURNS:
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        turned = cv2.warpAffine(
            source, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        squares.append(shrink(turned[y0:y1, x0:x1], 32, 32))
    return dct_hashes(np.stack(squares), 8)


# --- local features ---------------------------------------------------------------------------


# A faint picture (a pale print, a glass or a white balloon on white, a smooth wallpaper)
# gives FAST few corners at its usual contrast threshold, and then only its whole-picture
# hashes can find it: no crop, turn or tilt of it. Under FEW_KEYPOINTS its grey levels are
# stretched to the full range and FAST asked again at a lower threshold. On the dev part of
# bench/robustness.py this took recall on crop_20 from 0.943 to 0.987, crop_50 0.880 to
# 0.930, rotate_4 0.918 to 0.962, tilt 0.943 to 0.975; it also let a faint moon's outline
# match round smileys (two false pairs on report: bench/README.md).
FEW_KEYPOINTS = 64
FAINT_FAST_THRESHOLD = 5
USUAL_FAST_THRESHOLD = 12


def orb_keypoints(grey: Array) -> str | None:
    """ORB keypoints of the content, packed as pack_keypoints; None when there are too few to
    verify anything with (smooth images: gradients, colour fields)."""
    pixels = np.ascontiguousarray(grey)
    found, descriptors = _orb(pixels, USUAL_FAST_THRESHOLD)
    if len(found) < FEW_KEYPOINTS:
        more, more_descriptors = _orb(_stretched(pixels), FAINT_FAST_THRESHOLD)
        if len(more) > len(found):
            found, descriptors = more, more_descriptors
    if descriptors is None or len(found) < 8:
        return None
    order = np.argsort([-k.response for k in found])[:ORB_FEATURES]
    xy = np.array([found[i].pt for i in order], dtype=np.float64)
    return pack_keypoints(pixels.shape[1], pixels.shape[0], xy, descriptors[order])


def _orb(pixels: Array, threshold: int) -> tuple[list[Any], Array | None]:
    orb = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=ORB_FEATURES, fastThreshold=threshold, edgeThreshold=15, nlevels=ORB_LEVELS
    )
    found, descriptors = orb.detectAndCompute(pixels, None)
    return list(found), descriptors


def _stretched(pixels: Array) -> Array:
    """The grey levels spread over 0-255 (the extreme 0.5% on each side clipped)."""
    lo, hi = np.percentile(pixels, (0.5, 99.5))
    if hi - lo < 1:
        return pixels
    out = (pixels.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


def pack_keypoints(width: int, height: int, xy: Array, descriptors: Array) -> str:
    """base64 of: width, height (uint16), then per keypoint x, y (uint16, in 1/64000 of the
    side) and the 32-byte ORB descriptor."""
    packed = np.zeros(len(xy), dtype=_KEYPOINT_DTYPE)
    packed["x"] = np.clip(np.round(xy[:, 0] / width * 64000), 0, 64000)
    packed["y"] = np.clip(np.round(xy[:, 1] / height * 64000), 0, 64000)
    packed["d"] = descriptors
    header = np.array([width, height], dtype="<u2").tobytes()
    return base64.b64encode(header + packed.tobytes()).decode()


KEYPOINT_BYTES = _KEYPOINT_DTYPE.itemsize  # packed bytes per keypoint, after a 4-byte header


def packed_keypoints(text: str, keep: int) -> bytes:
    """The packed bytes (header included) of the first `keep` keypoints of a fingerprint's
    `keypoints`, strongest first."""
    return base64.b64decode(text)[: 4 + KEYPOINT_BYTES * keep]


def thumbnail_pixels(fingerprint: Fingerprint) -> Array | None:
    """The THUMB_SIDE x THUMB_SIDE greyscale thumbnail, row by row (uint8), or None."""
    if not fingerprint.thumb:
        return None
    raw = np.frombuffer(base64.b64decode(fingerprint.thumb), dtype=np.uint8)
    return raw if raw.size == THUMB_SIDE * THUMB_SIDE else None


def layout_cells(fingerprint: Fingerprint) -> Array | None:
    """The colour layout as LAYOUT_GRID x LAYOUT_GRID cells of (relative L*, a*, b*), or None
    when the fingerprint has none of that shape."""
    layout = np.asarray(fingerprint.layout, dtype=np.float64)
    if layout.size != LAYOUT_GRID * LAYOUT_GRID * 3:
        return None
    return layout.reshape(LAYOUT_GRID, LAYOUT_GRID, 3)


def unpack_keypoints(text: str) -> tuple[int, int, Array, Array]:
    """(width, height, xy in pixels of that size (float32, n x 2), descriptors (n x 32))."""
    return unpack_keypoint_bytes(base64.b64decode(text))


def unpack_keypoint_bytes(raw: bytes) -> tuple[int, int, Array, Array]:
    width, height = (int(v) for v in np.frombuffer(raw[:4], dtype="<u2"))
    packed = np.frombuffer(raw[4:], dtype=_KEYPOINT_DTYPE)
    xy = np.stack([packed["x"] * (width / 64000), packed["y"] * (height / 64000)], axis=1)
    return width, height, xy.astype(np.float32), np.ascontiguousarray(packed["d"])


# --- borders, frames and photographed prints --------------------------------------------------


def content_of(rgb: Array) -> tuple[Array, tuple[int, int, int, int]]:
    """The picture inside its borders, and where it lies (left, top, right, bottom). A print
    photographed at a slant against a plain wall is straightened first (find_print)."""
    corners = find_print(rgb)
    if corners is None:
        left, top, right, bottom = find_content_box(rgb)
        return rgb[top:bottom, left:right], (left, top, right, bottom)
    top_width = float(np.linalg.norm(corners[1] - corners[0]))
    bottom_width = float(np.linalg.norm(corners[2] - corners[3]))
    left_height = float(np.linalg.norm(corners[3] - corners[0]))
    right_height = float(np.linalg.norm(corners[2] - corners[1]))
    w = max(8, round((top_width + bottom_width) / 2))
    h = max(8, round((left_height + right_height) / 2))
    square = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    straight = cv2.warpPerspective(
        rgb, cv2.getPerspectiveTransform(corners, square), (w, h), flags=cv2.INTER_LINEAR
    )
    left, top, right, bottom = find_content_box(straight)  # a frame or mat on the print
    # Where it lies: a box of the straightened size about the print's centre.
    cx, cy = corners.mean(axis=0)
    box = (
        max(0, round(cx - w / 2 + left)),
        max(0, round(cy - h / 2 + top)),
        min(rgb.shape[1], round(cx - w / 2 + right)),
        min(rgb.shape[0], round(cy - h / 2 + bottom)),
    )
    return straight[top:bottom, left:right], box


def find_print(rgb: Array) -> Array | None:
    """The corners (top left, top right, bottom right, bottom left; float32) of a picture
    that stands out from a plain surround as a slanted quadrilateral: a print photographed
    off-axis or turned on a wall. None when the surround is not plain, the picture's edge
    does not stand out from it all round, or it is already square to the image (borders
    then do: find_content_box)."""
    h, w = rgb.shape[:2]
    ring = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    surround = np.median(ring, axis=0)
    if (np.abs(ring - surround).max(axis=1) > BORDER_TOLERANCE).mean() > 0.05:
        return None
    mask = (np.abs(rgb.astype(np.int16) - surround).max(axis=2) > BORDER_TOLERANCE).astype(np.uint8)
    # Close the specks of a textured picture that happen to match the wall.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    x, y, box_w, box_h = cv2.boundingRect(outline)
    if x < 2 or y < 2 or x + box_w > w - 2 or y + box_h > h - 2:
        return None  # the wall must go all round; this is a frame's shading, not a wall
    hull = cv2.convexHull(outline)
    hull_area = cv2.contourArea(hull)
    # A print is one solid piece: its outline fills its hull. A picture with patches of the
    # wall's colour at its edge (a white painting on a white wall) does not, and is left.
    if hull_area < PRINT_MIN_SHARE * h * w or cv2.contourArea(outline) < PRINT_SOLIDITY * hull_area:
        return None
    # Its outline is four straight edges (a blurred corner may need a coarser fit).
    for tolerance in (0.02, 0.03, 0.04):
        quad = cv2.approxPolyDP(hull, tolerance * cv2.arcLength(hull, True), True).reshape(-1, 2)
        if len(quad) <= 4:
            break
    if len(quad) != 4:
        return None
    corners = quad.astype(np.float32)
    # Clockwise on screen (y grows downwards) by angle about the centre, top left first.
    corners = corners[np.argsort(np.arctan2(*(corners - corners.mean(axis=0)).T[::-1]))]
    corners = np.roll(corners, -int(np.argmin(corners.sum(axis=1))), axis=0)
    edges = np.roll(corners, -1, axis=0) - corners  # top, right, bottom, left
    off_horizontal = np.degrees(np.arctan2(np.abs(edges[:, 1]), np.abs(edges[:, 0])))
    slant = np.where(np.arange(4) % 2 == 0, off_horizontal, 90 - off_horizontal)  # sides: vertical
    if slant.max() > PRINT_MAX_SLANT_DEGREES or slant.max() < PRINT_MIN_SLANT_DEGREES:
        return None
    return corners


def find_content_box(rgb: Array) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) inside uniform borders such as mats and plain frames,
    however many are nested: a moulding around a mat around a painting's own plain margin.
    Each pass sees only what the last one left, because a column of the inner border runs
    into the outer border at both ends and so is not one colour along its whole length."""
    left, top, right, bottom = 0, 0, rgb.shape[1], rgb.shape[0]
    for _ in range(MAX_NESTED_BORDERS):
        h, w = bottom - top, right - left
        inner_left, inner_top, inner_right, inner_bottom = _one_border(rgb[top:bottom, left:right])
        left, top, right, bottom = (
            left + inner_left,
            top + inner_top,
            left + inner_right,
            top + inner_bottom,
        )
        # Look inside only what looks like a mat or a frame: cut from all four sides, about
        # evenly. An uneven cut is plain picture (a dark sky, a studio backdrop): further
        # passes would eat into it a little more each time.
        cuts = np.array(
            [inner_left / w, inner_top / h, (w - inner_right) / w, (h - inner_bottom) / h]
        )
        if cuts.min() < MATLIKE_EVENNESS * cuts.max() or cuts.max() == 0:
            break
    return (left, top, right, bottom)


def _one_border(rgb: Array) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) inside the outermost uniform border.

    A side is cut while its outermost row or column stays close to that side's colour; a
    run reaching MAX_TRIM_SHARE of the dimension is left, so a dark sky is not cut as a mat."""
    h, w = rgb.shape[:2]
    img = rgb.astype(np.int16)

    def border_lines(lines: Array, ref: Array) -> Array:
        # lines: (count, pixels, 3) from the edge inwards. A line belongs to the border if
        # it stays close to the outermost line's colour (a mat), or is one plain colour
        # along its length (the shaded rings of a moulding). "95% of its pixels within the
        # tolerance" is counted rather than taken as a percentile: same test, no sorting.
        dev = np.abs(lines - ref).max(axis=2)
        own = np.abs(lines - np.median(lines, axis=1, keepdims=True)).max(axis=2)
        close: Array = ((dev > BORDER_TOLERANCE).mean(axis=1) <= 0.05) | (
            (own > BORDER_TOLERANCE // 2).mean(axis=1) <= 0.15  # corners of a frame
        )
        return close

    def run(lines: Array, limit: int) -> int:
        ref = np.median(lines[0], axis=0)
        # Most pictures have no border and a border is seldom deep: test a few lines at a
        # time from the edge inwards and stop at the first that is not border.
        depth, step = 0, 1
        while depth < limit:
            close = border_lines(lines[depth : min(limit, depth + step)], ref)
            if not close.all():
                depth += int(np.argmin(close))
                break
            depth, step = depth + len(close), 8
        # A "border" as deep as the limit is a plain part of the picture (sky, colour
        # field), not a mat: leave that side alone.
        return 0 if depth >= limit else depth

    max_rows, max_cols = int(h * MAX_TRIM_SHARE), int(w * MAX_TRIM_SHARE)
    top = run(img[: max_rows + 1], max_rows)
    bottom = run(img[::-1][: max_rows + 1], max_rows)
    left = run(img.transpose(1, 0, 2)[: max_cols + 1], max_cols)
    right = run(img.transpose(1, 0, 2)[::-1][: max_cols + 1], max_cols)
    if (h - top - bottom) < 8 or (w - left - right) < 8:
        return (0, 0, w, h)  # a plain image: nothing is border
    return (left, top, w - right, h - bottom)


# --- colour ------------------------------------------------------------------------------------


def _colour_bins(rgb: Array) -> tuple[Array, Array]:
    """Each pixel's bin in an 8x8x8 cube, and the number of pixels in every bin."""
    levels = rgb.reshape(-1, 3).astype(np.intp) // (256 // COLOR_LEVELS)
    bins = (levels[:, 0] * COLOR_LEVELS + levels[:, 1]) * COLOR_LEVELS + levels[:, 2]
    counts = np.bincount(bins, minlength=COLOR_LEVELS**3)
    return bins, counts


def palette(rgb: Array) -> list[PaletteColor]:
    """The PALETTE_SIZE most covered colour bins, each as the mean colour of its pixels."""
    bins, counts = _colour_bins(rgb)
    pixels = rgb.reshape(-1, 3).astype(np.float64)
    sums = np.stack([np.bincount(bins, pixels[:, c], COLOR_LEVELS**3) for c in range(3)], 1)
    out = []
    for index in np.argsort(-counts, kind="stable")[:PALETTE_SIZE]:
        if counts[index] == 0:
            break
        r, g, b = (int(v) for v in np.round(sums[index] / counts[index]))
        weight = round(float(counts[index]) / len(bins), 4)
        out.append(PaletteColor(hex=f"#{r:02x}{g:02x}{b:02x}", weight=weight))
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


@lru_cache(maxsize=1)
def _bin_names() -> tuple[str, ...]:
    """The colour name of every bin's centre, worked out once per process."""
    step = 256 // COLOR_LEVELS
    centres = [step * i + step // 2 for i in range(COLOR_LEVELS)]
    return tuple(color_name(r, g, b) for r in centres for g in centres for b in centres)


def named_colors(rgb: Array) -> list[str]:
    """Named colours covering at least COLOR_MIN_WEIGHT of the image, most covered first."""
    _, counts = _colour_bins(rgb)
    total = counts.sum()
    weights: dict[str, float] = {}
    for index in np.flatnonzero(counts):
        name = _bin_names()[index]
        weights[name] = weights.get(name, 0.0) + counts[index] / total
    ranked = sorted(weights.items(), key=lambda item: -item[1])
    return [name for name, share in ranked if share >= COLOR_MIN_WEIGHT and name in NAMED_COLORS]


@lru_cache(maxsize=1)
def _srgb_to_lab() -> ImageCms.ImageCmsTransform:
    # Building the colour transform costs more than applying it: build it once per process.
    return ImageCms.buildTransformFromOpenProfiles(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )


def layout_vector(rgb: Array) -> list[float]:
    """4x4 grid of CIELAB cells for cosine kNN look-alikes: lightness relative to the image's
    mean (the layout of light and dark) and the colour axes a*, b* (the palette). Without
    removing the mean lightness, every mid-grey image would look alike."""
    grid = Image.fromarray(np.ascontiguousarray(shrink(rgb, LAYOUT_GRID, LAYOUT_GRID)))
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


__all__ = ["FINGERPRINT_SIDE", "fingerprint_bytes", "fingerprint_decoded"]
