"""Comparing two images: the verdict a search would give on the pair, with its evidence.

b is put alone in an index of its own and a is judged against it with the very scoring a
search uses (scoring.weigh), so `duplicate` means what it means in a search, at the same
threshold. Unlike a search, the pair is judged even when no hash pair brought b forward:
the hash stage only gathers candidates, and a comparison has its candidate already.
"""

from __future__ import annotations

from lookalike_shared.contracts import Box, Comparison, Fingerprint

from . import candidates
from .appearance import QueryAppearance
from .candidates import NO_HASH_PAIR, Candidate
from .index import FingerprintIndex
from .scoring import DUPLICATE_SCORE, Evidence, QueryEvidence, in_image, weigh
from .snapshot import empty_state
from .state import CONTENT

_B = "b"
_WHOLE = Box(x=0, y=0, w=1, h=1)


def compare(a: Fingerprint, b: Fingerprint) -> Comparison:
    index = FingerprintIndex(empty_state(None))  # in memory, for this pair only
    index.upsert(_B, 1, b)
    state = index.state
    slot = state.names.slot_of(_B)
    assert slot is not None
    looks = QueryAppearance.of(a)
    query = QueryEvidence.of(a, looks)
    found = candidates.by_hashes(state, a, looks)
    found.append(Candidate(slot, NO_HASH_PAIR, 0, CONTENT, CONTENT))
    best = max((weigh(state, c, query) for c in found), key=lambda e: e.score)
    return _comparison(best, a, b)


def _comparison(best: Evidence, a: Fingerprint, b: Fingerprint) -> Comparison:
    b_trim = _WHOLE if best.target_untrimmed else b.trim
    region_a, region_b = in_image(best.query_box, a.trim), in_image(best.target_box, b_trim)
    duplicate = best.score >= DUPLICATE_SCORE
    inliers = []
    if best.local is not None:
        for qx, qy, tx, ty in best.local.pairs.tolist():
            inliers.append(
                (
                    round(a.trim.x + qx * a.trim.w, 4),
                    round(a.trim.y + qy * a.trim.h, 4),
                    round(b.trim.x + tx * b.trim.w, 4),
                    round(b.trim.y + ty * b.trim.h, 4),
                )
            )
    return Comparison(
        duplicate=duplicate,
        score=round(best.score, 1),
        threshold=DUPLICATE_SCORE,
        evidence=best.kind,
        transform=best.transform,
        overlap_a=round(min(1.0, best.query_share * a.trim.w * a.trim.h), 3) if duplicate else 0.0,
        overlap_b=round(min(1.0, region_b.w * region_b.h), 3) if duplicate else 0.0,
        region_a=_rounded(region_a) if duplicate else None,
        region_b=_rounded(region_b) if duplicate else None,
        inliers=inliers,
    )


def _rounded(box: Box) -> Box:
    return Box(x=round(box.x, 4), y=round(box.y, 4), w=round(box.w, 4), h=round(box.h, 4))
