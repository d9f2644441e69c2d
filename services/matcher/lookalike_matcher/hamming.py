"""HammingTable: exact range search over 64-bit codes by multi-index hashing (MIH).

A code is cut into `parts` disjoint substrings (22, 21 and 21 bits). If two codes are within
Hamming distance r, then for any radii s_p with sum(s_p + 1) > r at least one substring p is
within s_p (pigeonhole), so a search probes every key within s_p of the query's substring p,
in a copy of the table grouped by substring p, and checks what it finds with the whole code.
Radius 10 over three substrings probes radii 3, 3 and 2 (`split_radius`).

Memory layout (per entry: 8 + 4 + 1 + 4 * (parts - 1) bytes, plus the prefix tables):

    layout 0    the codes ascending (uint64), owner (int32) and tag (int8) alongside
    layout p>0  the same entries grouped by substring p; each keeps 32 bits of its code: the
                code without substring p, cut to its top 32 bits (substring 0 and 10 more)
    prefix      per layout, once it is large: entries whose key starts with k lie at
                [table[k], table[k + 1]). It resolves `bits` <= the substring's width, sized
                to the table (a fixed share of RAM per entry), so it grows with the table
    delta       entries added since the last merge, unsorted, scanned linearly

A probe reads one contiguous run of its layout: no random gather per candidate. In layout 0
the run holds whole codes, so the distance is exact. In layout p > 0 a candidate's 32 kept
bits plus the probe's key bits give a lower bound on its distance; the few that pass are
looked up in layout 0 by their substring 0 and checked whole. Searches are exact: a test
compares them with brute force.

Life cycle of an entry:

    add --> delta --merge (sorted insert into every layout, linear in the table)--> layouts
    kill(owner) --> the owner is marked dead: its entries are skipped by every search
    compact --> entries of dead owners are dropped (their owner numbers may then be reused)

Searches read one `_View`, swapped as a whole by the writer; arrays are replaced, never
changed in place where a reader could see it (entries past the delta's length are invisible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from .sorting import counted_unique, sorted_unique

Array = np.ndarray

DEFAULT_PARTS = 3  # 22 + 21 + 21 bits: about log2 of the entries of a large table
PACKED_BITS = 32  # bits of each code that layouts p > 0 keep
PREFIX_TABLE_FROM = 1 << 14  # entries from which a layout gets a prefix table
MIN_PREFIX_BITS = 8
# Elements of one (queries x codes) block of a linear scan. Its temporaries (the uint64 XOR:
# 512 KiB) are freed at once; blocks of up to 4M elements made them grow with the delta,
# megabytes a search at a few thousand images, which glibc kept in each search thread's
# arena, so RSS grew with the index (bench/README.md, soak). Small blocks are faster too.
SCAN_CHUNK = 1 << 16
# A probe (two table reads at random places, bookkeeping) costs about this many candidate
# checks or scanned codes; `search` scans linearly when that is cheaper.
PROBE_COST = 16

_U64 = np.uint64


def _widths(parts: int) -> list[int]:
    base, extra = divmod(64, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_radius(radius: int, widths: list[int]) -> list[int]:
    """Per substring, the radius to probe (-1: not probed), with sum(s + 1) = radius + 1:
    pigeonhole then guarantees a code within `radius` is found in at least one substring.
    Wider substrings (fewer entries per key) take the larger radii."""
    units = radius + 1
    order = sorted(range(len(widths)), key=lambda p: -widths[p])
    out = [0] * len(widths)
    for rank, p in enumerate(order):
        out[p] = units // len(widths) + (1 if rank < units % len(widths) else 0) - 1
    return out


def probe_count(width: int, radius: int) -> int:
    """How many keys of `width` bits lie within `radius` of one key."""
    return sum(math.comb(width, k) for k in range(min(radius, width) + 1)) if radius >= 0 else 0


@lru_cache(maxsize=64)
def probe_masks(width: int, radius: int) -> Array:
    """Every `width`-bit mask with at most `radius` bits set, as int64."""
    out = [np.zeros(1, dtype=np.int64)]
    bits = np.int64(1) << np.arange(width, dtype=np.int64)
    for k in range(1, min(radius, width) + 1):
        chosen = np.array(list(combinations(range(width), k)), dtype=np.int64)
        out.append(bits[chosen].sum(axis=1))
    masks = np.concatenate(out)
    masks.setflags(write=False)
    return masks


@lru_cache(maxsize=64)
def _mask_weights(width: int, radius: int) -> Array:
    weights: Array = np.bitwise_count(probe_masks(width, radius)).astype(np.int8)
    weights.setflags(write=False)
    return weights


def _table_bits(entries: int, width: int, bytes_per_entry: float) -> int:
    """Bits of a prefix table taking at most `bytes_per_entry` per entry (0: no table)."""
    if entries < PREFIX_TABLE_FROM:
        return 0
    bits = min(width, math.floor(math.log2(entries * bytes_per_entry / 4)))
    return bits if bits >= MIN_PREFIX_BITS else 0


def _offsets_dtype(entries: int) -> type:
    return np.uint32 if entries < 2**32 else np.int64


def _counts_to_table(counts: Array, entries: int) -> Array:
    table: Array = np.zeros(len(counts) + 1, dtype=_offsets_dtype(entries))
    np.cumsum(counts, out=table[1:])
    return table


def _runs(lo: Array, hi: Array) -> tuple[Array, Array, Array, Array]:
    """The non-empty runs [lo, hi): (which, their starts, lengths, and where each ends in
    the concatenation of all)."""
    lengths = hi - lo
    hit = np.flatnonzero(lengths)
    lo, lengths = lo[hit].astype(np.intp), lengths[hit].astype(np.intp)
    return hit, lo, lengths, np.cumsum(lengths)


def _positions(lo: Array, lengths: Array, ends: Array) -> Array:
    """Every position of every run, in order: a running sum, +1 within a run and a jump to
    the next run's start between runs."""
    if len(lo) == 0:
        return np.zeros(0, dtype=np.intp)
    steps = np.ones(int(ends[-1]), dtype=np.intp)
    steps[0] = lo[0]
    steps[ends[:-1]] = lo[1:] - (lo[:-1] + lengths[:-1]) + 1
    return np.cumsum(steps, out=steps)


def _scan(codes: Array, queries: Array, radii: Array) -> tuple[Array, Array, Array]:
    """Brute force: (query, position, distance) of every code within its query's radius."""
    if len(codes) == 0 or len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    found_q, found_p, found_d = [], [], []
    # Blocks of whole rows (several queries x every code), or of one query x part of the
    # codes when a row alone is larger: either way results come by query, then position.
    width = min(len(codes), SCAN_CHUNK)
    step = max(1, SCAN_CHUNK // width)
    for start in range(0, len(queries), step):
        wanted = queries[start : start + step, None]
        radius = radii[start : start + step, None]
        for first in range(0, len(codes), width):
            block = np.bitwise_count(codes[None, first : first + width] ^ wanted)
            q, p = np.nonzero(block <= radius)
            found_q.append(q + start)
            found_p.append(p + first)
            found_d.append(block[q, p])
    return (
        np.concatenate(found_q).astype(np.int64),
        np.concatenate(found_p).astype(np.int64),
        np.concatenate(found_d).astype(np.int64),
    )


@dataclass(frozen=True)
class _Layout:
    """One copy of the merged entries, grouped by one substring."""

    words: Array  # layout 0: uint64 codes ascending; p > 0: uint32 packed words
    bits: int  # key bits a lookup resolves (the prefix table's, else the substring's)
    table: Array | None  # prefix table, 2**bits + 1 offsets; None: binary search
    keys: Array | None  # p > 0 without a table: uint32 substring p of each entry, ascending


@dataclass(frozen=True)
class _View:
    """Everything a search reads, swapped as a whole by the writer."""

    layouts: tuple[_Layout, ...]
    owner: Array  # int32, alongside layouts[0].words
    tag: Array  # int8, alongside layouts[0].words
    delta_codes: Array  # uint64 with spare capacity: entries [0, delta_n) are in use
    delta_owner: Array
    delta_tag: Array
    delta_n: int

    @property
    def merged(self) -> int:
        return len(self.owner)


def _empty_delta(capacity: int) -> tuple[Array, Array, Array]:
    return (
        np.zeros(capacity, dtype=np.uint64),
        np.zeros(capacity, dtype=np.int32),
        np.zeros(capacity, dtype=np.int8),
    )


class HammingTable:
    """Exact Hamming range search over 64-bit codes, each entry owned by an int32 owner
    (the image's slot) and carrying an int8 tag (which of its codes it is). One writer at
    a time; searches may run concurrently with it."""

    def __init__(
        self,
        parts: int = DEFAULT_PARTS,
        delta_limit: int = 32768,
        prefix_bytes_per_entry: float = 1.0,
        widths: tuple[int, ...] | None = None,
    ) -> None:
        """`widths` (default: `parts` near-equal ones) are the substrings' bits, from the
        top; a table searched at one radius may do better with unequal ones (see
        split_radius: the narrowest substring is probed at the smaller radius)."""
        self.widths = list(widths) if widths else _widths(parts)
        self.parts = len(self.widths)
        if sum(self.widths) != 64 or not all(16 <= w <= 32 for w in self.widths):
            raise ValueError("substrings of 16 to 32 bits that make 64")
        # substring p is bits [shift_p, shift_p + width_p) of the code; 0 is the top one
        self.shifts = [sum(self.widths[p + 1 :]) for p in range(self.parts)]
        self.delta_limit = delta_limit
        # while a backlog is replayed: let the delta grow to this share of the merged entries
        self.delta_share = 0.0
        self.prefix_bytes_per_entry = prefix_bytes_per_entry
        self._dead = np.zeros(1024, dtype=bool)  # by owner
        self._view = self._build(
            np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int8), 1024
        )

    # --- size ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Entries held, those of dead owners included until `compact`."""
        v = self._view
        return v.merged + v.delta_n

    @property
    def unmerged(self) -> int:
        """Entries added since the last merge: every search scans them one by one."""
        return self._view.delta_n

    def nbytes(self) -> int:
        v = self._view
        used = v.merged * (8 + 4 + 1) + v.delta_n * (8 + 4 + 1) + self._dead.nbytes
        for layout in v.layouts[1:]:
            used += layout.words.nbytes
        for layout in v.layouts:
            used += layout.table.nbytes if layout.table is not None else 0
            used += layout.keys.nbytes if layout.keys is not None else 0
        return int(used)

    # --- bit plumbing ------------------------------------------------------------------------

    def _substring(self, codes: Array, part: int, bits: int | None = None) -> Array:
        """The top `bits` (default: all) bits of substring `part`, as int64."""
        width = self.widths[part]
        bits = width if bits is None else bits
        shifted = codes >> _U64(self.shifts[part] + width - bits)
        return (shifted & _U64((1 << bits) - 1)).astype(np.int64)

    def _packed(self, codes: Array, part: int) -> Array:
        """Layout `part`'s word: the code without substring `part`, cut to its top 32 bits
        (so substring 0 comes first)."""
        shift, width = self.shifts[part], self.widths[part]
        high = codes >> _U64(shift + width)
        rest = (high << _U64(shift)) | (codes & _U64((1 << shift) - 1))
        return (rest >> _U64(64 - width - PACKED_BITS)).astype(np.uint32)

    # --- building layouts --------------------------------------------------------------------

    def _build(self, codes: Array, owner: Array, tag: Array, capacity: int) -> _View:
        """A view of these entries (any order) with an empty delta."""
        order = np.argsort(codes, kind="stable")
        codes, owner, tag = codes[order], owner[order], tag[order]
        layouts = [self._layout0(codes)]
        layouts += [self._layout_from(codes, p) for p in range(1, self.parts)]
        return _View(tuple(layouts), owner, tag, *_empty_delta(capacity), 0)

    def _layout0(self, codes: Array) -> _Layout:
        bits = _table_bits(len(codes), self.widths[0], self.prefix_bytes_per_entry)
        if not bits:
            return _Layout(codes, self.widths[0], None, None)
        counts = np.zeros(1 << bits, dtype=np.int64)
        for start in range(0, len(codes), 1 << 24):  # chunks bound the temporaries
            chunk = codes[start : start + (1 << 24)] >> _U64(64 - bits)
            counts += np.bincount(chunk.astype(np.int64), minlength=1 << bits)
        return _Layout(codes, bits, _counts_to_table(counts, len(codes)), None)

    def _layout_from(self, codes: Array, part: int) -> _Layout:
        """Layout `part` of these codes (layout 0's, ascending), built from scratch."""
        width, n = self.widths[part], len(codes)
        bits = _table_bits(n, width, self.prefix_bytes_per_entry)
        if not bits:
            keys = self._substring(codes, part).astype(np.uint32)
            order = np.argsort(keys, kind="stable")
            return _Layout(self._packed(codes, part)[order], width, None, keys[order])
        # Sort (bucket << 32 | word): within a bucket the order does not matter.
        combined = np.empty(n, dtype=np.uint64)
        counts = np.zeros(1 << bits, dtype=np.int64)
        for start in range(0, n, 1 << 24):
            chunk = codes[start : start + (1 << 24)]
            bucket = self._substring(chunk, part, bits)
            counts += np.bincount(bucket, minlength=1 << bits)
            combined[start : start + len(chunk)] = (bucket.astype(np.uint64) << _U64(32)) | (
                self._packed(chunk, part)
            )
        combined.sort()
        words = combined.astype(np.uint32)  # keeps the low 32 bits
        return _Layout(words, bits, _counts_to_table(counts, n), None)

    # --- writes (one writer at a time) --------------------------------------------------------

    def add(self, codes: Array, owner: Array | int, tag: Array | int) -> None:
        """Add entries (owner numbers of dead owners come alive again: reuse an owner only
        after `compact` dropped its old entries)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint64).ravel()
        k = len(codes)
        if k == 0:
            return
        top = int(np.max(owner))
        if top >= len(self._dead):
            grown = np.zeros(max(2 * len(self._dead), top + 1), dtype=bool)
            grown[: len(self._dead)] = self._dead
            self._dead = grown
        self._dead[owner] = False
        v = self._view
        dc, do, dt = v.delta_codes, v.delta_owner, v.delta_tag
        if v.delta_n + k > len(dc):
            dc, do, dt = _empty_delta(max(2 * len(dc), v.delta_n + k))
            dc[: v.delta_n] = v.delta_codes[: v.delta_n]
            do[: v.delta_n] = v.delta_owner[: v.delta_n]
            dt[: v.delta_n] = v.delta_tag[: v.delta_n]
        # Entries past delta_n are invisible to readers, so filling them in place is safe.
        dc[v.delta_n : v.delta_n + k] = codes
        do[v.delta_n : v.delta_n + k] = owner
        dt[v.delta_n : v.delta_n + k] = tag
        self._view = _View(v.layouts, v.owner, v.tag, dc, do, dt, v.delta_n + k)
        if v.delta_n + k > max(self.delta_limit, v.merged * self.delta_share):
            self.merge()

    def kill(self, owners: Array | int) -> None:
        """Every entry of these owners stops being found (`compact` frees their memory)."""
        self._dead[np.asarray(owners, dtype=np.int64)] = True

    def merge(self) -> None:
        """Move the delta into the layouts: a sorted insert, linear in the table size."""
        v = self._view
        if v.delta_n == 0:
            return
        order = np.argsort(v.delta_codes[: v.delta_n], kind="stable")
        new = v.delta_codes[: v.delta_n][order]
        old0 = v.layouts[0]
        at = np.searchsorted(old0.words, new)
        codes = np.insert(old0.words, at, new)
        owner = np.insert(v.owner, at, v.delta_owner[: v.delta_n][order])
        tag = np.insert(v.tag, at, v.delta_tag[: v.delta_n][order])
        layouts = [self._merged_layout0(old0, codes, new)]
        for p in range(1, self.parts):
            layouts.append(self._merged_layout(v.layouts[p], p, codes, new))
        capacity = min(len(v.delta_codes), max(1024, self.delta_limit + 1))
        self._view = _View(tuple(layouts), owner, tag, *_empty_delta(capacity), 0)

    def _merged_layout0(self, old: _Layout, codes: Array, new: Array) -> _Layout:
        bits = _table_bits(len(codes), self.widths[0], self.prefix_bytes_per_entry)
        if bits and old.table is not None and bits == old.bits:
            counts = np.bincount((new >> _U64(64 - bits)).astype(np.int64), minlength=1 << bits)
            table: Array = old.table.astype(_offsets_dtype(len(codes)))
            table[1:] += np.cumsum(counts).astype(table.dtype)
            return _Layout(codes, bits, table, None)
        return self._layout0(codes)

    def _merged_layout(self, old: _Layout, part: int, codes: Array, new: Array) -> _Layout:
        bits = _table_bits(len(codes), self.widths[part], self.prefix_bytes_per_entry)
        if old.table is not None and bits == old.bits:
            bucket = self._substring(new, part, bits)
            order = np.argsort(bucket, kind="stable")
            bucket = bucket[order]
            # Each new entry goes to the end of its bucket's run.
            at = old.table[bucket + 1].astype(np.int64)
            words = np.insert(old.words, at, self._packed(new, part)[order])
            counts = np.bincount(bucket, minlength=1 << bits)
            table: Array = old.table.astype(_offsets_dtype(len(codes)))
            table[1:] += np.cumsum(counts).astype(table.dtype)
            return _Layout(words, bits, table, None)
        if old.keys is not None and not bits:
            keys = self._substring(new, part).astype(np.uint32)
            order = np.argsort(keys, kind="stable")
            at = np.searchsorted(old.keys, keys[order], side="right")
            return _Layout(
                np.insert(old.words, at, self._packed(new, part)[order]),
                self.widths[part],
                None,
                np.insert(old.keys, at, keys[order]),
            )
        # The prefix table changes size: regroup from layout 0 (rare: once per doubling).
        return self._layout_from(codes, part)

    def compact(self) -> None:
        """Drop the entries of dead owners (whose numbers `add` may then reuse)."""
        self.merge()
        v = self._view
        alive = ~self._dead[v.owner]
        if alive.all():
            return
        self._view = self._build(
            v.layouts[0].words[alive], v.owner[alive], v.tag[alive], len(v.delta_codes)
        )

    # --- reads -------------------------------------------------------------------------------

    def search(
        self, queries: Array, radius: int | Array, method: str = "auto"
    ) -> tuple[Array, Array, Array, Array]:
        """Every live entry within `radius` (one per query, or one for all) of a query:
        (query number, owner, tag, distance), each entry once per query.

        method: "probe" (multi-index lookups), "scan" (linear) or "auto" (the cheaper)."""
        v = self._view
        dead = self._dead
        queries = np.ascontiguousarray(queries, dtype=np.uint64).ravel()
        radii = np.broadcast_to(np.asarray(radius, dtype=np.int64), queries.shape)
        found: list[tuple[Array, Array, Array, Array]] = []
        if v.merged and len(queries):
            if method == "scan" or (method == "auto" and self._scan_is_cheaper(v, radii)):
                q, at, d = _scan(v.layouts[0].words, queries, radii)
            else:
                q, at, d = self._probe(v, queries, radii)
            found.append((q, v.owner[at], v.tag[at], d))
        if v.delta_n and len(queries):
            q, at, d = _scan(v.delta_codes[: v.delta_n], queries, radii)
            found.append((q, v.delta_owner[at], v.delta_tag[at], d))
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.astype(np.int32), empty.astype(np.int8), empty
        q = np.concatenate([f[0] for f in found])
        owner = np.concatenate([f[1] for f in found])
        tag = np.concatenate([f[2] for f in found])
        d = np.concatenate([f[3] for f in found])
        live = ~dead[owner]
        return q[live], owner[live], tag[live], d[live]

    def _scan_is_cheaper(self, v: _View, radii: Array) -> bool:
        n = v.merged
        work = 0.0
        for r, count in zip(*counted_unique(radii), strict=True):
            for p, s in enumerate(split_radius(int(r), self.widths)):
                probes = probe_count(v.layouts[p].bits, s) * int(count)
                work += probes * (PROBE_COST + n / 2.0 ** v.layouts[p].bits)
        return work >= n * len(radii)

    def _ranges(self, layout: _Layout, part: int, keys: Array) -> tuple[Array, Array]:
        """[lo, hi) of the entries whose key (top `layout.bits` bits of the substring) is k."""
        if layout.table is not None:
            return layout.table[keys], layout.table[keys + 1]
        if layout.keys is not None:
            return (
                np.searchsorted(layout.keys, keys, side="left"),
                np.searchsorted(layout.keys, keys, side="right"),
            )
        # layout 0 without a table: the codes themselves are sorted by their top bits
        step = 64 - layout.bits
        lo = np.searchsorted(layout.words, keys.astype(np.uint64) << _U64(step))
        last = keys == (1 << layout.bits) - 1
        upper = (keys + 1).astype(np.uint64) << _U64(step)
        hi = np.where(last, len(layout.words), np.searchsorted(layout.words, upper))
        return lo.astype(np.int64), hi.astype(np.int64)

    def _probe(self, v: _View, queries: Array, radii: Array) -> tuple[Array, Array, Array]:
        """Multi-index lookups in the layouts: (query, layout-0 position, distance)."""
        hits_q: list[Array] = []
        hits_at: list[Array] = []
        # layout p > 0 candidates that pass the lower bound, to be checked in layout 0
        near_q: list[Array] = []
        near_bucket: list[Array] = []
        rmax = int(radii.max())
        groups = [(int(r), np.flatnonzero(radii == r)) for r in sorted_unique(radii)]
        splits = {r: split_radius(r, self.widths) for r, _ in groups}
        for p, layout in enumerate(v.layouts):
            bits = layout.bits
            keys = self._substring(queries, p, bits)
            probe_keys, probe_q, probe_budget = [], [], []
            for r, members in groups:
                s = splits[r][p]
                if s < 0:
                    continue
                masks = probe_masks(bits, s)
                probe_keys.append((keys[members, None] ^ masks[None, :]).ravel())
                probe_q.append(np.repeat(members, len(masks)))
                # what the rest of a candidate may still differ by: in layout 0 the whole
                # code is checked, elsewhere the key's own distance is spent already
                spent = _mask_weights(bits, s) if p else np.zeros(len(masks), np.int8)
                probe_budget.append(np.tile(r - spent, len(members)))
            if not probe_keys:
                continue
            lo, hi = self._ranges(layout, p, np.concatenate(probe_keys))
            hit, lo, lengths, ends = _runs(lo, hi)
            if len(hit) == 0:
                continue
            pq = np.concatenate(probe_q)[hit]
            mine = queries if p == 0 else self._packed(queries, p)
            # each candidate against its probe's query code (one code: no per-candidate copy)
            against = mine[:1] if len(queries) == 1 else np.repeat(mine[pq], lengths)
            differ = np.take(layout.words, _positions(lo, lengths, ends))
            d = np.bitwise_count(np.bitwise_xor(differ, against, out=differ))
            idx = np.flatnonzero(d <= rmax)  # every budget is <= rmax: the few left are...
            probe = np.searchsorted(ends, idx, side="right")
            ok = d[idx] <= np.concatenate(probe_budget)[hit][probe]  # ...checked exactly
            idx, probe = idx[ok], probe[ok]
            cq = pq[probe]
            at = lo[probe] + idx - (ends[probe] - lengths[probe])
            if p == 0:
                hits_q.append(cq)
                hits_at.append(at)
            else:
                near_q.append(cq)
                shift = np.uint32(PACKED_BITS - v.layouts[0].bits)
                near_bucket.append(layout.words[at] >> shift)
        if near_q:
            # Each (query, layout-0 bucket) once, then every code in the bucket checked whole.
            nq = np.concatenate(near_q).astype(np.int64)
            nb = np.concatenate(near_bucket).astype(np.int64)
            pair = sorted_unique(nq << 32 | nb)
            nq, nb = pair >> 32, pair & 0xFFFFFFFF
            lo, hi = self._ranges(v.layouts[0], 0, nb)
            hit, lo, lengths, ends = _runs(lo, hi)
            at = _positions(lo, lengths, ends)
            cq = np.repeat(nq[hit], lengths)
            d = np.bitwise_count(v.layouts[0].words[at] ^ queries[cq])
            ok = d <= radii[cq]
            hits_q.append(cq[ok])
            hits_at.append(at[ok])
        if not hits_q:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        q = np.concatenate(hits_q).astype(np.int64)
        at = np.concatenate(hits_at).astype(np.int64)
        if len(q) > 1:  # an entry found through several substrings is reported once
            key = sorted_unique(q * v.merged + at)
            q, at = key // v.merged, key % v.merged
        d = np.bitwise_count(v.layouts[0].words[at] ^ queries[q]).astype(np.int64)
        return q, at, d

    # --- snapshot ----------------------------------------------------------------------------

    def arrays(self) -> dict[str, Array]:
        """Every array of the table (merged first), so a load need not sort."""
        self.merge()
        v = self._view
        out = {"codes": v.layouts[0].words, "owner": v.owner, "tag": v.tag, "dead": self._dead}
        out["widths"] = np.array(self.widths)
        for p, layout in enumerate(v.layouts):
            out[f"bits{p}"] = np.array(layout.bits)
            if p:
                out[f"words{p}"] = layout.words
            if layout.table is not None:
                out[f"table{p}"] = layout.table
            if layout.keys is not None:
                out[f"keys{p}"] = layout.keys
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, Array], **options: object) -> HammingTable:
        """The table `arrays()` gave; layouts are rebuilt when they are missing or were made
        for other settings."""
        table = cls(**options)  # type: ignore[arg-type]
        if "widths" in arrays and [int(w) for w in arrays["widths"]] != table.widths:
            arrays = {k: arrays[k] for k in ("codes", "owner", "tag", "dead") if k in arrays}
        codes = np.ascontiguousarray(arrays["codes"], dtype=np.uint64)
        owner = np.ascontiguousarray(arrays["owner"], dtype=np.int32)
        tag = np.ascontiguousarray(arrays["tag"], dtype=np.int8)
        if "dead" in arrays:
            table._dead = np.array(arrays["dead"], dtype=bool)
        if len(owner) and int(owner.max()) >= len(table._dead):
            grown = np.zeros(int(owner.max()) + 1, dtype=bool)
            grown[: len(table._dead)] = table._dead
            table._dead = grown
        n = len(codes)
        layouts: list[_Layout] = []
        for p in range(table.parts):
            bits = _table_bits(n, table.widths[p], table.prefix_bytes_per_entry)
            words = codes if p == 0 else arrays.get(f"words{p}")
            stored = arrays.get(f"table{p}")
            keys = arrays.get(f"keys{p}")
            saved_bits = int(arrays[f"bits{p}"]) if f"bits{p}" in arrays else -1
            ok = words is not None and len(words) == n and saved_bits == (bits or table.widths[p])
            ok = ok and (stored is not None if bits else (p == 0 or keys is not None))
            if not ok:
                break
            layouts.append(_Layout(np.asarray(words), saved_bits, stored, keys))
        if len(layouts) == table.parts and bool(np.all(codes[:-1] <= codes[1:])):
            table._view = _View(tuple(layouts), owner, tag, *_empty_delta(1024), 0)
        else:
            table._view = table._build(codes, owner, tag, 1024)
        return table
