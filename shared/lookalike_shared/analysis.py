"""Everything the pool computes for one image, from one decode:

    bytes --decode_image (once)--> fingerprint (hashes, regions, keypoints, colours)
                               \\-> embedding (look-alike vector) and subject words

Ingest sends the fingerprint to the matcher (the compacted topic) and all of it to
Elasticsearch; the gateway searches with all of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .contracts import Fingerprint
from .embedding import embedder
from .fingerprint import FINGERPRINT_SIDE, fingerprint_decoded
from .imaging import decode_image, refused_if_our_code_fails


@dataclass(frozen=True)
class ImageAnalysis:
    fingerprint: Fingerprint
    embedding: list[float]  # embedding.EMBEDDING_DIMS numbers, unit length
    subjects: list[str]  # ImageNet class names, most likely first


def analyse_bytes(data: bytes, query: bool = False) -> ImageAnalysis:
    """Decode once, fingerprint and embed; raises imaging.ImageRejected for anything
    unusable. `query` for an image to search with (fingerprint_decoded)."""
    decoded = decode_image(data, decode_side=FINGERPRINT_SIDE)
    with refused_if_our_code_fails():
        fingerprint = fingerprint_decoded(decoded, query)
        found = embedder().embed(np.asarray(decoded.image))
    return ImageAnalysis(
        fingerprint=fingerprint,
        embedding=found.vector.tolist(),
        subjects=found.subjects,
    )


def load_models() -> int:
    """Load the embedding model in this process (a pool worker's warm_up, about half a
    second), so that the first image or query does not wait for it."""
    embedder()
    return os.getpid()
