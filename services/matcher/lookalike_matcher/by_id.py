"""Search by catalogue image id ("more like this"): a query built from what the index holds.

The index keeps of each image its content pHashes (trimmed and untrimmed), 256-bit hashes,
thumbnail, colour grid, proportions and strongest keypoints, not its full fingerprint. From
those a query fingerprint is rebuilt that finds what a search with the image itself finds,
but for two things the index does not keep: the other seven flips and turns of the hashes
(each orientation slot holds the identity hash, so a mirrored or turned copy in the
catalogue is found only through the thumbnail's eight orientations and the keypoints), and
the region hashes (a catalogue image that is a crop of this one is found through shared
keypoints, the local stage, rather than a region's hash).
"""

from __future__ import annotations

import base64

import numpy as np

from lookalike_shared.contracts import Fingerprint, PaletteColor
from lookalike_shared.fingerprint import orientation

from .index import FingerprintIndex, StoredEntry

SCALE = 1000  # width and height are rebuilt from the proportions: only their ratio matters


def _hex64(code: int) -> str:
    return f"{code:016x}"


def _layout_from(chroma: bytes | None) -> list[float]:
    """A layout vector whose a*/b* cells give back the stored grid (appearance.chroma_grid)
    and whose lightness says nothing; a flat direction without colour."""
    vector = np.zeros((16, 3), dtype=np.float64)
    if chroma is None:
        vector[0, 0] = 1.0
    else:
        vector[:, 1:] = np.frombuffer(chroma, dtype=np.int8).reshape(16, 2) / 127.0
    return [round(float(v), 6) for v in vector.ravel()]


def query_from(entry: StoredEntry) -> Fingerprint | None:
    """The query fingerprint of a stored entry; None for an entry without its pHash (one
    restored from a snapshot written before the index kept it)."""
    if entry.phash is None:
        return None
    whole = entry.aspects[1] if entry.aspects[1] > 0 else 1.0
    width, height = max(1, round(SCALE * whole)), SCALE
    untrimmed = [_hex64(entry.untrimmed_phash)] * 8 if entry.untrimmed_phash is not None else None
    return Fingerprint(
        phash=_hex64(entry.phash),
        dhash=_hex64(entry.phash),  # never searched
        phash_dihedral=[_hex64(entry.phash)] * 8,
        regions=[],
        trim=entry.trim,
        width=width,
        height=height,
        megapixels=round(width * height / 1e6, 3),
        orientation=orientation(width, height),
        format="jpeg",  # not searched
        palette=[PaletteColor(hex="#808080", weight=1.0)],  # not searched
        colors=[],
        layout=_layout_from(entry.chroma),
        hash256=entry.hash256.hex() if entry.hash256 else None,
        hash256_dihedral=[entry.hash256.hex()] * 8 if entry.hash256 else None,
        untrimmed_phash_dihedral=untrimmed,
        untrimmed_hash256_dihedral=[entry.untrimmed256.hex()] * 8 if entry.untrimmed256 else None,
        keypoints=base64.b64encode(entry.keypoints).decode() if entry.keypoints else None,
        thumb=base64.b64encode(entry.thumb).decode() if entry.thumb else None,
    )


def query_of(index: FingerprintIndex, image_id: str) -> Fingerprint | None:
    entry = index.stored(image_id)
    return None if entry is None else query_from(entry)
