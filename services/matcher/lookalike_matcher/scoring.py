"""Verifying one candidate: every kind of evidence is scored 0-100 and the strongest wins.

    hash pair alone (unverified)        score_hash, capped at HASH_ONLY_CAP: never a duplicate
    thumbnail structure and colour      appearance.py (smooth pictures, no keypoints)
    256-bit hash of the whole content   score_global, one point a bit
    ORB keypoints + RANSAC homography   verify.py, score_local by inliers

Whole-picture evidence must agree on proportions and (when both have some) colour.

Score calibration (bench/robustness.py, last run of 2026-11-27): 149 originals (29 real
sample images from scikit-image, matplotlib and scikit-learn, 120 synthetic minimal-art
images: colour fields, gradients, hard-edged shapes, bands), 17 transform families, 2533
queries, 377,417 scored (query, image) pairs. The loosest single threshold keeping
precision >= 99.99% was score >= 45.1 (0 false pairs of 374,884 at or above it). A harder
set, 150 three-stop gradients all at nearly one angle, had 9 false pairs of 22,200 at 60-67
(look-alikes whose grey ramps and colour layouts agree, their end colours not): so
DUPLICATE_SCORE stays at 60, between the two. Evidence that cannot tell such pairs apart
stays below it by construction: unverified hash distance (HASH_ONLY_CAP 45) and a
colourless copy whose grey levels differ from the picture's (appearance.COLOUR_LOST_SHARE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lookalike_shared.contracts import DIHEDRAL_TRANSFORMS, Box, Fingerprint, MatcherMatch, Overlap
from lookalike_shared.fingerprint import thumbnail_pixels

from .appearance import QueryAppearance, aspect_agreement
from .candidates import Candidate
from .state import UNTRIMMED, IndexState, content_aspects
from .verify import Keypoints, LocalMatch, hamming256, verify_local

DUPLICATE_SCORE = 60.0
SIMILAR_SCORE = 15.0
HASH_ONLY_CAP = 45.0  # unverified hash evidence never reads as a duplicate
# A blank picture (one colour as shown: a transparent overlay on white, a gradient that did
# not render) has no low frequencies, so its 256-bit hash is the same rounding noise as
# every other blank picture's: whole-hash evidence needs a thumbnail whose grey levels vary
# by at least this much (standard deviation) on both sides. The faintest real pictures of
# bench/robustness.py's set (a small moon on white, a pale pattern) are at 0.7-1.0, blank
# ones at 0.0-0.2.
BLANK_CONTRAST = 0.5
Array = np.ndarray
_WHOLE = Box(x=0, y=0, w=1, h=1)
_QUARTER_TURNS = ("rotate_90", "rotate_180", "rotate_270")


def score_global(distance: int) -> float:
    """256-bit distance -> score: one point a bit (0 bits 100, 40 bits 60)."""
    return max(0.0, 100.0 - float(distance))


# Inliers that score nothing; from there each one adds less (13 reach a duplicate, 22 score
# 94). Unrelated pictures that share a drawn outline (a road sign's red triangle or blue
# disc around different symbols) agree on 11-12 keypoints. With 11 as the first duplicate,
# bench/robustness.py's dev part had 70 false pairs; with 13 it has 59, and 2 of its 2,844
# copies are no longer found (report part, run once after: 8 -> 2 false pairs, 5 of 2,466
# copies lost).
NO_LOCAL_EVIDENCE = 8


def score_local(inliers: int) -> float:
    """RANSAC inliers of a plausible homography -> score 0-100."""
    if inliers <= NO_LOCAL_EVIDENCE:
        return 0.0
    return 100.0 * (1.0 - math.exp(-(inliers - NO_LOCAL_EVIDENCE) / 5.0))


def score_hash(distance: int) -> float:
    return max(0.0, HASH_ONLY_CAP * (1.0 - distance / 24.0))


@dataclass(frozen=True)
class QueryEvidence:
    """What verification compares of the query, worked out once a search."""

    fingerprint: Fingerprint
    keypoints: Keypoints | None
    looks: QueryAppearance | None
    aspects: tuple[float, float]  # content_aspects
    hashes256: list[bytes]  # the 8 flips/turns, trimmed, then untrimmed if any
    blank: bool  # a blank picture: its whole-content hashes prove nothing (is_blank)

    @classmethod
    def of(cls, query: Fingerprint, looks: QueryAppearance | None) -> QueryEvidence:
        return cls(
            fingerprint=query,
            keypoints=Keypoints.from_text(query.keypoints) if query.keypoints else None,
            looks=looks,
            aspects=content_aspects(query),
            hashes256=[
                bytes.fromhex(h)
                for h in (query.hash256_dihedral or []) + (query.untrimmed_hash256_dihedral or [])
            ],
            blank=is_blank(thumbnail_pixels(query)),
        )


def is_blank(thumb: Array | None) -> bool:
    """Whether a thumbnail (THUMB_SIDE x THUMB_SIDE grey levels) shows a blank picture;
    without one (a fingerprint from before thumbnails) nothing is known: not blank."""
    return thumb is not None and float(thumb.std()) < BLANK_CONTRAST


EvidenceKind = Literal["hash", "appearance", "whole_hash", "keypoints"]


@dataclass
class Evidence:
    """The strongest evidence for one candidate: its score, which turn of the query, what
    kind it was, and where each side lies on the other (boxes in each one's content)."""

    score: float
    kind: EvidenceKind
    transform: str
    target_box: Box
    target_untrimmed: bool
    query_box: Box
    query_share: float
    local: LocalMatch | None = None  # the keypoint match, when there was one

    def take(
        self,
        score: float,
        kind: EvidenceKind,
        transform: str,
        box: Box,
        untrimmed: bool,
        query_share: float,
        query_box: Box = _WHOLE,
    ) -> None:
        if score > self.score:
            self.score, self.kind, self.transform = score, kind, transform
            self.target_box, self.target_untrimmed = box, untrimmed
            self.query_box, self.query_share = query_box, query_share


def judge(state: IndexState, image_id: str, c: Candidate, query: QueryEvidence) -> MatcherMatch:
    """Score one candidate on all the evidence there is; the strongest wins."""
    image = state.image(c.slot)
    best = weigh(state, c, query)
    return _match(image_id, image.version, image.trim, c.distance, best, query.fingerprint.trim)


def weigh(state: IndexState, c: Candidate, query: QueryEvidence) -> Evidence:
    """All the evidence there is for one candidate, the strongest first."""
    s = state.slots
    slot = c.slot
    image = state.image(slot)
    # Boxes are in the trimmed content unless a hash of the untrimmed image matched.
    query_box = query.fingerprint.regions[c.query_region].box if c.query_region >= 0 else _WHOLE
    best = Evidence(
        score=score_hash(c.distance),  # hash-only evidence: the floor
        kind="hash",
        transform=DIHEDRAL_TRANSFORMS[c.transform],
        target_box=image.region_boxes[c.region] if c.region >= 0 else _WHOLE,
        target_untrimmed=c.region == UNTRIMMED,
        query_box=query_box,
        query_share=query_box.w * query_box.h,
    )
    colour = 1.0
    if query.looks is not None:
        structure, colour, turn = query.looks.compare(
            s.thumb[slot] if s.has_thumb[slot] else None,
            s.chroma[slot] if s.has_chroma[slot] else None,
        )
        structure *= colour * aspect_agreement(query.aspects[0], s.aspect[slot][0], turn)
        best.take(structure, "appearance", DIHEDRAL_TRANSFORMS[turn], _WHOLE, False, 1.0)
    targets = []
    if s.has256[slot]:
        targets.append((s.hash256[slot].tobytes(), False))
    if s.has_untrimmed256[slot]:
        targets.append((s.untrimmed256[slot].tobytes(), True))
    if query.blank or (s.has_thumb[slot] and is_blank(s.thumb[slot])):
        targets = []  # blank on either side: the 256-bit hashes are noise (BLANK_CONTRAST)
    for target256, untrimmed in targets:
        for k, q256 in enumerate(query.hashes256):
            # The hashes are greyscale: colours that disagree discount them.
            agreement = aspect_agreement(
                query.aspects[k // 8], s.aspect[slot][int(untrimmed)], k % 8
            )
            global_score = colour * agreement * score_global(hamming256(q256, target256))
            best.take(
                global_score, "whole_hash", DIHEDRAL_TRANSFORMS[k % 8], _WHOLE, untrimmed, 1.0
            )
    if query.keypoints is not None and s.kp_length[slot] > 0:
        raw = state.keypoints.read(int(s.kp_offset[slot]), int(s.kp_length[slot]))
        local = verify_local(query.keypoints, Keypoints.from_bytes(raw))
        if local is not None:
            best.local = local
            # Keypoints see through flips; only a quarter turn found earlier is kept.
            how = best.transform if best.transform in _QUARTER_TURNS else "identity"
            best.take(
                score_local(local.inliers),
                "keypoints",
                how,
                Box(x=local.region[0], y=local.region[1], w=local.region[2], h=local.region[3]),
                False,
                local.query_share,
                Box(
                    x=local.query_region[0],
                    y=local.query_region[1],
                    w=local.query_region[2],
                    h=local.query_region[3],
                ),
            )
    return best


def _match(
    image_id: str, version: int, trim: Box, distance: int, best: Evidence, q_trim: Box
) -> MatcherMatch:
    in_target = in_image(best.target_box, trim if not best.target_untrimmed else _WHOLE)
    return MatcherMatch(
        image_id=image_id,
        version=version,
        match="duplicate" if best.score >= DUPLICATE_SCORE else "similar",
        score=round(best.score, 1),
        distance=distance,
        transform=best.transform,
        overlap=Overlap(
            query=round(min(1.0, best.query_share * q_trim.w * q_trim.h), 3),
            target=round(min(1.0, in_target.w * in_target.h), 3),
        ),
        region=Box(
            x=round(in_target.x, 4),
            y=round(in_target.y, 4),
            w=round(in_target.w, 4),
            h=round(in_target.h, 4),
        ),
    )


def in_image(box: Box, trim: Box) -> Box:
    """A box in an image's trimmed content, in fractions of the whole image."""
    return Box(
        x=trim.x + box.x * trim.w, y=trim.y + box.y * trim.h, w=box.w * trim.w, h=box.h * trim.h
    )
