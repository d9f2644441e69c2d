"""Finding the merged entries of a TableView within a radius of each query: multi-index
probes of the layouts, or a blocked linear scan when that is cheaper.

Pigeonhole: if two codes are within Hamming distance r, then for any radii s_p with
sum(s_p + 1) > r at least one substring p is within s_p. So a probe of layout p looks up
every key within s_p of the query's substring p (`probe_masks`) and checks what it finds:

- in layout 0 the run holds whole codes, so the distance is exact;
- in layout p > 0 a candidate's 32 kept bits plus the probe's key bits give a lower bound on
  its distance; the few that pass are looked up in layout 0 by their substring 0 and checked
  whole.

Each probe reads one contiguous run of its layout: no random gather per candidate.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import numpy as np

from .hamming_layout import PACKED_BITS, SubstringLayout, Substrings, TableView
from .sorting import counted_unique, sorted_unique

Array = np.ndarray

# Elements of one (queries x codes) block of a linear scan. Its temporaries (the uint64 XOR:
# 512 KiB) are freed at once; blocks of up to 4M elements made them grow with the delta,
# megabytes a search at a few thousand images, which glibc kept in each search thread's
# arena, so RSS grew with the index (bench/README.md, soak). Small blocks are faster too.
SCAN_CHUNK = 1 << 16
# A probe (two table reads at random places, bookkeeping) costs about this many candidate
# checks or scanned codes; `find_merged` scans linearly when that is cheaper.
PROBE_COST = 16

_U64 = np.uint64

Found = tuple[Array, Array, Array]  # (query, position, distance), int64 each


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


def _empty() -> Found:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, empty


def scan(codes: Array, queries: Array, radii: Array) -> Found:
    """Brute force: (query, position, distance) of every code within its query's radius,
    by query, then position."""
    if len(codes) == 0 or len(queries) == 0:
        return _empty()
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


def find_merged(
    v: TableView, cut: Substrings, queries: Array, radii: Array, method: str = "auto"
) -> Found:
    """The merged entries of `v` within each query's radius: (query, layout-0 position,
    distance). method: "probe", "scan" or "auto" (whichever costs less)."""
    if method == "scan" or (method == "auto" and scan_is_cheaper(v, cut.widths, radii)):
        return scan(v.layouts[0].words, queries, radii)
    return probe(v, cut, queries, radii)


def scan_is_cheaper(v: TableView, widths: tuple[int, ...], radii: Array) -> bool:
    """Whether probing these radii would touch more than a scan of every merged code."""
    n = v.merged
    work = 0.0
    for r, count in zip(*counted_unique(radii), strict=True):
        for p, s in enumerate(split_radius(int(r), list(widths))):
            probes = probe_count(v.layouts[p].bits, s) * int(count)
            work += probes * (PROBE_COST + n / 2.0 ** v.layouts[p].bits)
    return work >= n * len(radii)


def _ranges(layout: SubstringLayout, keys: Array) -> tuple[Array, Array]:
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


def probe(v: TableView, cut: Substrings, queries: Array, radii: Array) -> Found:
    """Multi-index lookups in the layouts: (query, layout-0 position, distance)."""
    hits_q: list[Array] = []
    hits_at: list[Array] = []
    # layout p > 0 candidates that pass the lower bound, to be checked in layout 0
    near_q: list[Array] = []
    near_bucket: list[Array] = []
    rmax = int(radii.max())
    groups = [(int(r), np.flatnonzero(radii == r)) for r in sorted_unique(radii)]
    splits = {r: split_radius(r, list(cut.widths)) for r, _ in groups}
    for p, layout in enumerate(v.layouts):
        bits = layout.bits
        keys = cut.substring(queries, p, bits)
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
        lo, hi = _ranges(layout, np.concatenate(probe_keys))
        hit, lo, lengths, ends = _runs(lo, hi)
        if len(hit) == 0:
            continue
        pq = np.concatenate(probe_q)[hit]
        mine = queries if p == 0 else cut.packed(queries, p)
        # each candidate against its probe's query code (one code: no per-candidate copy)
        against = mine[:1] if len(queries) == 1 else np.repeat(mine[pq], lengths)
        differ = np.take(layout.words, _positions(lo, lengths, ends))
        d = np.bitwise_count(np.bitwise_xor(differ, against, out=differ))
        idx = np.flatnonzero(d <= rmax)  # every budget is <= rmax: the few left are...
        run = np.searchsorted(ends, idx, side="right")  # the probe each candidate came from
        ok = d[idx] <= np.concatenate(probe_budget)[hit][run]  # ...checked exactly
        idx, run = idx[ok], run[ok]
        cq = pq[run]
        at = lo[run] + idx - (ends[run] - lengths[run])
        if p == 0:
            hits_q.append(cq)
            hits_at.append(at)
        else:
            near_q.append(cq)
            shift = np.uint32(PACKED_BITS - v.layouts[0].bits)
            near_bucket.append(layout.words[at] >> shift)
    if near_q:
        q, at = _check_whole(v.layouts[0], queries, radii, near_q, near_bucket)
        hits_q.append(q)
        hits_at.append(at)
    if not hits_q:
        return _empty()
    q = np.concatenate(hits_q).astype(np.int64)
    at = np.concatenate(hits_at).astype(np.int64)
    if len(q) > 1:  # an entry found through several substrings is reported once
        key = sorted_unique(q * v.merged + at)
        q, at = key // v.merged, key % v.merged
    d = np.bitwise_count(v.layouts[0].words[at] ^ queries[q]).astype(np.int64)
    return q, at, d


def _check_whole(
    layout0: SubstringLayout,
    queries: Array,
    radii: Array,
    near_q: list[Array],
    near_bucket: list[Array],
) -> tuple[Array, Array]:
    """(query, layout-0 position) of the codes within radius in the layout-0 buckets that
    candidates of layouts p > 0 point to. A packed word does not say where its entry lies in
    layout 0, only its top bits (its layout-0 key), so each (query, bucket) is read once and
    every code in it checked whole."""
    nq = np.concatenate(near_q).astype(np.int64)
    nb = np.concatenate(near_bucket).astype(np.int64)
    pair = sorted_unique(nq << 32 | nb)
    nq, nb = pair >> 32, pair & 0xFFFFFFFF
    lo, hi = _ranges(layout0, nb)
    hit, lo, lengths, ends = _runs(lo, hi)
    at = _positions(lo, lengths, ends)
    cq = np.repeat(nq[hit], lengths)
    d = np.bitwise_count(layout0.words[at] ^ queries[cq])
    ok = d <= radii[cq]
    return cq[ok], at[ok]
