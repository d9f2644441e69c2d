"""FingerprintIndex: find the catalogue images a query shows, through crops, frames,
flips, turns and recolouring, with add, update and delete in place.

Life of a search:

    query fingerprint
      --candidates.by_hashes: the hash stage (multi-index hashing over HammingTables)-->
      --candidates.by_keypoints: images sharing the most ORB descriptor keys (heavy crops)-->
      --scoring.judge, per candidate: 256-bit hash, ORB + RANSAC, thumbnail structure and
          colour; the strongest evidence wins-->
      calibrated score 0-100, duplicate/similar, overlap and region

What the index holds per image is in state.py; how it is saved, in snapshot.py. One writer
(the replay) and concurrent readers: writes take a lock, searches read what is there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from lookalike_shared.contracts import Box, Fingerprint, MatcherMatch

from . import candidates
from .appearance import QueryAppearance, average_hashes, chroma_grid, thumb_pixels
from .postings import KeypointPostings
from .scoring import DUPLICATE_SCORE, SIMILAR_SCORE, QueryEvidence, judge
from .state import (
    CENTRE_WINDOWS,
    CONTENT,
    SMOOTH,
    UNTRIMMED,
    IndexedImage,
    IndexState,
    content_aspects,
    hex_to_u64,
)
from .verify import Keypoints, KeypointStore

Array = np.ndarray

COMPACT_FROM = 1024  # dead slots (and more than live ones) from which the tables compact

__all__ = ["DUPLICATE_SCORE", "FingerprintIndex", "IndexedImage", "SearchTrace", "StoredEntry"]


@dataclass
class SearchTrace:
    """What a search did, for metrics."""

    hash_seconds: float = 0.0
    hash_cpu_seconds: float = 0.0  # this thread's CPU time: what the hash stage itself cost
    local_seconds: float = 0.0  # candidates by shared descriptor keys
    verify_seconds: float = 0.0
    candidates: int = 0


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


@dataclass(frozen=True)
class _Entry:
    """An upsert worked out before the index is touched: whatever a bad fingerprint makes
    fail, fails here, so a record that cannot be applied leaves no half-written image."""

    version: int
    trim: tuple[float, float, float, float]
    windows: tuple[tuple[float, float, float, float], ...]
    region_codes: Array
    hash256: Array | None
    untrimmed256: Array | None
    aspect: tuple[float, float]
    thumb: Array | None
    chroma: Array | None
    smooth: Array | None
    raw_keypoints: bytes
    descriptors: Array | None
    codes: Array  # content codes: trimmed, then untrimmed when borders were cut
    tags: Array

    @classmethod
    def of(cls, version: int, fp: Fingerprint) -> _Entry:
        raw_kp = Keypoints.raw_from_text(fp.keypoints) if fp.keypoints else b""
        thumb = thumb_pixels(fp)
        codes, tags = [hex_to_u64(fp.phash)], [CONTENT]
        if fp.untrimmed_phash_dihedral:
            codes.append(hex_to_u64(fp.untrimmed_phash_dihedral[0]))
            tags.append(UNTRIMMED)
        untrimmed = fp.untrimmed_hash256_dihedral
        return cls(
            version=int(np.int64(version)),  # OverflowError here, not half-way through a write
            trim=(fp.trim.x, fp.trim.y, fp.trim.w, fp.trim.h),
            windows=tuple((r.box.x, r.box.y, r.box.w, r.box.h) for r in fp.regions),
            region_codes=np.array([hex_to_u64(r.phash) for r in fp.regions], np.uint64),
            hash256=np.frombuffer(bytes.fromhex(fp.hash256), np.uint8) if fp.hash256 else None,
            untrimmed256=np.frombuffer(bytes.fromhex(untrimmed[0]), np.uint8)
            if untrimmed
            else None,
            aspect=content_aspects(fp),
            thumb=thumb,
            chroma=chroma_grid(fp),
            smooth=average_hashes(thumb, orientations=1) if thumb is not None else None,
            raw_keypoints=raw_kp,
            descriptors=Keypoints.from_bytes(raw_kp).descriptors if raw_kp else None,
            codes=np.array(codes, np.uint64),
            tags=np.array(tags, np.int8),
        )


class FingerprintIndex:
    def __init__(self, state: IndexState | None = None) -> None:
        self._lock = threading.Lock()
        self.state = state if state is not None else IndexState()

    def __len__(self) -> int:
        return len(self.state.names)

    def adopt(self, state: IndexState) -> None:
        """Take over another state (a loaded snapshot) in place, so everything holding this
        index sees it; the keypoint file of the state it replaces is closed."""
        with self._lock:
            old, self.state = self.state, state
            if old.keypoints is not state.keypoints:
                old.keypoints.close()

    @property
    def keypoints(self) -> KeypointStore:
        return self.state.keypoints

    @property
    def postings(self) -> KeypointPostings:
        return self.state.postings

    @property
    def entries(self) -> int:
        """Codes of live images in the tables."""
        return self.state.entries

    @property
    def remembered_deletions(self) -> int:
        return len(self.state.deleted)

    def catching_up(self, on: bool) -> None:
        """While replaying a backlog, let the tables' deltas grow with them (merges then
        cost O(1) an entry, amortised); when done, merge so searches scan little."""
        with self._lock:
            for table in self.state.tables.values():
                table.delta_share = 0.25 if on else 0.0
                if not on:
                    table.merge()

    def nbytes(self) -> int:
        """RAM held by the index's arrays (keypoints and sealed postings are in files)."""
        return self.state.nbytes()

    def get(self, image_id: str) -> IndexedImage | None:
        state = self.state
        slot = state.names.slot_of(image_id)
        return None if slot is None else state.image(slot)

    def stored(self, image_id: str) -> StoredEntry | None:
        """The entry of a catalogue image, or None if it is not held here."""
        with self._lock:
            state = self.state
            slot = state.names.slot_of(image_id)
            if slot is None:
                return None
            s = state.slots
            raw_kp = (
                state.keypoints.read(int(s.kp_offset[slot]), int(s.kp_length[slot]))
                if s.kp_length[slot] > 0
                else None
            )
            return StoredEntry(
                image_id=image_id,
                version=int(s.version[slot]),
                trim=state.image(slot).trim,
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
        """Add or replace; a version no newer than the one held, or than the version the
        image was deleted at, changes nothing."""
        entry = _Entry.of(version, fingerprint)
        with self._lock:
            state = self.state
            slot = state.names.slot_of(image_id)
            if slot is not None and state.slots.version[slot] >= entry.version:
                return False
            deleted = state.deleted.get(image_id)
            if deleted is not None and deleted[0] >= entry.version:
                return False  # deleted at this version or later: an upsert that came late
            state.deleted.pop(image_id, None)
            if slot is not None:
                self._remove_locked(image_id)
            self._write_locked(self._new_slot(image_id), entry)
            return True

    def _write_locked(self, slot: int, e: _Entry) -> None:
        state, s = self.state, self.state.slots
        s.version[slot] = e.version
        s.trim[slot] = e.trim
        s.windows[slot] = state.window_set(e.windows)
        for name, value in (
            ("hash256", e.hash256),
            ("untrimmed256", e.untrimmed256),
            ("thumb", e.thumb),
            ("chroma", e.chroma),
        ):
            has = "has256" if name == "hash256" else f"has_{name}"
            getattr(s, has)[slot] = value is not None
            if value is not None:
                getattr(s, name)[slot] = value
        s.aspect[slot] = e.aspect
        s.phash[slot], s.has_phash[slot] = e.codes[0], True
        if len(e.codes) > 1:  # borders were cut: the whole image's pHash too
            s.untrimmed_phash[slot], s.has_untrimmed_phash[slot] = e.codes[1], True
        if e.descriptors is not None:
            s.kp_offset[slot] = state.keypoints.append(e.raw_keypoints)
            s.kp_length[slot] = len(e.raw_keypoints)
            state.postings.add(slot, e.descriptors)
        codes = len(e.codes) + len(e.region_codes)
        if e.smooth is not None:
            state.smooth.add(e.smooth[:1], slot, SMOOTH)
            codes += 1
        state.content.add(e.codes, slot, e.tags)
        central = np.array([w in CENTRE_WINDOWS for w in e.windows], dtype=bool)
        number = np.arange(len(e.region_codes), dtype=np.int8)
        state.regions.add(e.region_codes[~central], slot, number[~central])
        state.centre.add(e.region_codes[central], slot, number[central])
        s.codes[slot] = codes
        state.entries += codes

    def delete(self, image_id: str, version: int | None = None, at: float | None = None) -> bool:
        """Remove the image. Given the version it was deleted at, remember it (from `at`, a
        Unix time) so that an older upsert arriving later is refused."""
        with self._lock:
            if version is not None:
                known = self.state.deleted.get(image_id)
                if known is None or known[0] < version:
                    self.state.deleted[image_id] = (version, time.time() if at is None else at)
            return self._remove_locked(image_id)

    def forget_deletions(self, before: float) -> int:
        """Stop remembering deletes made before `before` (a Unix time); returns how many."""
        with self._lock:
            deleted = self.state.deleted
            old = [i for i, (_, at) in deleted.items() if at < before]
            for image_id in old:
                del deleted[image_id]
            return len(old)

    def _new_slot(self, image_id: str) -> int:
        state = self.state
        if state.free_slots:
            slot = state.free_slots.pop()
            state.slots.clear(slot)
        else:
            slot = state.slot_count
            if slot >= len(state.slots.version):
                state.slots.grow(max(1024, 2 * len(state.slots.version)))
            state.slot_count += 1
        state.names.bind(image_id, slot)
        return slot

    def _remove_locked(self, image_id: str) -> bool:
        state = self.state
        slot = state.names.slot_of(image_id)
        if slot is None:
            return False
        state.names.unbind(image_id, slot)
        for table in state.tables.values():
            table.kill(slot)
        state.entries -= int(state.slots.codes[slot])
        state.dead_slots.append(slot)
        if len(state.dead_slots) > max(COMPACT_FROM, len(state.names)):
            self._compact_locked()
        return True

    def _compact_locked(self) -> None:
        """Drop the codes of dead slots from the tables; the slots become reusable. A search
        that started before may still name such a slot: it then verifies the image that
        took the slot over, which is checked against the query like any candidate."""
        state = self.state
        for table in state.tables.values():
            table.compact()
        state.postings.drop(np.array(state.dead_slots, dtype=np.int64))
        state.free_slots.extend(state.dead_slots)
        state.dead_slots = []

    # --- search ------------------------------------------------------------------------------

    def search(
        self,
        query: Fingerprint,
        limit: int = 20,
        include_similar: bool = True,
        trace: SearchTrace | None = None,
    ) -> list[MatcherMatch]:
        trace = trace if trace is not None else SearchTrace()
        state = self.state  # one state for the whole search, whatever adopt() does meanwhile
        started, cpu = time.perf_counter(), time.thread_time()
        looks = QueryAppearance.of(query)
        shortlist = candidates.by_hashes(state, query, looks)
        trace.hash_seconds = time.perf_counter() - started
        trace.hash_cpu_seconds = time.thread_time() - cpu
        started = time.perf_counter()
        evidence = QueryEvidence.of(query, looks)
        if evidence.keypoints is not None:
            shortlisted = {c.slot for c in shortlist}
            shortlist += candidates.by_keypoints(state, evidence.keypoints, shortlisted)
        trace.local_seconds = time.perf_counter() - started
        started = time.perf_counter()
        matches = []
        for candidate in shortlist:
            image_id = state.names.id_of(candidate.slot)
            if image_id is None:
                continue  # deleted while we searched
            match = judge(state, image_id, candidate, evidence)
            if match.match == "duplicate" or (include_similar and match.score >= SIMILAR_SCORE):
                matches.append(match)
        trace.candidates = len(shortlist)
        trace.verify_seconds = time.perf_counter() - started
        matches.sort(key=lambda m: (-m.score, m.image_id))
        return matches[:limit]
