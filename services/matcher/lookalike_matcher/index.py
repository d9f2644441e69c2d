"""FingerprintIndex: find the catalogue images a query shows, through crops, frames,
flips, turns and recolouring, with add, update and delete in place.

Life of a search:

    query fingerprint
      --hash stage (HammingTable, multi-index hashing, exact)-->
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
      --best pair per image, SHORTLIST best images-->
      --local stage (KeypointPostings): up to LOCAL_SHORTLIST more, the images sharing the
          most ORB descriptor keys with the query (a heavy crop no hash window meets)-->
      --verification: 256-bit hash of the content (verify.py), ORB + RANSAC (verify.py),
          thumbnail structure and colour (appearance.py), the strongest evidence wins-->
      calibrated score 0-100, duplicate/similar, overlap and region

Per image, RAM holds its 64-bit codes in four HammingTables (content pHashes; region
pHashes, the two central windows apart since they are also looked up window by window; and
the thumbnail's average hash, which means nothing to a pHash) and a few fixed-size fields in
numpy arrays, indexed by the image's slot; keypoints live in a KeypointStore file and
their descriptor keys in KeypointPostings segment files (memory-mapped). A slot
freed by a delete or an update is reused once the tables have dropped its codes
(compaction, when half the slots are dead).

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
from lookalike_shared.fingerprint import TURNED_WINDOW

from .appearance import (
    QueryAppearance,
    aspect_agreement,
    average_hashes,
    chroma_grid,
    thumb_pixels,
)
from .hamming import HammingTable
from .ids import ImageIds
from .postings import KeypointPostings
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
# Codes added since the last merge are scanned linearly by every search (a content search
# has ~60 query codes, a regions search 3), and a merge costs time linear in the table:
# these bound the scan to about a million code comparisons a search.
CONTENT_DELTA = 16384
REGIONS_DELTA = 262144
# RAM the prefix tables may take, per entry and layout: content has 1 to 3 entries an image,
# regions one per window (23), so regions take less and resolve fewer bits while small.
CONTENT_PREFIX_BYTES = 8.0
REGIONS_PREFIX_BYTES = 0.5
# The regions table is searched at CROP_RADIUS (10) only: substrings of 22, 22 and 20 bits,
# probed at radii 3, 3 and 2, find fewer candidates there than 22, 21 and 21 (-20%).
REGIONS_WIDTHS = (22, 22, 20)
CENTRE_DELTA = 65536
CENTRE_PREFIX_BYTES = 2.0
COMPACT_FROM = 1024  # dead slots (and more than live ones) from which the tables compact
SHORTLIST = 24  # images verified per query
# Images the hash stage missed that share the most ORB descriptor keys with the query
# (postings.py) are verified too: at most LOCAL_SHORTLIST, with LOCAL_MIN_VOTES keys or more.
LOCAL_SHORTLIST = 8
LOCAL_MIN_VOTES = 3
NO_HASH_PAIR = 64  # the distance reported for a candidate that no hash pair brought
# Scores: see the module docstring for how DUPLICATE_SCORE was chosen.
DUPLICATE_SCORE = 60.0
SIMILAR_SCORE = 15.0
HASH_ONLY_CAP = 45.0  # unverified hash evidence never reads as a duplicate


def score_global(distance: int) -> float:
    """256-bit distance -> score: one point a bit (0 bits 100, 40 bits 60)."""
    return max(0.0, 100.0 - float(distance))


def score_local(inliers: int) -> float:
    """RANSAC inliers of a plausible homography -> score: 10 inliers 55, 11 reach a
    duplicate, 20 score 94. In the robustness benchmark no unrelated pair got past
    verify_local's checks at all."""
    return 0.0 if inliers <= 6 else 100.0 * (1.0 - math.exp(-(inliers - 6) / 5.0))


def score_hash(distance: int) -> float:
    return max(0.0, HASH_ONLY_CAP * (1.0 - distance / 24.0))


@dataclass
class SearchTrace:
    """What a search did, for metrics."""

    hash_seconds: float = 0.0
    hash_cpu_seconds: float = 0.0  # this thread's CPU time: what the hash stage itself cost
    local_seconds: float = 0.0  # candidates by shared descriptor keys
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


@dataclass(frozen=True)
class StoredEntry:
    """What the index keeps of one catalogue image, for a search by its id (by_id.py)."""

    image_id: str
    version: int
    trim: Box
    aspects: tuple[float, float]  # content and whole image, width over height (0: unknown)
    phash: int | None
    untrimmed_phash: int | None
    hash256: bytes | None
    untrimmed256: bytes | None
    thumb: bytes | None  # 256 grey levels
    chroma: bytes | None  # the a*/b* 4x4 grid, int8
    keypoints: bytes | None  # packed (fingerprint.pack_keypoints), the stored strongest


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
    # The content pHashes again (also in the tables, which cannot be read by image): what
    # a search by catalogue image id starts from (query_of).
    phash: Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    has_phash: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    untrimmed_phash: Array = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    has_untrimmed_phash: Array = field(default_factory=lambda: np.zeros(0, dtype=bool))
    kp_offset: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    kp_length: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    codes: Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))  # in the tables

    def names(self) -> list[str]:
        return list(self.__dataclass_fields__)

    def clear(self, slot: int) -> None:
        for name in self.names():
            getattr(self, name)[slot] = 0

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

    def __init__(
        self, keypoints: KeypointStore | None = None, postings: KeypointPostings | None = None
    ) -> None:
        self._lock = threading.Lock()
        self.content = HammingTable(
            delta_limit=CONTENT_DELTA, prefix_bytes_per_entry=CONTENT_PREFIX_BYTES
        )
        self.regions = HammingTable(
            delta_limit=REGIONS_DELTA,
            prefix_bytes_per_entry=REGIONS_PREFIX_BYTES,
            widths=REGIONS_WIDTHS,
        )
        self.centre = HammingTable(
            delta_limit=CENTRE_DELTA, prefix_bytes_per_entry=CENTRE_PREFIX_BYTES
        )
        self.smooth = HammingTable(
            delta_limit=CONTENT_DELTA, prefix_bytes_per_entry=CONTENT_PREFIX_BYTES
        )
        self.keypoints = keypoints or KeypointStore()
        self.postings = postings if postings is not None else KeypointPostings()
        self._slots = _Slots()
        self._names = ImageIds()  # image id <-> slot
        self._slot_count = 0  # slots ever used: [0, _slot_count)
        self._entries = 0  # codes of live images in the tables
        self._dead_slots: list[int] = []  # killed in the tables, their codes still there
        self._free_slots: list[int] = []  # their codes dropped: reusable
        # Distinct region-window layouts (every fingerprint of one version shares one).
        self._window_sets: list[tuple[Box, ...]] = []
        self._window_set_of: dict[tuple[tuple[float, float, float, float], ...], int] = {}

    def __len__(self) -> int:
        return len(self._names)

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
        """Codes of live images in the tables."""
        return self._entries

    def catching_up(self, on: bool) -> None:
        """While replaying a backlog, let the tables' deltas grow with them (merges then
        cost O(1) an entry, amortised); when done, merge so searches scan little."""
        with self._lock:
            for table in self._tables():
                table.delta_share = 0.25 if on else 0.0
                if not on:
                    table.merge()

    def merge(self) -> None:
        """Fold every table's recent codes into its sorted layouts (searches then scan none)."""
        with self._lock:
            for table in self._tables():
                table.merge()

    def nbytes(self) -> int:
        """RAM held by the index's arrays (keypoints and sealed postings excluded: they are
        in files)."""
        n = self._slot_count
        arrays = sum(getattr(self._slots, name)[:n].nbytes for name in self._slots.names())
        tables = sum(table.nbytes() for table in self._tables())
        return int(tables + arrays + self._names.nbytes() + self.postings.ram_bytes())

    def _tables(self) -> tuple[HammingTable, ...]:
        return self.content, self.regions, self.centre, self.smooth

    def get(self, image_id: str) -> IndexedImage | None:
        slot = self._names.slot_of(image_id)
        return None if slot is None else self._image(slot)

    def _image(self, slot: int) -> IndexedImage:
        s = self._slots
        x, y, w, h = (float(v) for v in s.trim[slot])
        return IndexedImage(
            image_id=self._names.id_of(slot) or "",
            version=int(s.version[slot]),
            trim=Box(x=x, y=y, w=w, h=h),
            region_boxes=self._window_sets[int(s.windows[slot])],
            has_keypoints=bool(s.kp_length[slot] > 0),
        )

    def stored(self, image_id: str) -> StoredEntry | None:
        """The entry of a catalogue image, or None if it is not held here."""
        with self._lock:
            slot = self._names.slot_of(image_id)
            if slot is None:
                return None
            s = self._slots
            raw_kp = (
                self.keypoints.read(int(s.kp_offset[slot]), int(s.kp_length[slot]))
                if s.kp_length[slot] > 0
                else None
            )
            return StoredEntry(
                image_id=image_id,
                version=int(s.version[slot]),
                trim=self._image(slot).trim,
                aspects=(float(s.aspect[slot][0]), float(s.aspect[slot][1])),
                phash=int(s.phash[slot]) if s.has_phash[slot] else None,
                untrimmed_phash=(
                    int(s.untrimmed_phash[slot]) if s.has_untrimmed_phash[slot] else None
                ),
                hash256=s.hash256[slot].tobytes() if s.has256[slot] else None,
                untrimmed256=s.untrimmed256[slot].tobytes() if s.has_untrimmed256[slot] else None,
                thumb=s.thumb[slot].tobytes() if s.has_thumb[slot] else None,
                chroma=s.chroma[slot].tobytes() if s.has_chroma[slot] else None,
                keypoints=raw_kp,
            )

    # --- writes ------------------------------------------------------------------------------

    def upsert(self, image_id: str, version: int, fingerprint: Fingerprint) -> bool:
        """Add or replace; an older or equal version than the one held changes nothing."""
        windows = tuple((r.box.x, r.box.y, r.box.w, r.box.h) for r in fingerprint.regions)
        region_codes = np.array([hex_to_u64(r.phash) for r in fingerprint.regions], np.uint64)
        raw_kp = Keypoints.raw_from_text(fingerprint.keypoints) if fingerprint.keypoints else b""
        with self._lock:
            slot = self._names.slot_of(image_id)
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
                self.postings.add(slot, Keypoints.from_bytes(raw_kp).descriptors)
            codes, tags = [hex_to_u64(fingerprint.phash)], [CONTENT]
            s.phash[slot], s.has_phash[slot] = codes[0], True
            if fingerprint.untrimmed_phash_dihedral:
                codes.append(hex_to_u64(fingerprint.untrimmed_phash_dihedral[0]))
                tags.append(UNTRIMMED)
                s.untrimmed_phash[slot], s.has_untrimmed_phash[slot] = codes[1], True
            smooth = average_hashes(thumb, orientations=1) if thumb is not None else None
            if smooth is not None:
                self.smooth.add(smooth[:1], slot, SMOOTH)
                codes.append(smooth[0])  # counted below; it is in the smooth table
            self.content.add(np.array(codes[: len(tags)], np.uint64), slot, np.array(tags, np.int8))
            central = np.array([w in CENTRE_WINDOWS for w in windows], dtype=bool)
            number = np.arange(len(region_codes), dtype=np.int8)
            self.regions.add(region_codes[~central], slot, number[~central])
            self.centre.add(region_codes[central], slot, number[central])
            s.codes[slot] = len(codes) + len(region_codes)
            self._entries += len(codes) + len(region_codes)
            return True

    def delete(self, image_id: str) -> bool:
        with self._lock:
            return self._remove_locked(image_id)

    def _new_slot(self, image_id: str) -> int:
        if self._free_slots:
            slot = self._free_slots.pop()
            self._slots.clear(slot)
        else:
            slot = self._slot_count
            if slot >= len(self._slots.version):
                self._slots.grow(max(1024, 2 * len(self._slots.version)))
            self._slot_count += 1
        self._names.bind(image_id, slot)
        return slot

    def _window_set(self, windows: tuple[tuple[float, float, float, float], ...]) -> int:
        known = self._window_set_of.get(windows)
        if known is None:
            known = len(self._window_sets)
            self._window_sets.append(tuple(Box(x=x, y=y, w=w, h=h) for x, y, w, h in windows))
            self._window_set_of[windows] = known
        return known

    def _remove_locked(self, image_id: str) -> bool:
        slot = self._names.slot_of(image_id)
        if slot is None:
            return False
        self._names.unbind(image_id, slot)
        for table in self._tables():
            table.kill(slot)
        self._entries -= int(self._slots.codes[slot])
        self._dead_slots.append(slot)
        if len(self._dead_slots) > max(COMPACT_FROM, len(self._names)):
            self._compact_locked()
        return True

    def _compact_locked(self) -> None:
        """Drop the codes of dead slots from the tables; the slots become reusable. A search
        that started before may still name such a slot: it then verifies the image that
        took the slot over, which is checked against the query like any candidate."""
        for table in self._tables():
            table.compact()
        self.postings.drop(np.array(self._dead_slots, dtype=np.int64))
        self._free_slots.extend(self._dead_slots)
        self._dead_slots = []

    # --- snapshot ------------------------------------------------------------------------------

    def export(self) -> tuple[dict[str, Array], list[list[list[float]]]]:
        """Arrays of the whole state and the region-window layouts (call with writes paused)."""
        n = self._slot_count
        arrays = {f"slot_{name}": getattr(self._slots, name)[:n] for name in self._slots.names()}
        for prefix, table in zip(_TABLES, self._tables(), strict=True):
            for name, array in table.arrays().items():
                arrays[f"{prefix}_{name}"] = array
        for name, array in self._names.arrays(n).items():
            arrays[f"ids_{name}"] = array
        arrays["dead_slots"] = np.array(self._dead_slots, dtype=np.int64)
        arrays["free_slots"] = np.array(self._free_slots, dtype=np.int64)
        windows = [[[b.x, b.y, b.w, b.h] for b in boxes] for boxes in self._window_sets]
        return arrays, windows

    @classmethod
    def restore(
        cls,
        arrays: dict[str, Array],
        windows: list[list[list[float]]],
        keypoints: KeypointStore,
        postings: KeypointPostings | None = None,
    ) -> FingerprintIndex:
        index = cls(keypoints, postings)
        for boxes in windows:
            index._window_set(tuple((x, y, w, h) for x, y, w, h in boxes))
        n = len(arrays["ids_length"])
        index._slots.grow(max(1024, n))
        for name in index._slots.names():
            if f"slot_{name}" in arrays:  # fields added later stay empty for older snapshots
                getattr(index._slots, name)[:n] = arrays[f"slot_{name}"]
        index._names = ImageIds.from_arrays(
            {k[4:]: v for k, v in arrays.items() if k.startswith("ids_")}
        )
        index._slot_count = n
        index._dead_slots = arrays["dead_slots"].tolist()
        index._free_slots = arrays["free_slots"].tolist()
        index._entries = int(index._slots.codes[index._names.live_slots()].sum())
        for prefix in _TABLES:
            mine = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if "codes" not in mine:
                continue  # a table the writer did not have: empty
            old: HammingTable = getattr(index, prefix)
            table = HammingTable.from_arrays(
                mine,
                delta_limit=old.delta_limit,
                prefix_bytes_per_entry=old.prefix_bytes_per_entry,
                widths=tuple(old.widths),
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
        keypoint_keys: Array | None = None,
        keypoints: bytes = b"",
    ) -> None:
        """Add many images with the same region windows at once: region_codes is (n, R);
        keypoint_keys (n, K) their descriptor keys (postings.descriptor_keys), if any, and
        keypoints one packed set of keypoints they all share, if any."""
        n, r = region_codes.shape
        with self._lock:
            first = self._slot_count
            need = first + n
            if need > len(self._slots.version):
                self._slots.grow(max(1024, need, 2 * len(self._slots.version)))
            slots = np.arange(first, need, dtype=np.int32)
            self._names.bind_many(image_ids, slots)
            self._slot_count = need
            s = self._slots
            s.version[first:need] = versions
            s.trim[first:need] = (0.0, 0.0, 1.0, 1.0)
            s.aspect[first:need] = 0.0  # not known: proportions are not checked
            key = tuple((b.x, b.y, b.w, b.h) for b in windows)
            s.windows[first:need] = self._window_set(key)
            s.codes[first:need] = 1 + r
            s.phash[first:need], s.has_phash[first:need] = content_codes, True
            self._entries += n * (1 + r)
            self.content.add(content_codes, slots, CONTENT)
            central = np.array([k in CENTRE_WINDOWS for k in key], dtype=bool)
            number = np.arange(r, dtype=np.int8)
            for table, these in ((self.regions, ~central), (self.centre, central)):
                table.add(
                    region_codes[:, these].ravel(),
                    np.repeat(slots, int(these.sum())),
                    np.tile(number[these], n),
                )
            for table in self._tables():
                table.merge()
            if keypoints:
                s.kp_offset[first:need] = self.keypoints.append(keypoints)
                s.kp_length[first:need] = len(keypoints)
            if keypoint_keys is not None:
                self.postings.add_many(slots, keypoint_keys)

    # --- search ------------------------------------------------------------------------------

    def search(
        self,
        query: Fingerprint,
        limit: int = 20,
        include_similar: bool = True,
        trace: SearchTrace | None = None,
    ) -> list[MatcherMatch]:
        trace = trace if trace is not None else SearchTrace()
        started, cpu = time.perf_counter(), time.thread_time()
        looks = QueryAppearance.of(query)
        shortlist = self._hash_stage(query, looks, trace)
        trace.hash_seconds = time.perf_counter() - started
        trace.hash_cpu_seconds = time.thread_time() - cpu
        started = time.perf_counter()
        query_kp = Keypoints.from_text(query.keypoints) if query.keypoints else None
        if query_kp is not None:
            shortlist += self._local_stage(query_kp, {slot for slot, *_ in shortlist})
        trace.local_seconds = time.perf_counter() - started
        started = time.perf_counter()
        query_aspects = content_aspects(query)
        query256 = [
            _hex_to_bytes(h)
            for h in (query.hash256_dihedral or []) + (query.untrimmed_hash256_dihedral or [])
        ]
        matches = []
        for slot, distance, transform, region, q_region in shortlist:
            image_id = self._names.id_of(slot)
            if image_id is None:
                continue  # deleted while we searched
            match = self._verify(
                slot,
                image_id,
                query,
                query_kp,
                looks,
                query_aspects,
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
        smooth = looks.average_hashes if looks is not None else np.zeros(0, np.uint64)
        # Every lookup in the content table is made in one search, each code at its own
        # radius; per query code: (radius, transform, query region, distance added, order)
        lookups = _Lookups()
        # query content in 8 orientations vs catalogue content (the identity codes, trimmed
        # and untrimmed, at the wider radius; the turned and mirrored ones at the narrower:
        # each radius step multiplies the probes)
        k = np.arange(len(dihedral))
        lookups.add(
            dihedral,
            np.where(k % 8 == 0, CONTENT_RADIUS, TURN_RADIUS),
            transform=k % 8,
            q_region=np.where(k < 8, CONTENT, UNTRIMMED),
        )
        # the identity pHash with its least certain bits flipped vs catalogue content
        # (a probe is one step further than it looks)
        lookups.add(probes, PROBE_RADIUS, transform=0, q_region=CONTENT, extra=1)
        # the query without its watermark's strokes (unmarked_phash) vs catalogue content
        if query.unmarked_phash:
            unmarked = np.array([hex_to_u64(query.unmarked_phash)], dtype=np.uint64)
            lookups.add(unmarked, TURN_RADIUS, transform=0, q_region=CONTENT)
        # query regions vs catalogue content (the query shows the artwork with more around it);
        # on equal rank an image's pair from a lookup above (or the crop lookups) wins
        lookups.add(
            q_regions, REGION_RADIUS, transform=0, q_region=np.arange(len(q_regions)), late=True
        )
        codes, radii, transform, q_region, extra, order = lookups.arrays()
        qi, owner, tag, d = self.content.search(codes, radii)
        parts: list[tuple[Array, Array, Array, Array, Array, Array]] = [
            (owner, d + extra[qi], transform[qi], tag.astype(np.int64), q_region[qi], order[qi])
        ]
        # the query thumbnail's average hash in 8 orientations vs catalogue average hashes
        # (smooth pictures, whose pHash bits are noise); on equal rank after the above
        qi, owner, tag, d = self.smooth.search(smooth, SMOOTH_RADIUS)
        zeros = np.zeros(len(d), np.int64)
        parts.append((owner, d, qi, tag.astype(np.int64), zeros + CONTENT, _LATE // 4 + qi))
        # query content vs catalogue regions (the query is a crop), in both region tables
        qi, owner, tag, d = self.regions.search(dihedral[:1], CROP_RADIUS)
        tags, zeros = tag.astype(np.int64), np.zeros(len(d), np.int64)
        parts.append((owner, d, zeros, tags, zeros + CONTENT, zeros + _LATE // 2))
        # and the query's central windows vs the same windows of catalogue images (a slightly
        # turned, tilted or watermarked copy keeps its middle when its edges change), the
        # TURNED_WINDOW also turned back by a few degrees (a turned or tilted copy)
        boxes = [(r.box.x, r.box.y, r.box.w, r.box.h) for r in query.regions]
        centre = [k for k, box in enumerate(boxes) if box in CENTRE_WINDOWS]
        centre_codes = list(q_regions[centre])
        if TURNED_WINDOW in boxes and query.turned_centre:
            centre_codes += [hex_to_u64(h) for h in query.turned_centre]
            centre += [boxes.index(TURNED_WINDOW)] * len(query.turned_centre)
        wanted = np.array([dihedral[0], *centre_codes], dtype=np.uint64)
        radius = np.array([CROP_RADIUS] + [REGION_RADIUS] * len(centre), dtype=np.int64)
        qi, owner, tag, d = self.centre.search(wanted, radius)
        window = np.array([-1, *centre], dtype=np.int64)[qi]  # -1: the crop lookup
        tags = tag.astype(np.int64)
        keep = (window < 0) | (tags == window)
        qi, owner, tags, d = qi[keep], owner[keep], tags[keep], d[keep]
        crop = window[keep] < 0
        zeros = np.zeros(len(d), np.int64)
        parts.append((owner, d, zeros, tags, np.where(crop, CONTENT, tags), _LATE // 2 + qi))
        slot = np.concatenate([p[0] for p in parts]).astype(np.int64)
        trace.hash_pairs = len(slot)
        if len(slot) == 0:
            return []
        dist = np.concatenate([p[1] for p in parts])
        transform = np.concatenate([p[2] for p in parts])
        region = np.concatenate([p[3] for p in parts])
        q_region = np.concatenate([p[4] for p in parts])
        lookup = np.concatenate([p[5] for p in parts])
        # Region pairs rank half a bit behind so a whole-image pair wins ties.
        rank = dist + 0.5 * ((region >= 0) | (q_region >= 0))
        order = np.lexsort((lookup, rank, slot))
        first = np.r_[True, slot[order][1:] != slot[order][:-1]]
        best = order[first]
        best = best[np.argsort(rank[best], kind="stable")][:SHORTLIST]
        return [
            (int(slot[i]), int(dist[i]), int(transform[i]), int(region[i]), int(q_region[i]))
            for i in best
        ]

    def _local_stage(
        self, query_kp: Keypoints, shortlisted: set[int]
    ) -> list[tuple[int, int, int, int, int]]:
        """Live images off the hash shortlist with the most descriptor keys in common with
        the query, as shortlist entries with no hash pair (verification alone decides)."""
        slots, votes = self.postings.votes(query_kp.descriptors)
        enough = votes >= LOCAL_MIN_VOTES
        slots, votes = slots[enough], votes[enough]
        picked: list[tuple[int, int, int, int, int]] = []
        for i in np.lexsort((slots, -votes)):
            slot = int(slots[i])
            if slot in shortlisted or self._names.id_of(slot) is None:
                continue  # already a candidate, or deleted (its postings not dropped yet)
            picked.append((slot, NO_HASH_PAIR, 0, CONTENT, CONTENT))
            if len(picked) == LOCAL_SHORTLIST:
                break
        return picked

    def _verify(
        self,
        slot: int,
        image_id: str,
        query: Fingerprint,
        query_kp: Keypoints | None,
        looks: QueryAppearance | None,
        query_aspects: tuple[float, float],
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


_TABLES = ("content", "regions", "centre", "smooth")  # snapshot array prefixes
_LATE = 1 << 20  # lookup order of the query-region lookups (crop lookups come before)


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
