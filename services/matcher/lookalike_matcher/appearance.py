"""Verification by appearance, for what hashes and keypoints see badly.

Smooth pictures (colour fields, gradients, minimal abstract art) have DCT coefficients near
their median, so their hash bits flip under a mere resize, and they have no keypoints. Two
things still tell them apart cheaply:

- structure: the correlation of the 16x16 greyscale thumbnails (mean and contrast removed,
  so a gamma or exposure change barely moves it), taken over the query's 8 flips and turns;
  or of their inner 14x14 if that is closer: a slightly turned or tilted copy has corners of
  background, which in a low-contrast picture outweigh all the rest. Contrast removed, a
  nearly flat field correlates with a strong ramp at the same angle, so their contrasts
  must also agree within what a tone change does;
- colour: the cosine of the CIELAB a*/b* 4x4 grids (Fingerprint.layout) in that same
  orientation, and, when both pictures change colour across the canvas, the correlation of
  those changes (each grid less its mean: a colour cast or a saturation change leaves it
  alone, another gradient through similar colours does not). Greyscale structure alone
  confuses two gradients at the same angle; their colours do not.
- grey levels, when a colourless query meets a colourful picture: a greyscale copy keeps
  its original's luma, another picture of the same structure seldom does. Colour lost and
  grey levels different, the evidence counts for COLOUR_LOST_SHARE of itself.

The colour factor (the cosine, or the discount for colour lost) also tempers the 256-bit
hash score: hashes are greyscale too. The correlation of colour changes tempers only the
thumbnail evidence: it needs the two grids to line up as the thumbnails do, and a copy
trimmed a little differently (a crop, a mat) shifts them.

The thumbnail also gives such pictures a way onto the short list: an average hash (8x8
cells against their mean). A pHash of a plain left-to-right ramp is noise (every DCT
coefficient off the first row is near zero, so near the median); its average hash is
half ones, half zeros, and stays so through resizing, recompression and tone changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fingerprint import (
    THUMB_SIDE,
    dihedral_variants,
    layout_cells,
    thumbnail_pixels,
)

Array = np.ndarray

MIN_THUMB_CONTRAST = 2.0  # grey levels of standard deviation: flatter thumbnails say nothing
MIN_CHROMA = 0.15  # share of the layout vector's length in a*/b*: below it, no colour to judge
STRUCTURE_FLOOR = 0.95  # thumbnail correlation that scores 0; 1.0 scores 100
# Without colour to check there is less evidence: demand closer structure. A greyscale copy
# keeps its original's luma exactly, so its own correlation stays near 1.
COLOURLESS_STRUCTURE_FLOOR = 0.98
ASPECT_SAME = 1.1  # proportions this close count as the same picture's ...
ASPECT_DIFFERENT = 1.3  # ... and this far apart as another picture's
_QUARTER_TURNS = {1, 3, 6, 7}  # orientations (DIHEDRAL_TRANSFORMS) that swap width and height
COLOUR_LOST_SHARE = 0.55  # colour lost: 100 points of evidence count 55, never a duplicate ...
# ... unless the copy kept the original's grey levels too, as a greyscale copy does (its luma
# is the original's): mean absolute thumbnail difference, in grey levels, at which the
# discount is fully lifted and from which it holds. In bench/robustness.py 99% of greyscale
# copies were within 3 levels of their original and every other picture 15 or more away.
SAME_LUMA = 4.0
OTHER_LUMA = 10.0
COLOUR_FLOOR = 0.6  # colour cosine at which the colour factor reaches 0 ...
COLOUR_FULL = 0.9  # ... and where it reaches 1
# Thumbnail contrast (standard deviation, +1 grey level) of the query over the picture's or
# the inverse: up to SAME_CONTRAST it is the same picture's, from OTHER_CONTRAST another's.
# In bench/robustness.py 90% of copies lay within 1.16 of their original and 99% within
# 1.75 (gamma shifts, watermarks and crops the furthest); the highest-scoring false pair of
# 150 gradients at nearly one angle (a strong ramp and a nearly flat field) 5 apart.
SAME_CONTRAST = 1.5
OTHER_CONTRAST = 2.2
# Colour changes across the canvas (grid less its mean, as a share of the grid's length)
# below which a picture counts as one colour, and their correlation's ramp. In
# bench/robustness.py the closest pair of different gradients correlated 0.966; copies
# 0.99 or more, all but gamma and colour shifts (5% below 0.91) and heavy crops.
MIN_COLOUR_CHANGE = 0.1
CHANGE_FLOOR = 0.9
CHANGE_FULL = 0.99


def thumb_pixels(fingerprint: Fingerprint) -> Array | None:
    """The thumbnail as 256 uint8 pixels, or None when the fingerprint has none."""
    return thumbnail_pixels(fingerprint)


def chroma_grid(fingerprint: Fingerprint) -> Array | None:
    """The layout's a*/b* cells as int8 (4x4x2 flattened), or None when there is next to
    no colour."""
    cells = layout_cells(fingerprint)
    if cells is None:
        return None
    ab = cells[..., 1:].ravel()
    if np.linalg.norm(ab) < MIN_CHROMA:
        return None
    return np.clip(np.round(ab * 127), -127, 127).astype(np.int8)


def average_hashes(pixels: Array, orientations: int = 8) -> Array | None:
    """The average hash of the thumbnail in the first `orientations` of the 8 flips and
    turns (uint64, identity first; a catalogue image needs only that one), or None for a
    thumbnail too flat for its bits to mean anything."""
    if _normalised(pixels) is None:
        return None
    cells = pixels.reshape(8, 2, 8, 2).astype(np.float32).mean(axis=(1, 3))
    turned = dihedral_variants(cells)[:orientations] if orientations > 1 else [cells]
    codes = [np.packbits(v.ravel() > cells.mean()).view(">u8")[0] for v in turned]
    return np.array(codes, dtype=np.uint64)


def _colour_changes(ab: Array) -> Array | None:
    """Unit-length a*/b* grids (..., 32) less their mean a* and b*, brought to unit length;
    None when what is left is too little to mean anything (a picture in one colour)."""
    cells = ab.reshape(*ab.shape[:-1], 16, 2)
    changes = (cells - cells.mean(axis=-2, keepdims=True)).reshape(ab.shape)
    length = np.linalg.norm(changes, axis=-1, keepdims=True)
    out: Array = changes / length
    return out if float(length.min()) >= MIN_COLOUR_CHANGE else None


def _inner(thumb: Array) -> Array:
    """The thumbnail without its outermost ring of pixels, flattened."""
    out: Array = thumb.reshape(THUMB_SIDE, THUMB_SIDE)[1:-1, 1:-1].ravel()
    return out


def _normalised(pixels: Array) -> Array | None:
    centred = pixels.astype(np.float32) - pixels.mean()
    norm = float(np.linalg.norm(centred))
    if norm < MIN_THUMB_CONTRAST * np.sqrt(pixels.size):
        return None
    out: Array = centred / norm
    return out


@dataclass(frozen=True)
class QueryAppearance:
    thumbs: Array  # (8, 256): the query's normalised thumbnail in each orientation
    inner: Array | None  # (8, 196): its inner 14x14 normalised, None if that is flat
    grey: Array  # (8, 256) float32: its grey levels in each orientation
    contrast: float  # their standard deviation
    chroma: Array | None  # (8, 32): its a*/b* grid in each orientation, unit length
    changes: Array | None  # (8, 32): that grid less its mean, unit length; None if one colour
    average_hashes: Array  # (8,) uint64: its average hash in each orientation

    @classmethod
    def of(cls, query: Fingerprint) -> QueryAppearance | None:
        pixels = thumb_pixels(query)
        if pixels is None:
            return None
        turned = dihedral_variants(pixels.reshape(THUMB_SIDE, THUMB_SIDE).astype(np.float32))
        thumbs = [_normalised(v) for v in turned]
        if thumbs[0] is None:
            return None
        inner = [_normalised(_inner(v)) for v in turned]
        grid = chroma_grid(query)
        chroma = changes = None
        if grid is not None:
            cells = grid.astype(np.float32).reshape(4, 4, 2)
            oriented = np.stack([v.ravel() for v in dihedral_variants(cells)])
            chroma = oriented / np.linalg.norm(oriented, axis=1, keepdims=True)
            changes = _colour_changes(chroma)
        codes = average_hashes(pixels)
        assert codes is not None  # the thumbnail has contrast: checked above
        return cls(
            np.stack([t.ravel() for t in thumbs if t is not None]),
            np.stack([i for i in inner if i is not None]) if inner[0] is not None else None,
            np.stack([v.ravel() for v in turned]),
            float(pixels.std()),
            chroma,
            changes,
            codes,
        )

    def compare(self, thumb: Array | None, chroma: Array | None) -> tuple[float, float, int]:
        """(structure score 0-100, colour factor 0-1, orientation) against one catalogue
        image's thumbnail and a*/b* grid. The structure score already counts how well the
        colour changes agree; the colour factor is for the caller's other evidence."""
        if thumb is None or (target := _normalised(thumb)) is None:
            return 0.0, 1.0, 0
        correlations = self.thumbs @ target
        orientation = int(np.argmax(correlations))
        r = float(correlations[orientation])
        inner = _normalised(_inner(thumb)) if self.inner is not None else None
        if inner is not None and self.inner is not None:
            r = max(r, float(self.inner[orientation] @ inner))
        floor, colour, structure_colour = COLOURLESS_STRUCTURE_FLOOR, 1.0, 1.0
        if self.chroma is None and chroma is not None:
            # A colourless copy of a colourful picture: its structure may match several
            # catalogue pictures that differ only in colour (two ramps at one angle), but
            # seldom their grey levels too.
            luma_apart = float(np.abs(self.grey[orientation] - thumb).mean())
            same_luma = _ramp(-luma_apart, -OTHER_LUMA, -SAME_LUMA)
            colour = COLOUR_LOST_SHARE + (1.0 - COLOUR_LOST_SHARE) * same_luma
        elif self.chroma is not None and chroma is not None:
            target_ab = chroma.astype(np.float32)
            target_ab /= float(np.linalg.norm(target_ab))
            colour = _ramp(float(self.chroma[orientation] @ target_ab), COLOUR_FLOOR, COLOUR_FULL)
            target_changes = _colour_changes(target_ab)
            if self.changes is not None and target_changes is not None:
                together = float(self.changes[orientation] @ target_changes)
                structure_colour = _ramp(together, CHANGE_FLOOR, CHANGE_FULL)
            floor = STRUCTURE_FLOOR
        apart = (self.contrast + 1.0) / (float(thumb.std()) + 1.0)
        contrast = _ramp(-max(apart, 1.0 / apart), -OTHER_CONTRAST, -SAME_CONTRAST)
        return 100.0 * _ramp(r, floor, 1.0) * structure_colour * contrast, colour, orientation


def aspect_agreement(query_aspect: float, target_aspect: float, orientation: int) -> float:
    """1 when the query, turned as `orientation` says, has the target's proportions (within
    ASPECT_SAME), falling to 0 at ASPECT_DIFFERENT. Whole-picture evidence (thumbnails,
    global hashes) squeezes every picture into a square, so it cannot see proportions."""
    if query_aspect <= 0 or target_aspect <= 0:
        return 1.0  # not known (an index restored from a snapshot older than aspects)
    if orientation in _QUARTER_TURNS:
        query_aspect = 1.0 / query_aspect
    apart = abs(math.log(query_aspect / target_aspect))
    return _ramp(-apart, -math.log(ASPECT_DIFFERENT), -math.log(ASPECT_SAME))


def _ramp(value: float, zero: float, one: float) -> float:
    return min(1.0, max(0.0, (value - zero) / (one - zero)))
