"""KeypointPostings: catalogue images that share ORB descriptors with a query (an inverted
file), so a heavy crop whose hashes meet no region window still reaches verification.

Each stored keypoint gives KEY_TABLES keys, each KEY_BYTES bytes of its descriptor (ORB's
tests were chosen to be uncorrelated, so neighbouring bytes serve as well as scattered bits).
A true pair of descriptors (a crop, a turn, a tilt) agrees on a 24-bit key often enough
that the original collects tens of keys from a 50% crop, while an unrelated image collects
a few by chance. A candidate's votes are the distinct query keys found among its postings.

A posting is one uint64, key << 32 | slot. Postings gather in RAM (at most DELTA_LIMIT),
then go to an immutable sorted segment, a .npy file beside the snapshot that searches
memory-map: the page cache holds what is hot, RAM holds no posting per image. Segments are
merged as they pile up (a newer one at least half the size of the one before is merged into
it), so there are O(log n) of them and each posting is rewritten O(log n) times. A segment
merged away is deleted at once, unless the last snapshot names it: then the next snapshot
deletes it. Postings of deleted images stay until the index compacts and drops them; until
then searches skip their slots. Without a folder (tests, benchmarks) segments stay in memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .sorting import counted_unique, sorted_unique

Array = np.ndarray

KEY_BYTES = 3  # a 24-bit key
KEY_TABLES = 4  # keys per keypoint, from descriptor bytes 0-11
DELTA_LIMIT = 1 << 17  # postings held in RAM (at most 1 MiB) before they become a segment
# A key with more postings than this in a segment (flat patches, hatching: ORB's commonest
# descriptors) says little and costs much, so it is skipped: BUSY_MIN, or BUSY_FACTOR times
# what a key would hold if keys were spread evenly.
BUSY_MIN = 64
BUSY_FACTOR = 16
SEGMENT_GLOB = "postings-*.npy"
BLOCK = 1 << 22  # postings merged or filtered at once (32 MiB)
_KEY_SPACE = KEY_TABLES << (8 * KEY_BYTES)
_SLOT_MASK = np.uint64(0xFFFFFFFF)


def descriptor_keys(descriptors: Array) -> Array:
    """(n, 32) uint8 ORB descriptors -> (n, KEY_TABLES) uint64 keys, the table in the top bits."""
    d = np.ascontiguousarray(descriptors[:, : KEY_BYTES * KEY_TABLES], dtype=np.uint8)
    parts = d.reshape(len(d), KEY_TABLES, KEY_BYTES).astype(np.uint64)
    keys = np.zeros((len(d), KEY_TABLES), dtype=np.uint64)
    for b in range(KEY_BYTES):
        keys |= parts[:, :, b] << np.uint64(8 * b)
    return keys | (np.arange(KEY_TABLES, dtype=np.uint64) << np.uint64(8 * KEY_BYTES))


class KeypointPostings:
    """One writer (under the index's lock) and concurrent readers. Readers take the segment
    list and the delta as they find them: attribute swaps are atomic, and a posting seen both
    in the delta and in a fresh segment counts once."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._segments: list[tuple[str | None, Array]] = []  # (file name, sorted postings)
        self._delta = np.zeros(0, dtype=np.uint64)  # grown by doubling up to DELTA_LIMIT
        self._delta_count = 0
        self._pinned: set[str] = set()  # segment files the last snapshot names

    def __len__(self) -> int:
        """Postings held, those of deleted images not yet dropped included."""
        return self._delta_count + sum(len(array) for _, array in self._segments)

    @property
    def segment_names(self) -> list[str]:
        return [name for name, _ in self._segments if name is not None]

    def ram_bytes(self) -> int:
        """RAM held: the postings not yet sealed, and segments kept in memory (no folder)."""
        in_memory = sum(array.nbytes for name, array in self._segments if name is None)
        return int(self._delta.nbytes + in_memory)

    def disk_bytes(self) -> int:
        return 8 * sum(len(array) for name, array in self._segments if name is not None)

    # --- writes ------------------------------------------------------------------------------

    def add(self, slot: int, descriptors: Array) -> None:
        postings = (descriptor_keys(descriptors).ravel() << np.uint64(32)) | np.uint64(slot)
        postings = sorted_unique(postings)  # a keypoint repeated in one image votes once
        if self._delta_count + len(postings) > DELTA_LIMIT:
            self.seal()
        need = self._delta_count + len(postings)
        if need > len(self._delta):
            grown = np.zeros(min(DELTA_LIMIT, max(4096, 2 * need)), dtype=np.uint64)
            grown[: self._delta_count] = self._delta[: self._delta_count]
            self._delta = grown
        self._delta[self._delta_count : self._delta_count + len(postings)] = postings
        self._delta_count += len(postings)

    def seal(self) -> None:
        """Turn the postings in RAM into a sorted segment (and merge segments that piled up)."""
        if self._delta_count == 0:
            return
        fresh = np.sort(self._delta[: self._delta_count])
        self._delta = np.zeros(0, dtype=np.uint64)
        self._delta_count = 0
        self._push(fresh)

    def add_many(self, slots: Array, keys: Array) -> None:
        """Bulk load (benchmarks): keys (n, k) of descriptor_keys' form for n slots, as one
        segment."""
        postings = (keys.astype(np.uint64) << np.uint64(32)) | slots.astype(np.uint64)[:, None]
        self._push(sorted_unique(postings))

    def _push(self, fresh: Array) -> None:
        self._segments = [*self._segments, self._write(len(fresh), iter([fresh]))]
        while len(self._segments) >= 2 and len(self._segments[-2][1]) <= 2 * len(
            self._segments[-1][1]
        ):
            older, newer = self._segments[-2:]
            merged = self._write(len(older[1]) + len(newer[1]), merged_blocks(older[1], newer[1]))
            self._segments = [*self._segments[:-2], merged]
            self._discard([older, newer])

    def drop(self, slots: Array) -> None:
        """Forget the postings of these slots (their images are gone)."""
        self.seal()
        dead = np.asarray(slots, dtype=np.uint64)
        kept = []
        old = self._segments
        for _, array in old:
            length = sum(len(block) for block in _kept_blocks(array, dead))
            if length:
                kept.append(self._write(length, _kept_blocks(array, dead)))
        self._segments = kept
        self._discard(old)

    def _discard(self, replaced: list[tuple[str | None, Array]]) -> None:
        """Delete the files of segments replaced by a merge or a drop, but those a snapshot
        still names. A search still reading one keeps its mapping: the file goes when that
        is unmapped."""
        for name, _ in replaced:
            if self.folder is not None and name is not None and name not in self._pinned:
                (self.folder / name).unlink(missing_ok=True)

    def _write(self, length: int, blocks: Iterator[Array]) -> tuple[str | None, Array]:
        """A new segment of `length` postings, given in order a block at a time: a merge or
        a filter of segments on disk takes one block of RAM, not the segments' size."""
        if self.folder is None:
            return None, np.concatenate([np.zeros(0, np.uint64), *blocks])
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"postings-{time.time_ns()}.npy"
        tmp = self.folder / f".{name}.tmp"
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint64, shape=(length,))
        at = 0
        for block in blocks:
            out[at : at + len(block)] = block
            at += len(block)
        out.flush()
        del out
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, self.folder / name)
        return name, np.load(self.folder / name, mmap_mode="r")

    # --- snapshots -----------------------------------------------------------------------------

    def persist(self, folder: Path) -> list[str]:
        """The segment files in `folder` that hold every posting (what is in RAM is sealed
        first; segments kept in memory are written there); they stay until a later snapshot
        no longer names them."""
        self.seal()
        if self.folder == folder:
            self._pinned = set(self.segment_names)
            return self.segment_names
        copy = KeypointPostings(folder)
        copy._segments = [copy._write(len(array), iter([array])) for _, array in self._segments]
        return copy.segment_names

    @classmethod
    def open(cls, folder: Path, names: list[str]) -> KeypointPostings:
        """The postings of a snapshot (raises OSError or ValueError if a segment is unreadable)."""
        postings = cls(folder)
        postings._segments = [(name, np.load(folder / name, mmap_mode="r")) for name in names]
        postings._pinned = set(names)
        return postings

    # --- search ------------------------------------------------------------------------------

    def votes(self, descriptors: Array) -> tuple[Array, Array]:
        """(slots, votes): every slot sharing a key with the query, and how many distinct
        query keys it shares."""
        query = sorted_unique(descriptor_keys(descriptors))
        segments, delta = self._segments, self._delta[: self._delta_count]
        found = [self._in_segment(array, query) for _, array in segments]
        if len(delta):
            hit = np.isin(delta >> np.uint64(32), query)
            found.append(delta[hit])
        postings = sorted_unique(np.concatenate(found)) if found else np.zeros(0, np.uint64)
        # sorted by key, then slot: count each slot once per key
        slots = (postings & _SLOT_MASK).astype(np.int64)
        return counted_unique(slots)

    @staticmethod
    def _in_segment(array: Array, query: Array) -> Array:
        shift = np.uint64(32)
        lo = np.searchsorted(array, query << shift)
        hi = np.searchsorted(array, (query + np.uint64(1)) << shift)
        busy = max(BUSY_MIN, BUSY_FACTOR * len(array) // _KEY_SPACE)
        length = hi - lo
        keep = (length > 0) & (length <= busy)
        lo, length = lo[keep], length[keep]
        if len(lo) == 0:
            return np.zeros(0, np.uint64)
        starts = np.repeat(lo - np.cumsum(length) + length, length)
        return np.asarray(array[starts + np.arange(int(length.sum()))])


def merged_blocks(a: Array, b: Array) -> Iterator[Array]:
    """Two sorted arrays merged, in sorted blocks of about BLOCK values or fewer each."""
    i = j = 0
    while i < len(a) or j < len(b):
        if i == len(a) or j == len(b):
            rest, at = (b, j) if i == len(a) else (a, i)
            yield np.asarray(rest[at : at + BLOCK])
            i, j = (i, j + BLOCK) if i == len(a) else (i + BLOCK, j)
            continue
        # up to a[i_end - 1] from a, and what in b does not exceed it...
        i_end = min(len(a), i + BLOCK)
        j_end = len(b) if i_end == len(a) else int(np.searchsorted(b, a[i_end - 1], "right"))
        if j_end - j > BLOCK:  # ...or, when that is too much of b, the other way round
            j_end = j + BLOCK
            i_end = max(i, int(np.searchsorted(a, b[j_end - 1], "right")))
        yield np.sort(np.concatenate([a[i:i_end], b[j:j_end]]), kind="stable")
        i, j = i_end, j_end


def _kept_blocks(array: Array, dead: Array) -> Iterator[Array]:
    for start in range(0, len(array), BLOCK):
        block = np.asarray(array[start : start + BLOCK])
        yield block[~np.isin(block & _SLOT_MASK, dead)]


def remove_other_segments(folder: Path, keep: list[str]) -> None:
    """Delete the segment files in `folder` but those named (merged away since the last
    snapshot, or written after the snapshot being loaded)."""
    if not folder.exists():
        return
    for path in folder.glob(SEGMENT_GLOB):
        if path.name not in keep:
            path.unlink(missing_ok=True)
