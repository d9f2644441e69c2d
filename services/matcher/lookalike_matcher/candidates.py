"""Finding the catalogue images a query may show: the short list that verification
(scoring.py) then judges one by one.

    the hash stage (HammingTable, multi-index hashing, exact):
      query content in 8 flips/turns  vs catalogue content   (resized, recoloured, framed,
        (trimmed and untrimmed)                               mirrored, turned copies)
      query pHash, least certain bits vs catalogue content   (smooth images whose edit
        flipped (phash_probes)                                tipped a few bits)
      query content, its watermark's  vs catalogue content   (a stock watermark)
        strokes erased (unmarked_phash)
      query content                   vs catalogue regions   (the query is a crop)
      query central windows, the 0.7  vs the same windows    (small turns, tilts, marks)
        one also turned by +-3 and +-6
        degrees (turned_centre)
      query regions                   vs catalogue content   (the query shows more)
      query thumbnail's average hash  vs catalogue ones      (smooth pictures)
    --> the best pair per image, for the SHORTLIST best images;
    the local stage (KeypointPostings): up to LOCAL_SHORTLIST more, the images sharing the
    most ORB descriptor keys with the query (a heavy crop no hash window meets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fingerprint import TURNED_WINDOW

from .appearance import QueryAppearance
from .state import CENTRE_WINDOWS, CONTENT, UNTRIMMED, IndexState, hex_to_u64
from .verify import Keypoints

Array = np.ndarray

# Hash-stage radii (of 64 bits). These only gather candidates: verification decides.
CONTENT_RADIUS = 10  # the query's content vs catalogue content, as it is
TURN_RADIUS = 8  # the query's content flipped or turned vs catalogue content
REGION_RADIUS = 8  # query regions vs catalogue content
PROBE_RADIUS = 8  # the query's probe codes (least certain bits flipped) vs catalogue content
CROP_RADIUS = 10  # query content vs catalogue regions (one code: affordable)
SMOOTH_RADIUS = 6  # query average hash in 8 orientations vs catalogue average hashes
SHORTLIST = 24  # images the hash stage sends to verification
# Images the hash stage missed that share the most ORB descriptor keys with the query
# (postings.py) are verified too: at most LOCAL_SHORTLIST, with LOCAL_MIN_VOTES keys or more.
LOCAL_SHORTLIST = 8
LOCAL_MIN_VOTES = 3
NO_HASH_PAIR = 64  # the distance reported for a candidate that no hash pair brought
_LATE = 1 << 20  # lookup order of the query-region lookups (crop lookups come before)


@dataclass(frozen=True)
class Candidate:
    """A catalogue image worth verifying, and the hash pair that brought it (if any)."""

    slot: int
    distance: int  # of the best pHash pair, of 64 bits (NO_HASH_PAIR: none)
    transform: int  # which flip or quarter turn of the query matched (DIHEDRAL_TRANSFORMS)
    region: int  # the catalogue image's region that matched (CONTENT, UNTRIMMED or a window)
    query_region: int  # the query's region that matched (CONTENT, UNTRIMMED or a window)


def by_hashes(
    state: IndexState, query: Fingerprint, looks: QueryAppearance | None
) -> list[Candidate]:
    """The SHORTLIST images with the closest hash pairs, each by its best pair."""
    dihedral = np.array(
        [hex_to_u64(h) for h in query.phash_dihedral + (query.untrimmed_phash_dihedral or [])],
        dtype=np.uint64,
    )
    q_regions = np.array([hex_to_u64(r.phash) for r in query.regions], dtype=np.uint64)
    parts = [
        _content_pairs(state, query, dihedral, q_regions),
        _smooth_pairs(state, looks),
        _crop_pairs(state, dihedral),
        _centre_pairs(state, query, dihedral, q_regions),
    ]
    slot = np.concatenate([p[0] for p in parts]).astype(np.int64)
    if len(slot) == 0:
        return []
    dist, transform, region, q_region, lookup = (
        np.concatenate([p[i] for p in parts]) for i in range(1, 6)
    )
    # Region pairs rank half a bit behind so a whole-image pair wins ties.
    rank = dist + 0.5 * ((region >= 0) | (q_region >= 0))
    order = np.lexsort((lookup, rank, slot))
    first = np.r_[True, slot[order][1:] != slot[order][:-1]]
    best = order[first]
    best = best[np.argsort(rank[best], kind="stable")][:SHORTLIST]
    return [
        Candidate(int(slot[i]), int(dist[i]), int(transform[i]), int(region[i]), int(q_region[i]))
        for i in best
    ]


# Each *_pairs gives, per pair found: (slot, distance, transform, catalogue region, query
# region, lookup order); the lookup order settles ties between an image's pairs.
Pairs = tuple[Array, Array, Array, Array, Array, Array]


def _content_pairs(
    state: IndexState, query: Fingerprint, dihedral: Array, q_regions: Array
) -> Pairs:
    """Every lookup in the content table, in one search, each code at its own radius."""
    lookups = _Lookups()
    # query content in 8 orientations vs catalogue content (the identity codes, trimmed and
    # untrimmed, at the wider radius; the turned and mirrored ones at the narrower: each
    # radius step multiplies the probes)
    k = np.arange(len(dihedral))
    lookups.add(
        dihedral,
        np.where(k % 8 == 0, CONTENT_RADIUS, TURN_RADIUS),
        transform=k % 8,
        q_region=np.where(k < 8, CONTENT, UNTRIMMED),
    )
    # the identity pHash with its least certain bits flipped (a probe is one step further
    # than it looks)
    probes = np.array([hex_to_u64(h) for h in query.phash_probes or []], dtype=np.uint64)
    lookups.add(probes, PROBE_RADIUS, transform=0, q_region=CONTENT, extra=1)
    # the query without its watermark's strokes (unmarked_phash)
    if query.unmarked_phash:
        unmarked = np.array([hex_to_u64(query.unmarked_phash)], dtype=np.uint64)
        lookups.add(unmarked, TURN_RADIUS, transform=0, q_region=CONTENT)
    # query regions (the query shows the artwork with more around it); on equal rank an
    # image's pair from a lookup above (or the crop lookups) wins
    lookups.add(
        q_regions, REGION_RADIUS, transform=0, q_region=np.arange(len(q_regions)), late=True
    )
    codes, radii, transform, q_region, extra, order = lookups.arrays()
    qi, owner, tag, d = state.content.search(codes, radii)
    return owner, d + extra[qi], transform[qi], tag.astype(np.int64), q_region[qi], order[qi]


def _smooth_pairs(state: IndexState, looks: QueryAppearance | None) -> Pairs:
    """The query thumbnail's average hash in 8 orientations vs catalogue average hashes
    (smooth pictures, whose pHash bits are noise); on equal rank after the content pairs."""
    smooth = looks.average_hashes if looks is not None else np.zeros(0, np.uint64)
    qi, owner, tag, d = state.smooth.search(smooth, SMOOTH_RADIUS)
    zeros = np.zeros(len(d), np.int64)
    return owner, d, qi, tag.astype(np.int64), zeros + CONTENT, _LATE // 4 + qi


def _crop_pairs(state: IndexState, dihedral: Array) -> Pairs:
    """The query content vs catalogue regions: the query is a crop."""
    _, owner, tag, d = state.regions.search(dihedral[:1], CROP_RADIUS)
    tags, zeros = tag.astype(np.int64), np.zeros(len(d), np.int64)
    return owner, d, zeros, tags, zeros + CONTENT, zeros + _LATE // 2


def _centre_pairs(
    state: IndexState, query: Fingerprint, dihedral: Array, q_regions: Array
) -> Pairs:
    """The query content vs the central windows (a crop, as above), and the query's central
    windows vs the same windows of catalogue images: a slightly turned, tilted or
    watermarked copy keeps its middle when its edges change. TURNED_WINDOW is also looked up
    turned back by a few degrees (turned_centre)."""
    boxes = [(r.box.x, r.box.y, r.box.w, r.box.h) for r in query.regions]
    centre = [k for k, box in enumerate(boxes) if box in CENTRE_WINDOWS]
    centre_codes = list(q_regions[centre])
    if TURNED_WINDOW in boxes and query.turned_centre:
        centre_codes += [hex_to_u64(h) for h in query.turned_centre]
        centre += [boxes.index(TURNED_WINDOW)] * len(query.turned_centre)
    wanted = np.array([dihedral[0], *centre_codes], dtype=np.uint64)
    radius = np.array([CROP_RADIUS] + [REGION_RADIUS] * len(centre), dtype=np.int64)
    qi, owner, tag, d = state.centre.search(wanted, radius)
    window = np.array([-1, *centre], dtype=np.int64)[qi]  # -1: the crop lookup
    tags = tag.astype(np.int64)
    keep = (window < 0) | (tags == window)
    qi, owner, tags, d = qi[keep], owner[keep], tags[keep], d[keep]
    crop = window[keep] < 0
    zeros = np.zeros(len(d), np.int64)
    return owner, d, zeros, tags, np.where(crop, CONTENT, tags), _LATE // 2 + qi


def by_keypoints(state: IndexState, query_kp: Keypoints, shortlisted: set[int]) -> list[Candidate]:
    """Live images off the hash shortlist with the most descriptor keys in common with the
    query; no hash pair brought them, so verification alone decides."""
    slots, votes = state.postings.votes(query_kp.descriptors)
    enough = votes >= LOCAL_MIN_VOTES
    slots, votes = slots[enough], votes[enough]
    picked: list[Candidate] = []
    for i in np.lexsort((slots, -votes)):
        slot = int(slots[i])
        if slot in shortlisted or state.names.id_of(slot) is None:
            continue  # already a candidate, or deleted (its postings not dropped yet)
        picked.append(Candidate(slot, NO_HASH_PAIR, 0, CONTENT, CONTENT))
        if len(picked) == LOCAL_SHORTLIST:
            break
    return picked


class _Lookups:
    """Query codes for one table search, with what each means for the pairs it finds and
    an order that settles ties between an image's pairs."""

    def __init__(self) -> None:
        self._parts: list[tuple[Array, ...]] = []
        self._count = 0

    def add(
        self,
        codes: Array,
        radius: int | Array,
        transform: int | Array,
        q_region: int | Array,
        extra: int = 0,
        late: bool = False,
    ) -> None:
        n = len(codes)
        order = np.arange(self._count, self._count + n) + (_LATE if late else 0)
        self._count += n
        self._parts.append(
            (
                np.asarray(codes, dtype=np.uint64),
                np.broadcast_to(np.asarray(radius, dtype=np.int64), (n,)),
                np.broadcast_to(np.asarray(transform, dtype=np.int64), (n,)),
                np.broadcast_to(np.asarray(q_region, dtype=np.int64), (n,)),
                np.full(n, extra, dtype=np.int64),
                order,
            )
        )

    def arrays(self) -> tuple[Array, Array, Array, Array, Array, Array]:
        codes, radii, transform, q_region, extra, order = (
            np.concatenate([p[i] for p in self._parts]) for i in range(6)
        )
        return codes, radii, transform, q_region, extra, order
