"""FingerprintIndex: find the catalogue images a query shows, through crops, frames,
flips, turns and recolouring, with add, update and delete in place.

Life of a search:

    query fingerprint
      --hash stage (HammingTable, multi-index hashing, exact)-->
          query content in 8 flips/turns  vs catalogue content   (resized, recoloured, framed,
            (trimmed and untrimmed)                               mirrored, turned copies)
          query pHash, least certain bits vs catalogue content   (smooth images whose edit
            flipped (phash_probes)                                tipped a few bits)
          query content                   vs catalogue regions   (the query is a crop)
          query central windows           vs the same windows    (small turns, tilts, marks)
          query regions                   vs catalogue content   (the query shows more)
      --best pair per image, SHORTLIST best images-->
      --verification: 256-bit hash of the content (verify.py), ORB + RANSAC (verify.py),
          thumbnail structure and colour (appearance.py), the strongest evidence wins-->
      calibrated score 0-100, duplicate/similar, overlap and region

Per image, RAM holds its 64-bit codes in two HammingTables (content and regions) and a
few fixed-size fields in numpy arrays; keypoints live in a KeypointStore file.

Score calibration (bench/robustness.py, run of 2026-11-27): 149 originals (29 real sample
images from scikit-image, matplotlib and scikit-learn, 120 synthetic minimal-art images:
colour fields, gradients, hard-edged shapes, bands), 17 transform families, 2533 queries,
377,417 scored (query, image) pairs. The loosest single threshold keeping precision >= 99.99%
was score >= 70 (0 false pairs of 374,884 at or above it); DUPLICATE_SCORE is set there. The
highest-scoring false pairs are synthetic colour fields and bands whose greyscale structure
is the same (the 256-bit hash sees no colour). On the 29 real images alone the threshold
would be 26: the distractors, not the real pairs, set it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from lookalike_shared.contracts import (
    DIHEDRAL_TRANSFORMS,
    Box,
    Fingerprint,
    MatcherMatch,
    Overlap,
)

from .appearance import (
    QueryAppearance,
    aspect_agreement,
    average_hashes,
    chroma_grid,
    thumb_pixels,
)
from .hamming import HammingTable
from .verify import Keypoints, KeypointStore, LocalMatch, hamming256, verify_local

Array = np.ndarray

CONTENT = -1  # region id of the whole trimmed content
UNTRIMMED = -2  # region id of the whole image, borders included (only when they differ)
SMOOTH = -3  # the average hash of the content's thumbnail (appearance.average_hashes)
# Hash-stage radii (of 64 bits). These only gather candidates: verification decides.
CONTENT_RADIUS = 10  # the query's content vs catalogue content, as it is
TURN_RADIUS = 8  # the query's content flipped or turned vs catalogue content
REGION_RADIUS = 8  # query regions vs catalogue content
PROBE_RADIUS = 8  # the query's probe codes (least certain bits flipped) vs catalogue content
CROP_RADIUS = 10  # query content vs catalogue regions (one code: affordable)
SMOOTH_RADIUS = 6  # query average hash in 8 orientations vs catalogue average hashes
CENTRE_WINDOWS = {(0.05, 0.05, 0.9, 0.9), (0.15, 0.15, 0.7, 0.7)}
SHORTLIST = 24  # images verified per query
# Scores: see the module docstring for how DUPLICATE_SCORE was chosen.
DUPLICATE_SCORE = 70.0
SIMILAR_SCORE = 15.0
HASH_ONLY_CAP = 45.0  # unverified hash evidence never reads as a duplicate


def score_global(distance: int) -> float:
    """256-bit distance -> score: one point a bit (0 bits 100, 40 bits 60)."""
    return max(0.0, 100.0 - float(distance))


def score_local(inliers: int) -> float:
    """RANSAC inliers of a plausible homography -> score: 10 inliers 55, 14 reach a
    duplicate, 20 score 94. In the robustness benchmark no unrelated pair got past
    verify_local's checks at all."""
    return 0.0 if inliers <= 6 else 100.0 * (1.0 - math.exp(-(inliers - 6) / 5.0))


def score_hash(distance: int) -> float:
    return max(0.0, HASH_ONLY_CAP * (1.0 - distance / 24.0))


@dataclass
class SearchTrace:
    """What a search did, for metrics."""

    hash_seconds: float = 0.0
    verify_seconds: float = 0.0
    candidates: int = 0
    hash_pairs: int = 0


@dataclass(frozen=True)
class IndexedImage:
    image_id: str
    version: int
    trim: Box
    region_boxes: tuple[Box, ...]
    has_keypoints: bool = False


@dataclass
class _Slots:
    """Per-image fields, indexed by slot; grown by doubling."""

    version: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trim: Array = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    windows: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    hash256: Array = field(default_factory=lambda: np.zeros((0, 32), dtype=np.uint8))
    has256: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    untrimmed256: Array = field(default_factory=lambda: np.zeros((0, 32), dtype=np.uint8))
    has_untrimmed256: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    thumb: Array = field(default_factory=lambda: np.zeros((0, 256), dtype=np.uint8))
    has_thumb: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    chroma: Array = field(default_factory=lambda: np.zeros((0, 32), dtype=np.int8))
    has_chroma: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    aspect: Array = field(default_factory=lambda: np.ones((0, 2), dtype=np.float32))
    kp_offset: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kp_length: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    content_entry: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    content_count: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    region_entry: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    region_count: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))

    def names(self) -> list[str]:
        return list(self.__dataclass_fields__)

    def grow(self, capacity: int) -> None:
        for name in self.names():
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)


def content_aspects(fingerprint: Fingerprint) -> tuple[float, float]:
    """Width over height of the trimmed content and of the whole image."""
    whole = fingerprint.width / fingerprint.height
    return whole * fingerprint.trim.w / max(1e-6, fingerprint.trim.h), whole


def hex_to_u64(value: str) -> np.uint64:
    return np.uint64(int(value, 16))


def _hex_to_bytes(value: str) -> bytes:
    return bytes.fromhex(value)


class FingerprintIndex:
    """One writer (replay) and concurrent readers; writes take a lock."""

    def __init__(self, keypoints: KeypointStore | None = None) -> None:
        self._lock = threading.Lock()
        self.content = HammingTable()
        self.regions = HammingTable()
        self.keypoints = keypoints or KeypointStore()
        self._slots = _Slots()
        self._ids: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        # Distinct region-window layouts (every fingerprint of one version shares one).
        self._window_sets: list[tuple[Box, ...]] = []
        self._window_set_of: dict[tuple[tuple[float, float, float, float], ...], int] = {}

    def __len__(self) -> int:
        return len(self._slot_of)

    def adopt(self, other: FingerprintIndex) -> None:
        """Take over another index's contents (a loaded snapshot) in place, so everything
        holding this object sees them."""
        with self._lock:
            old = self.keypoints
            self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "_lock"})
            if old is not self.keypoints:
                old.close()

    @property
    def entries(self) -> int:
        return len(self.content) + len(self.regions)

    def nbytes(self) -> int:
        """RAM held by the index's arrays (keypoints excluded: they are in a file)."""
        arrays = sum(getattr(self._slots, n)[: len(self._ids)].nbytes for n in self._slots.names())
        # dict entry + str object + list pointer per image, as CPython lays them out
        per_image_objects = 104 + 8
        return int(
            self.content.nbytes()
            + self.regions.nbytes()
            + arrays
            + per_image_objects * len(self._slot_of)
            + sum(len(i) for i in self._slot_of)
        )

    def get(self, image_id: str) -> IndexedImage | None:
        slot = self._slot_of.get(image_id)
        return None if slot is None else self._image(slot)

    def _image(self, slot: int) -> IndexedImage:
        s = self._slots
        x, y, w, h = (float(v) for v in s.trim[slot])
        return IndexedImage(
            image_id=self._ids[slot] or "",
            version=int(s.version[slot]),
            trim=Box(x=x, y=y, w=w, h=h),
            region_boxes=self._window_sets[int(s.windows[slot])],
            has_keypoints=bool(s.kp_length[slot] > 0),
        )

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, image_id: str, version: int, fingerprint: Fingerprint) -> bool:
        """Add or replace; an older or equal version than the one held changes nothing."""
        windows = tuple((r.box.x, r.box.y, r.box.w, r.box.h) for r in fingerprint.regions)
        region_codes = np.array([hex_to_u64(r.phash) for r in fingerprint.regions], np.uint64)
        raw_kp = Keypoints.raw_from_text(fingerprint.keypoints) if fingerprint.keypoints else b""
        with self._lock:
            slot = self._slot_of.get(image_id)
            if slot is not None and self._slots.version[slot] >= version:
                return False
            if slot is not None:
                self._remove_locked(image_id)
            slot = self._new_slot(image_id)
            s = self._slots
            s.version[slot] = version
            t = fingerprint.trim
            s.trim[slot] = (t.x, t.y, t.w, t.h)
            s.windows[slot] = self._window_set(windows)
            if fingerprint.hash256:
                s.hash256[slot] = np.frombuffer(_hex_to_bytes(fingerprint.hash256), np.uint8)
                s.has256[slot] = True
            if fingerprint.untrimmed_hash256_dihedral:
                s.untrimmed256[slot] = np.frombuffer(
                    _hex_to_bytes(fingerprint.untrimmed_hash256_dihedral[0]), np.uint8
                )
                s.has_untrimmed256[slot] = True
            s.aspect[slot] = content_aspects(fingerprint)
            thumb, chroma = thumb_pixels(fingerprint), chroma_grid(fingerprint)
            s.has_thumb[slot] = thumb is not None
            if thumb is not None:
                s.thumb[slot] = thumb
            s.has_chroma[slot] = chroma is not None
            if chroma is not None:
                s.chroma[slot] = chroma
            if raw_kp:
                s.kp_offset[slot] = self.keypoints.append(raw_kp)
                s.kp_length[slot] = len(raw_kp)
            codes, tags = [hex_to_u64(fingerprint.phash)], [CONTENT]
            if fingerprint.untrimmed_phash_dihedral:
                codes.append(hex_to_u64(fingerprint.untrimmed_phash_dihedral[0]))
                tags.append(UNTRIMMED)
            smooth = average_hashes(thumb) if thumb is not None else None
            if smooth is not None:
                codes.append(smooth[0])
                tags.append(SMOOTH)
            s.content_entry[slot] = self.content.add(
                np.array(codes, np.uint64),
                np.full(len(codes), slot, np.int32),
                np.array(tags, np.int8),
            )
            s.content_count[slot] = len(codes)
            s.region_entry[slot] = self.regions.add(
                region_codes,
                np.full(len(region_codes), slot, np.int32),
                np.arange(len(region_codes), dtype=np.int8),
            )
            s.region_count[slot] = len(region_codes)
            return True

    def delete(self, image_id: str) -> bool:
        with self._lock:
            return self._remove_locked(image_id)

    def _new_slot(self, image_id: str) -> int:
        slot = len(self._ids)
        if slot >= len(self._slots.version):
            self._slots.grow(max(1024, 2 * len(self._slots.version)))
        self._ids.append(image_id)
        self._slot_of[image_id] = slot
        return slot

    def _window_set(self, windows: tuple[tuple[float, float, float, float], ...]) -> int:
        known = self._window_set_of.get(windows)
        if known is None:
            known = len(self._window_sets)
            self._window_sets.append(tuple(Box(x=x, y=y, w=w, h=h) for x, y, w, h in windows))
            self._window_set_of[windows] = known
        return known

    def _remove_locked(self, image_id: str) -> bool:
        slot = self._slot_of.pop(image_id, None)
        if slot is None:
            return False
        s = self._slots
        self._ids[slot] = None
        first = int(s.content_entry[slot])
        self.content.kill(np.arange(first, first + int(s.content_count[slot])))
        count = int(s.region_count[slot])
        if count:
            first = int(s.region_entry[slot])
            self.regions.kill(np.arange(first, first + count))
        for table, entry in ((self.content, s.content_entry), (self.regions, s.region_entry)):
            if table.dead > max(1024, table.size // 2):
                remap = table.compact()
                live = np.array(list(self._slot_of.values()), dtype=np.int64)
                entry[live] = remap[entry[live]]
        return True

    # --- snapshot ------------------------------------------------------------------------------

    def export(self) -> tuple[dict[str, Array], list[list[list[float]]]]:
        """Arrays of the whole state and the region-window layouts (call with writes paused)."""
        n = len(self._ids)
        arrays = {f"slot_{name}": getattr(self._slots, name)[:n] for name in self._slots.names()}
        for prefix, table in (("content", self.content), ("regions", self.regions)):
            for name, array in table.arrays(sorted_too=True).items():
                arrays[f"{prefix}_{name}"] = array
        arrays["ids"] = np.array([i or "" for i in self._ids], dtype=np.str_)
        windows = [[[b.x, b.y, b.w, b.h] for b in boxes] for boxes in self._window_sets]
        return arrays, windows

    @classmethod
    def restore(
        cls,
        arrays: dict[str, Array],
        windows: list[list[list[float]]],
        keypoints: KeypointStore,
    ) -> FingerprintIndex:
        index = cls(keypoints)
        for boxes in windows:
            index._window_set(tuple((x, y, w, h) for x, y, w, h in boxes))
        n = len(arrays["ids"])
        index._slots.grow(max(1024, n))
        for name in index._slots.names():
            if f"slot_{name}" in arrays:  # fields added later stay empty for older snapshots
                getattr(index._slots, name)[:n] = arrays[f"slot_{name}"]
        index._ids = [i or None for i in arrays["ids"].tolist()]
        index._slot_of = {i: slot for slot, i in enumerate(index._ids) if i is not None}
        for prefix in ("content", "regions"):
            mine = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix)}
            table = HammingTable.from_arrays(
                mine["codes"], mine["owner"], mine["tag"], sorted_arrays=mine
            )
            setattr(index, prefix, table)
        return index

    # --- bulk load (benchmarks, snapshots) -------------------------------------------------------

    def bulk_add(
        self,
        image_ids: list[str],
        versions: Array,
        content_codes: Array,
        region_codes: Array,
        windows: tuple[Box, ...],
    ) -> None:
        """Add many images with the same region windows at once: region_codes is (n, R)."""
        n, r = region_codes.shape
        with self._lock:
            first = len(self._ids)
            need = first + n
            if need > len(self._slots.version):
                self._slots.grow(max(1024, need, 2 * len(self._slots.version)))
            slots = np.arange(first, need, dtype=np.int32)
            self._ids.extend(image_ids)
            self._slot_of.update(zip(image_ids, range(first, need), strict=True))
            s = self._slots
            s.version[first:need] = versions
            s.trim[first:need] = (0.0, 0.0, 1.0, 1.0)
            s.aspect[first:need] = 0.0  # not known: proportions are not checked
            key = tuple((b.x, b.y, b.w, b.h) for b in windows)
            s.windows[first:need] = self._window_set(key)
            start = self.content.add(content_codes, slots, np.full(n, -1, np.int8))
            s.content_entry[first:need] = start + np.arange(n)
            s.content_count[first:need] = 1
            start = self.regions.add(
                region_codes.ravel(), np.repeat(slots, r), np.tile(np.arange(r, dtype=np.int8), n)
            )
            s.region_entry[first:need] = start + np.arange(n) * r
            s.region_count[first:need] = r
            self.content.merge()
            self.regions.merge()

    # --- search ------------------------------------------------------------------------------

    def search(
        self,
        query: Fingerprint,
        limit: int = 20,
        include_similar: bool = True,
        trace: SearchTrace | None = None,
    ) -> list[MatcherMatch]:
        trace = trace if trace is not None else SearchTrace()
        started = time.perf_counter()
        looks = QueryAppearance.of(query)
        shortlist = self._hash_stage(query, looks, trace)
        trace.hash_seconds = time.perf_counter() - started
        started = time.perf_counter()
        query_kp = Keypoints.from_text(query.keypoints) if query.keypoints else None
        query256 = [
            _hex_to_bytes(h)
            for h in (query.hash256_dihedral or []) + (query.untrimmed_hash256_dihedral or [])
        ]
        matches = []
        for slot, distance, transform, region, q_region in shortlist:
            image_id = self._ids[slot] if slot < len(self._ids) else None
            if image_id is None:
                continue  # deleted while we searched
            match = self._verify(
                slot,
                image_id,
                query,
                query_kp,
                looks,
                query256,
                distance,
                transform,
                region,
                q_region,
            )
            if match.match == "duplicate" or (include_similar and match.score >= SIMILAR_SCORE):
                matches.append(match)
        trace.candidates = len(shortlist)
        trace.verify_seconds = time.perf_counter() - started
        matches.sort(key=lambda m: (-m.score, m.image_id))
        return matches[:limit]

    def _content_hits(
        self, codes: Array, radius: int, smooth: bool = False
    ) -> tuple[Array, Array, Array]:
        """content.search keeping only the entries of one kind: pHashes, or average hashes
        when `smooth` (the two kinds share the table but mean nothing to each other)."""
        qi, e, d = self.content.search(codes, radius)
        keep = (self.content.tags(e) == SMOOTH) == smooth
        return qi[keep], e[keep], d[keep]

    def _hash_stage(
        self, query: Fingerprint, looks: QueryAppearance | None, trace: SearchTrace
    ) -> list[tuple[int, int, int, int, int]]:
        """Best (slot, distance, transform, region, query region) for the SHORTLIST images."""
        dihedral = np.array(
            [hex_to_u64(h) for h in query.phash_dihedral + (query.untrimmed_phash_dihedral or [])],
            dtype=np.uint64,
        )
        probes = np.array([hex_to_u64(h) for h in query.phash_probes or []], dtype=np.uint64)
        q_regions = np.array([hex_to_u64(r.phash) for r in query.regions], dtype=np.uint64)
        parts: list[tuple[Array, Array, Array, Array, Array]] = []
        # query content in 8 orientations vs catalogue content
        # (the identity codes, trimmed and untrimmed, at the wider radius; the turned and
        # mirrored ones at the narrower: each radius step multiplies the probes)
        identity = np.arange(len(dihedral)) % 8 == 0
        qi_id, e_id, d_id = self._content_hits(dihedral[identity], CONTENT_RADIUS)
        qi_t, e_t, d_t = self._content_hits(dihedral[~identity], TURN_RADIUS)
        qi = np.concatenate([np.nonzero(identity)[0][qi_id], np.nonzero(~identity)[0][qi_t]])
        e, d = np.concatenate([e_id, e_t]), np.concatenate([d_id, d_t])
        parts.append(
            (
                self.content.owners(e),
                d,
                qi % 8,
                self.content.tags(e).astype(np.int64),
                np.where(qi < 8, CONTENT, UNTRIMMED),
            )
        )
        # the identity pHash with its least certain bits flipped vs catalogue content
        if len(probes):
            qi, e, d = self._content_hits(probes, PROBE_RADIUS)
            parts.append(
                (
                    self.content.owners(e),
                    d + 1,  # a probe is one step further than it looks
                    np.zeros(len(e), np.int64),
                    self.content.tags(e).astype(np.int64),
                    np.full(len(e), CONTENT),
                )
            )
        # the query thumbnail's average hash in 8 orientations vs catalogue average hashes
        # (smooth pictures, whose pHash bits are noise)
        if looks is not None:
            qi, e, d = self._content_hits(looks.average_hashes, SMOOTH_RADIUS, smooth=True)
            parts.append(
                (self.content.owners(e), d, qi, np.full(len(e), SMOOTH), np.full(len(e), CONTENT))
            )
        # query content vs catalogue regions (the query is a crop)
        qi, e, d = self.regions.search(dihedral[:1], CROP_RADIUS)
        parts.append(
            (
                self.regions.owners(e),
                d,
                qi,
                self.regions.tags(e).astype(np.int64),
                np.full(len(e), CONTENT),
            )
        )
        # the query's central windows vs the same windows of catalogue images: a slightly
        # turned, tilted or watermarked copy keeps its middle when its edges change
        centre = [
            k
            for k, r in enumerate(query.regions)
            if (r.box.x, r.box.y, r.box.w, r.box.h) in CENTRE_WINDOWS
        ]
        if centre:
            qi, e, d = self.regions.search(q_regions[centre], REGION_RADIUS)
            tags = self.regions.tags(e).astype(np.int64)
            paired = tags == np.array(centre, dtype=np.int64)[qi]
            qi, e, d, tags = qi[paired], e[paired], d[paired], tags[paired]
            parts.append((self.regions.owners(e), d, np.zeros(len(e), np.int64), tags, tags))
        # query regions vs catalogue content (the query shows the artwork with more around it)
        if len(q_regions):
            qi, e, d = self._content_hits(q_regions, REGION_RADIUS)
            parts.append(
                (
                    self.content.owners(e),
                    d,
                    np.zeros(len(e), np.int64),
                    self.content.tags(e).astype(np.int64),
                    qi,
                )
            )
        slot = np.concatenate([p[0] for p in parts]).astype(np.int64)
        trace.hash_pairs = len(slot)
        if len(slot) == 0:
            return []
        dist = np.concatenate([p[1] for p in parts])
        transform = np.concatenate([p[2] for p in parts])
        region = np.concatenate([p[3] for p in parts])
        q_region = np.concatenate([p[4] for p in parts])
        # Region pairs rank half a bit behind so a whole-image pair wins ties.
        rank = dist + 0.5 * ((region >= 0) | (q_region >= 0))
        order = np.lexsort((rank, slot))
        first = np.r_[True, slot[order][1:] != slot[order][:-1]]
        best = order[first]
        best = best[np.argsort(rank[best], kind="stable")][:SHORTLIST]
        return [
            (int(slot[i]), int(dist[i]), int(transform[i]), int(region[i]), int(q_region[i]))
            for i in best
        ]

    def _verify(
        self,
        slot: int,
        image_id: str,
        query: Fingerprint,
        query_kp: Keypoints | None,
        looks: QueryAppearance | None,
        query256: list[bytes],
        distance: int,
        transform: int,
        region: int,
        q_region: int,
    ) -> MatcherMatch:
        s = self._slots
        image = self._image(slot)
        # Boxes are in the trimmed content unless a hash of the untrimmed image matched.
        score = score_hash(distance)  # hash-only evidence: the floor
        target_box = image.region_boxes[region] if region >= 0 else _WHOLE
        target_untrimmed = region == UNTRIMMED
        query_box = query.regions[q_region].box if q_region >= 0 else _WHOLE
        query_share = query_box.w * query_box.h
        how = DIHEDRAL_TRANSFORMS[transform]
        targets = []
        if s.has256[slot]:
            targets.append((s.hash256[slot].tobytes(), False))
        if s.has_untrimmed256[slot]:
            targets.append((s.untrimmed256[slot].tobytes(), True))
        # Whole-picture evidence must agree on proportions and (when both have some) colour.
        query_aspects = content_aspects(query)
        colour = 1.0
        if looks is not None:
            structure, colour, turn = looks.compare(
                s.thumb[slot] if s.has_thumb[slot] else None,
                s.chroma[slot] if s.has_chroma[slot] else None,
            )
            structure *= colour * aspect_agreement(query_aspects[0], s.aspect[slot][0], turn)
            if structure > score:
                score, how = structure, DIHEDRAL_TRANSFORMS[turn]
                target_box, target_untrimmed, query_share = _WHOLE, False, 1.0
        for target256, untrimmed in targets:
            for k, q256 in enumerate(query256):
                # The hashes are greyscale: colours that disagree discount them.
                global_score = (
                    colour
                    * aspect_agreement(query_aspects[k // 8], s.aspect[slot][int(untrimmed)], k % 8)
                    * score_global(hamming256(q256, target256))
                )
                if global_score > score:
                    score, how = global_score, DIHEDRAL_TRANSFORMS[k % 8]
                    target_box, target_untrimmed, query_share = _WHOLE, untrimmed, 1.0
        if query_kp is not None and s.kp_length[slot] > 0:
            raw = self.keypoints.read(int(s.kp_offset[slot]), int(s.kp_length[slot]))
            local: LocalMatch | None = verify_local(query_kp, Keypoints.from_bytes(raw))
            if local is not None and score_local(local.inliers) > score:
                score = score_local(local.inliers)
                x, y, w, h = local.region
                target_box, target_untrimmed = Box(x=x, y=y, w=w, h=h), False
                query_share = local.query_share
                how = "identity" if how not in ("rotate_90", "rotate_180", "rotate_270") else how
        trim = image.trim if not target_untrimmed else _WHOLE
        in_target = Box(
            x=trim.x + target_box.x * trim.w,
            y=trim.y + target_box.y * trim.h,
            w=target_box.w * trim.w,
            h=target_box.h * trim.h,
        )
        q_trim = query.trim
        return MatcherMatch(
            image_id=image_id,
            version=image.version,
            match="duplicate" if score >= DUPLICATE_SCORE else "similar",
            score=round(score, 1),
            distance=distance,
            transform=how,
            overlap=Overlap(
                query=round(min(1.0, query_share * q_trim.w * q_trim.h), 3),
                target=round(min(1.0, in_target.w * in_target.h), 3),
            ),
            region=Box(
                x=round(in_target.x, 4),
                y=round(in_target.y, 4),
                w=round(in_target.w, 4),
                h=round(in_target.h, 4),
            ),
        )


_WHOLE = Box(x=0, y=0, w=1, h=1)
