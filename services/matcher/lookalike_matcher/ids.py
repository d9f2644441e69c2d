"""ImageIds: image id <-> slot in numpy arrays, about 30 bytes an image.

A dict of str objects costs ~130 bytes an image (its hash table, the str, an int object for
the slot, a list entry back); at millions of images that is an eighth of the index. Here:

    blob      the UTF-8 bytes of every id bound so far, appended; start and length per slot
              (length 0: a free slot). Rebinding leaves the old bytes behind until compact.
    lookup    (hash, slot) sorted by hash, for the ids merged so far (slot -1: unbound since),
              and a dict for the ids bound since the last merge

Hashes are Python's str hash: not stable across processes, so snapshots keep the blob and
the lookup is rebuilt on load. Equal hashes are told apart by comparing the ids' bytes.
One writer at a time (the index's lock); readers (id_of, slot_of) may run meanwhile: arrays
that belong together are swapped together, as one tuple.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

RECENT_LIMIT = 65536  # ids bound since the last merge, kept in a dict
_HASH_MASK = (1 << 64) - 1


def _hash(image_id: str) -> int:
    return hash(image_id) & _HASH_MASK


class ImageIds:
    def __init__(self) -> None:
        # (blob, start, length): a slot's id is blob[start:start + length]; length 0: free
        self._store = (bytearray(), np.zeros(1024, dtype=np.int64), np.zeros(1024, dtype=np.uint8))
        # (hashes ascending, slot of each or -1 when unbound since)
        self._lookup = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int32))
        self._recent: dict[str, int] = {}
        self._unbound = 0  # -1 entries in _slot
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def nbytes(self) -> int:
        # the recent dict: ~100 bytes an entry (its table share, an int object; the str is
        # the caller's until the merge drops it)
        blob, start, length = self._store
        hashes, slots = self._lookup
        used = len(blob) + start.nbytes + length.nbytes + hashes.nbytes + slots.nbytes
        return int(used + 100 * len(self._recent))

    # --- reads -------------------------------------------------------------------------------

    def id_of(self, slot: int) -> str | None:
        blob, start, length = self._store
        if slot >= len(length) or length[slot] == 0:
            return None
        first = int(start[slot])
        return blob[first : first + int(length[slot])].decode()

    def slot_of(self, image_id: str) -> int | None:
        slot = self._recent.get(image_id)
        if slot is not None:
            return slot
        hashes, slots = self._lookup
        at = self._find(image_id, hashes, slots)
        return None if at < 0 else int(slots[at])

    def _find(self, image_id: str, hashes: Array, slots: Array) -> int:
        """Where image_id is in the sorted lookup, or -1."""
        h = np.uint64(_hash(image_id))
        at = int(np.searchsorted(hashes, h))
        while at < len(hashes) and hashes[at] == h:
            slot = int(slots[at])
            if slot >= 0 and self.id_of(slot) == image_id:
                return at
            at += 1
        return -1

    def live_slots(self) -> Array:
        return np.flatnonzero(self._store[2] > 0)

    # --- writes ------------------------------------------------------------------------------

    def bind(self, image_id: str, slot: int) -> None:
        """image_id now names this (free) slot; image_id must be unbound."""
        raw = image_id.encode()
        if not 0 < len(raw) < 256:
            raise ValueError("an image id is 1 to 255 bytes")
        self._reserve(slot + 1)
        blob, start, length = self._store
        start[slot] = len(blob)
        blob += raw
        length[slot] = len(raw)  # last: readers see the slot once it is complete
        self._recent[image_id] = slot
        self._live += 1
        if len(self._recent) > RECENT_LIMIT:
            self.merge()

    def bind_many(self, image_ids: list[str], slots: Array) -> None:
        raw = [i.encode() for i in image_ids]
        lengths = np.array([len(r) for r in raw], dtype=np.int64)
        if len(raw) and not (lengths.min() > 0 and lengths.max() < 256):
            raise ValueError("an image id is 1 to 255 bytes")
        slots = np.asarray(slots, dtype=np.int64)
        if len(slots):
            self._reserve(int(slots.max()) + 1)
        blob, start, length = self._store
        start[slots] = len(blob) + np.cumsum(lengths) - lengths
        blob += b"".join(raw)
        length[slots] = lengths
        self._live += len(raw)
        hashes = np.array([_hash(i) for i in image_ids], dtype=np.uint64)
        self._insert(hashes, slots.astype(np.int32))

    def unbind(self, image_id: str, slot: int) -> None:
        if self._recent.pop(image_id, None) is None:
            hashes, slots = self._lookup
            at = self._find(image_id, hashes, slots)
            if at >= 0:
                slots[at] = -1
                self._unbound += 1
        self._store[2][slot] = 0
        self._live -= 1
        if self._unbound > max(RECENT_LIMIT, len(self._lookup[1]) // 2):
            self.compact()

    def merge(self) -> None:
        """Move the recent ids into the sorted lookup."""
        if not self._recent:
            return
        hashes = np.array([_hash(i) for i in self._recent], dtype=np.uint64)
        slots = np.array(list(self._recent.values()), dtype=np.int32)
        self._insert(hashes, slots)
        self._recent = {}

    def compact(self) -> None:
        """Drop unbound lookup entries and the bytes of ids no slot holds any more."""
        self.merge()
        hashes, slots = self._lookup
        keep = slots >= 0
        self._lookup = (hashes[keep], slots[keep])
        self._unbound = 0
        blob, start, length = self._store
        live = self.live_slots()
        lengths = length[live].astype(np.int64)
        if len(blob) > 2 * int(lengths.sum()) + 4096:
            parts = [blob[a : a + n] for a, n in zip(start[live], lengths, strict=True)]
            moved = np.zeros(len(start), dtype=np.int64)
            moved[live] = np.cumsum(lengths) - lengths
            self._store = (bytearray(b"".join(parts)), moved, length.copy())

    def _insert(self, hashes: Array, slots: Array) -> None:
        order = np.argsort(hashes, kind="stable")
        hashes, slots = hashes[order], slots[order]
        old_hashes, old_slots = self._lookup
        at = np.searchsorted(old_hashes, hashes)
        self._lookup = (np.insert(old_hashes, at, hashes), np.insert(old_slots, at, slots))

    def _reserve(self, slots: int) -> None:
        blob, start, length = self._store
        if slots <= len(length):
            return
        capacity = max(slots, 2 * len(length))
        grown_start = np.zeros(capacity, dtype=np.int64)
        grown_length = np.zeros(capacity, dtype=np.uint8)
        grown_start[: len(start)] = start
        grown_length[: len(length)] = length
        self._store = (blob, grown_start, grown_length)

    # --- snapshot ----------------------------------------------------------------------------

    def arrays(self, slots: int) -> dict[str, Array]:
        blob, start, length = self._store
        return {
            "blob": np.frombuffer(bytes(blob), dtype=np.uint8),
            "start": start[:slots],
            "length": length[:slots],
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, Array]) -> ImageIds:
        ids = cls()
        n = len(arrays["length"])
        ids._store = (bytearray(arrays["blob"].tobytes()), *ids._store[1:])
        ids._reserve(n)
        ids._store[1][:n] = arrays["start"]
        ids._store[2][:n] = arrays["length"]
        live = ids.live_slots()
        ids._live = len(live)
        names = [i for i in (ids.id_of(int(s)) for s in live) if i is not None]
        ids._insert(np.array([_hash(i) for i in names], dtype=np.uint64), live.astype(np.int32))
        return ids
