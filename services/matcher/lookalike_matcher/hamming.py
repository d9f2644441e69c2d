"""HammingTable: exact range search over 64-bit codes by multi-index hashing (MIH).

A code is cut into `parts` disjoint substrings. Two codes within Hamming distance r agree
within floor(r / parts) bits on at least one substring (pigeonhole), so a search probes, per
substring, every key within that small radius of the query's substring, and checks the
codes found there with their full distance. With substrings about log2(n) bits long a probe
finds a handful of entries, so a search touches a tiny, size-independent share of the table.

Life cycle of an entry:

    add --> delta (unsorted tail, scanned linearly; at most `delta_limit` entries)
        --merge (a linear-time sorted insert into each substring's sorted arrays)--> main
    kill --> owner = -1: skipped by every search; once half the entries are dead the table
             is compacted (entry numbers change: `compact` returns the old -> new mapping)

Searches run against a consistent view: arrays are replaced, never resized in place, while
readers may hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

import numpy as np

Array = np.ndarray

DEFAULT_PARTS = 3  # 22 + 21 + 21 bits: about log2 of ten million entries per substring
BUCKET_TABLE_FROM = 1 << 16  # merged entries from which bucket tables replace binary search
_EMPTY_KEYS = np.zeros(0, dtype=np.uint32)


@lru_cache(maxsize=64)
def _probe_masks(width: int, radius: int) -> Array:
    """Every `width`-bit mask with at most `radius` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        for bits in combinations(range(width), k):
            value = 0
            for b in bits:
                value |= 1 << b
            masks.append(value)
    return np.array(masks, dtype=np.uint32)


def _widths(parts: int) -> list[int]:
    base, extra = divmod(64, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@dataclass
class _View:
    """Everything a search reads, swapped as a whole by writers."""

    codes: Array  # uint64, entries [0, n)
    owner: Array  # int32 slot of the image, -1 when dead
    tag: Array  # int8: which region of the image (-1 = whole content)
    n: int
    merged: int  # entries [0, merged) are in the sorted arrays; the rest is the delta
    keys: list[Array]  # per substring: sorted uint32 substring values of merged entries
    ids: list[Array]  # per substring: entry numbers in the same order
    # per substring, once the table is large: offsets[key] .. offsets[key + 1] is the run of
    # that key in keys/ids (a bucket table: one gather per probe instead of a binary search)
    offsets: list[Array | None] = field(default_factory=list)


class HammingTable:
    def __init__(self, parts: int = DEFAULT_PARTS, delta_limit: int = 32768) -> None:
        # The delta may grow with the table (1/32 of it), so merges stay rare.
        self.parts = parts
        self.widths = _widths(parts)
        self.shifts = [sum(self.widths[i + 1 :]) for i in range(parts)]
        self.delta_limit = delta_limit
        self.dead = 0
        empty = np.zeros(0, dtype=np.uint32)
        self._view = _View(
            codes=np.zeros(1024, dtype=np.uint64),
            owner=np.zeros(1024, dtype=np.int32),
            tag=np.zeros(1024, dtype=np.int8),
            n=0,
            merged=0,
            keys=[empty] * parts,
            ids=[np.zeros(0, dtype=np.int32)] * parts,
        )

    # --- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._view.n - self.dead

    @property
    def size(self) -> int:
        """Entries held, dead ones included (entry numbers are < size)."""
        return self._view.n

    def nbytes(self) -> int:
        v = self._view
        used = v.n * (v.codes.itemsize + v.owner.itemsize + v.tag.itemsize)
        tables = sum(t.nbytes for t in v.offsets if t is not None)
        return used + tables + sum(k.nbytes + i.nbytes for k, i in zip(v.keys, v.ids, strict=True))

    def _substring(self, codes: Array, part: int) -> Array:
        mask = np.uint64((1 << self.widths[part]) - 1)
        return ((codes >> np.uint64(self.shifts[part])) & mask).astype(np.uint32)

    # --- writes (one writer at a time) --------------------------------------------------------

    def add(self, codes: Array, owner: Array, tag: Array) -> int:
        """Append entries; returns the number of the first one."""
        v = self._view
        k = len(codes)
        first = v.n
        if v.n + k > len(v.codes):
            cap = max(2 * len(v.codes), v.n + k)
            grown = _View(
                codes=_grow(v.codes, cap),
                owner=_grow(v.owner, cap),
                tag=_grow(v.tag, cap),
                n=v.n,
                merged=v.merged,
                keys=v.keys,
                ids=v.ids,
                offsets=v.offsets,
            )
            v = grown
        # Entries past n are invisible to readers, so filling them in place is safe.
        v.codes[v.n : v.n + k] = codes
        v.owner[v.n : v.n + k] = owner
        v.tag[v.n : v.n + k] = tag
        v = _View(v.codes, v.owner, v.tag, v.n + k, v.merged, v.keys, v.ids, v.offsets)
        self._view = v
        if v.n - v.merged > max(self.delta_limit, v.merged // 32):
            self.merge()
        return first

    def kill(self, entries: Array) -> None:
        owner = self._view.owner
        alive = owner[entries] >= 0
        owner[entries] = -1
        self.dead += int(alive.sum())

    def merge(self) -> None:
        """Move the delta into the sorted arrays: a sorted insert, linear in the table size."""
        v = self._view
        if v.merged == v.n:
            return
        new_ids = np.arange(v.merged, v.n, dtype=np.int32)
        keys: list[Array] = []
        ids: list[Array] = []
        offsets: list[Array | None] = []
        for p in range(self.parts):
            sub = self._substring(v.codes[v.merged : v.n], p)
            order = np.argsort(sub, kind="stable")
            sub, add_ids = sub[order], new_ids[order]
            table = v.offsets[p] if v.offsets else None
            if table is not None:
                # The bucket table says where each key's run ends: insert there, then shift.
                ids.append(np.insert(v.ids[p], table[sub.astype(np.int64) + 1], add_ids))
                shifted = table.copy()
                shifted[1:] += np.cumsum(np.bincount(sub, minlength=len(table) - 1)).astype(
                    table.dtype
                )
                keys.append(v.keys[p])
                offsets.append(shifted)
                continue
            at = np.searchsorted(v.keys[p], sub, side="right")
            merged_keys = np.insert(v.keys[p], at, sub)
            ids.append(np.insert(v.ids[p], at, add_ids))
            table = self._bucket_table(merged_keys, p)
            offsets.append(table)
            # Once there is a bucket table the sorted keys are implied by it: drop them.
            keys.append(merged_keys if table is None else _EMPTY_KEYS)
        self._view = _View(v.codes, v.owner, v.tag, v.n, v.n, keys, ids, offsets)

    def _bucket_table(self, sorted_keys: Array, part: int) -> Array | None:
        if len(sorted_keys) < BUCKET_TABLE_FROM:
            return None
        counts = np.bincount(sorted_keys, minlength=1 << self.widths[part])
        table = np.zeros(len(counts) + 1, dtype=np.int32 if len(sorted_keys) < 2**31 else np.int64)
        np.cumsum(counts, out=table[1:])
        return table

    def _tables(self, keys: list[Array]) -> tuple[list[Array], list[Array | None]]:
        tables = [self._bucket_table(k, p) for p, k in enumerate(keys)]
        kept = [k if t is None else _EMPTY_KEYS for k, t in zip(keys, tables, strict=True)]
        return kept, tables

    def compact(self) -> Array:
        """Drop dead entries; returns old entry number -> new one (-1 for dropped)."""
        v = self._view
        alive = v.owner[: v.n] >= 0
        remap = np.full(v.n, -1, dtype=np.int64)
        remap[alive] = np.arange(int(alive.sum()))
        codes, owner, tag = v.codes[: v.n][alive], v.owner[: v.n][alive], v.tag[: v.n][alive]
        self.dead = 0
        self._view = _View(
            codes=codes.copy(),
            owner=owner.copy(),
            tag=tag.copy(),
            n=len(codes),
            merged=0,
            keys=[np.zeros(0, dtype=np.uint32)] * self.parts,
            ids=[np.zeros(0, dtype=np.int32)] * self.parts,
        )
        self.merge()
        return remap

    # --- reads -------------------------------------------------------------------------------

    def search(self, queries: Array, radius: int) -> tuple[Array, Array, Array]:
        """All (query number, entry number, distance) with distance <= radius, live only."""
        v = self._view
        queries = np.asarray(queries, dtype=np.uint64)
        found_q: list[Array] = []
        found_e: list[Array] = []
        if v.merged:
            for p in range(self.parts):
                masks = _probe_masks(self.widths[p], radius // self.parts)
                probes = (self._substring(queries, p)[:, None] ^ masks[None, :]).ravel()
                offsets = v.offsets[p] if v.offsets else None
                if offsets is not None:
                    lo, hi = offsets[probes], offsets[probes + 1]
                else:
                    lo = np.searchsorted(v.keys[p], probes, side="left")
                    hi = np.searchsorted(v.keys[p], probes, side="right")
                lengths = hi - lo
                total = int(lengths.sum())
                if total == 0:
                    continue
                hit = np.nonzero(lengths)[0]
                lo, lengths = lo[hit], lengths[hit]
                starts = np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
                found_e.append(v.ids[p][starts + np.arange(total)])
                found_q.append(np.repeat(hit // len(masks), lengths))
        if v.n > v.merged:  # the delta: scanned linearly
            near = np.bitwise_count(v.codes[v.merged : v.n][None, :] ^ queries[:, None]) <= radius
            dq, de = np.nonzero(near)
            found_q.append(dq)
            found_e.append(de + v.merged)
        if not found_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        q = np.concatenate(found_q).astype(np.int64)
        e = np.concatenate(found_e).astype(np.int64)
        dist = np.bitwise_count(v.codes[e] ^ queries[q]).astype(np.int64)
        keep = (dist <= radius) & (v.owner[e] >= 0)
        q, e, dist = q[keep], e[keep], dist[keep]
        if len(q) > 1:  # an entry found through several substrings is reported once
            _, first = np.unique(q * v.n + e, return_index=True)
            q, e, dist = q[first], e[first], dist[first]
        return q, e, dist

    def owners(self, entries: Array) -> Array:
        owners: Array = self._view.owner[entries]
        return owners

    def tags(self, entries: Array) -> Array:
        tags: Array = self._view.tag[entries]
        return tags

    # --- snapshot ----------------------------------------------------------------------------

    def arrays(self, sorted_too: bool = False) -> dict[str, Array]:
        """The entries; with sorted_too, also the substring arrays, so a load need not sort."""
        self.merge()
        v = self._view
        out = {"codes": v.codes[: v.n], "owner": v.owner[: v.n], "tag": v.tag[: v.n]}
        if sorted_too:
            for p in range(self.parts):
                out[f"keys{p}"], out[f"ids{p}"] = v.keys[p], v.ids[p]
                bucket_table = v.offsets[p] if v.offsets else None
                if bucket_table is not None:
                    out[f"table{p}"] = bucket_table
        return out

    @classmethod
    def from_arrays(
        cls,
        codes: Array,
        owner: Array,
        tag: Array,
        parts: int = DEFAULT_PARTS,
        sorted_arrays: dict[str, Array] | None = None,
    ) -> HammingTable:
        table = cls(parts)
        table._view = _View(
            codes=np.ascontiguousarray(codes, dtype=np.uint64).copy(),
            owner=np.ascontiguousarray(owner, dtype=np.int32).copy(),
            tag=np.ascontiguousarray(tag, dtype=np.int8).copy(),
            n=len(codes),
            merged=0,
            keys=[np.zeros(0, dtype=np.uint32)] * parts,
            ids=[np.zeros(0, dtype=np.int32)] * parts,
        )
        table.dead = int((table._view.owner < 0).sum())
        if sorted_arrays and all(f"ids{p}" in sorted_arrays for p in range(parts)):
            v = table._view
            keys = [np.asarray(sorted_arrays[f"keys{p}"], np.uint32) for p in range(parts)]
            ids = [np.asarray(sorted_arrays[f"ids{p}"], np.int32) for p in range(parts)]
            tables: list[Array | None] = [
                sorted_arrays[f"table{p}"] if f"table{p}" in sorted_arrays else None
                for p in range(parts)
            ]
            table._view = _View(v.codes, v.owner, v.tag, v.n, v.n, keys, ids, tables)
        else:
            table._bulk_sort()
        return table

    def _bulk_sort(self) -> None:
        v = self._view
        keys, ids = [], []
        for p in range(self.parts):
            sub = self._substring(v.codes[: v.n], p)
            order = np.argsort(sub, kind="stable").astype(np.int32)
            keys.append(sub[order])
            ids.append(order)
        kept, tables = self._tables(keys)
        self._view = _View(v.codes, v.owner, v.tag, v.n, v.n, kept, ids, tables)


def _grow(array: Array, capacity: int) -> Array:
    out = np.zeros(capacity, dtype=array.dtype)
    out[: len(array)] = array
    return out
