"""The sorted substring layouts a HammingTable searches, and how they are built and merged.

A code is cut into substrings (`Substrings`); each layout is one copy of the merged entries
grouped by one substring (`SubstringLayout`), and a `TableView` holds all of them with the
unsorted delta. `LayoutBuilder` makes a view from entries in any order, or folds a view's
delta into its layouts with a sorted insert. Views are values: building or merging returns
a new one and leaves the old intact, so a search that still reads the old one stays correct.

    layout 0    the codes ascending (uint64), owner (int32) and tag (int8) alongside
    layout p>0  the same entries grouped by substring p; each keeps 32 bits of its code: the
                code without substring p, cut to its top 32 bits (substring 0 and 10 more)
    prefix      per layout, once it is large: entries whose key starts with k lie at
                [table[k], table[k + 1]). It resolves `bits` <= the substring's width, sized
                to the table (a fixed share of RAM per entry), so it grows with the table
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Array = np.ndarray

PACKED_BITS = 32  # bits of each code that layouts p > 0 keep
PREFIX_TABLE_FROM = 1 << 14  # entries from which a layout gets a prefix table
MIN_PREFIX_BITS = 8
# Chunks of codes bucketed at once: they bound the temporaries of a build at any table size.
BUILD_CHUNK = 1 << 24

_U64 = np.uint64


@dataclass(frozen=True)
class SubstringLayout:
    """One copy of the merged entries, grouped by one substring."""

    words: Array  # layout 0: uint64 codes ascending; p > 0: uint32 packed words
    bits: int  # key bits a lookup resolves (the prefix table's, else the substring's)
    table: Array | None  # prefix table, 2**bits + 1 offsets; None: binary search
    keys: Array | None  # p > 0 without a table: uint32 substring p of each entry, ascending


@dataclass(frozen=True)
class TableView:
    """Everything a search reads, swapped as a whole by the writer."""

    layouts: tuple[SubstringLayout, ...]
    owner: Array  # int32, alongside layouts[0].words
    tag: Array  # int8, alongside layouts[0].words
    delta_codes: Array  # uint64 with spare capacity: entries [0, delta_n) are in use
    delta_owner: Array
    delta_tag: Array
    delta_n: int

    @property
    def merged(self) -> int:
        return len(self.owner)


def empty_delta(capacity: int) -> tuple[Array, Array, Array]:
    """Delta arrays (codes, owner, tag) with room for `capacity` entries."""
    return (
        np.zeros(capacity, dtype=np.uint64),
        np.zeros(capacity, dtype=np.int32),
        np.zeros(capacity, dtype=np.int8),
    )


def near_equal_widths(parts: int) -> list[int]:
    """`parts` substring widths that make 64, the wider ones first (22, 21, 21 for 3)."""
    base, extra = divmod(64, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Substrings:
    """Where each substring lies in a code: both the layouts and the probes that read them
    must cut codes the same way, so the bit arithmetic lives here once."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        self.widths = widths  # from the top of the code
        # substring p is bits [shift_p, shift_p + width_p) of the code; 0 is the top one
        self.shifts = tuple(sum(widths[p + 1 :]) for p in range(len(widths)))

    def substring(self, codes: Array, part: int, bits: int | None = None) -> Array:
        """The top `bits` (default: all) bits of substring `part`, as int64."""
        width = self.widths[part]
        bits = width if bits is None else bits
        shifted = codes >> _U64(self.shifts[part] + width - bits)
        return (shifted & _U64((1 << bits) - 1)).astype(np.int64)

    def packed(self, codes: Array, part: int) -> Array:
        """Layout `part`'s word: the code without substring `part`, cut to its top 32 bits
        (so substring 0 comes first, and a word's top bits find its layout-0 bucket)."""
        shift, width = self.shifts[part], self.widths[part]
        high = codes >> _U64(shift + width)
        rest = (high << _U64(shift)) | (codes & _U64((1 << shift) - 1))
        return (rest >> _U64(64 - width - PACKED_BITS)).astype(np.uint32)


def prefix_bits(entries: int, width: int, bytes_per_entry: float) -> int:
    """Bits of a prefix table taking at most `bytes_per_entry` per entry (0: no table, as
    below PREFIX_TABLE_FROM entries: lookups then binary-search the layout)."""
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


def _grown_table(old: Array, counts: Array, entries: int) -> Array:
    """`old` prefix table with `counts` more entries per key (a merge keeps its size)."""
    table: Array = old.astype(_offsets_dtype(entries))
    table[1:] += np.cumsum(counts).astype(table.dtype)
    return table


class LayoutBuilder:
    """Builds views from scratch and merges their deltas, for one cut of the codes and one
    RAM budget for prefix tables."""

    def __init__(self, substrings: Substrings, prefix_bytes_per_entry: float) -> None:
        self.substrings = substrings
        self.widths = substrings.widths
        self.prefix_bytes_per_entry = prefix_bytes_per_entry

    def prefix_bits(self, entries: int, part: int) -> int:
        return prefix_bits(entries, self.widths[part], self.prefix_bytes_per_entry)

    def build(self, codes: Array, owner: Array, tag: Array, capacity: int) -> TableView:
        """A view of these entries (any order) with an empty delta."""
        order = np.argsort(codes, kind="stable")
        codes, owner, tag = codes[order], owner[order], tag[order]
        layouts = [self._layout0(codes)]
        layouts += [self._layout_from(codes, p) for p in range(1, len(self.widths))]
        return TableView(tuple(layouts), owner, tag, *empty_delta(capacity), 0)

    def merge(self, v: TableView, capacity: int) -> TableView:
        """`v` with its delta moved into the layouts (a sorted insert, linear in the table
        size) and an empty delta of `capacity`."""
        order = np.argsort(v.delta_codes[: v.delta_n], kind="stable")
        new = v.delta_codes[: v.delta_n][order]
        old0 = v.layouts[0]
        at = np.searchsorted(old0.words, new)
        codes = np.insert(old0.words, at, new)
        owner = np.insert(v.owner, at, v.delta_owner[: v.delta_n][order])
        tag = np.insert(v.tag, at, v.delta_tag[: v.delta_n][order])
        layouts = [self._merged_layout0(old0, codes, new)]
        for p in range(1, len(self.widths)):
            layouts.append(self._merged_layout(v.layouts[p], p, codes, new))
        return TableView(tuple(layouts), owner, tag, *empty_delta(capacity), 0)

    def _layout0(self, codes: Array) -> SubstringLayout:
        bits = self.prefix_bits(len(codes), 0)
        if not bits:
            return SubstringLayout(codes, self.widths[0], None, None)
        counts = np.zeros(1 << bits, dtype=np.int64)
        for start in range(0, len(codes), BUILD_CHUNK):
            chunk = codes[start : start + BUILD_CHUNK] >> _U64(64 - bits)
            counts += np.bincount(chunk.astype(np.int64), minlength=1 << bits)
        return SubstringLayout(codes, bits, _counts_to_table(counts, len(codes)), None)

    def _layout_from(self, codes: Array, part: int) -> SubstringLayout:
        """Layout `part` of these codes (layout 0's, ascending), built from scratch."""
        cut = self.substrings
        width, n = self.widths[part], len(codes)
        bits = self.prefix_bits(n, part)
        if not bits:
            keys = cut.substring(codes, part).astype(np.uint32)
            order = np.argsort(keys, kind="stable")
            return SubstringLayout(cut.packed(codes, part)[order], width, None, keys[order])
        # Sort (bucket << 32 | word): within a bucket the order does not matter.
        combined = np.empty(n, dtype=np.uint64)
        counts = np.zeros(1 << bits, dtype=np.int64)
        for start in range(0, n, BUILD_CHUNK):
            chunk = codes[start : start + BUILD_CHUNK]
            bucket = cut.substring(chunk, part, bits)
            counts += np.bincount(bucket, minlength=1 << bits)
            combined[start : start + len(chunk)] = (bucket.astype(np.uint64) << _U64(32)) | (
                cut.packed(chunk, part)
            )
        combined.sort()
        words = combined.astype(np.uint32)  # keeps the low 32 bits
        return SubstringLayout(words, bits, _counts_to_table(counts, n), None)

    def _merged_layout0(self, old: SubstringLayout, codes: Array, new: Array) -> SubstringLayout:
        bits = self.prefix_bits(len(codes), 0)
        if bits and old.table is not None and bits == old.bits:
            counts = np.bincount((new >> _U64(64 - bits)).astype(np.int64), minlength=1 << bits)
            return SubstringLayout(codes, bits, _grown_table(old.table, counts, len(codes)), None)
        return self._layout0(codes)

    def _merged_layout(
        self, old: SubstringLayout, part: int, codes: Array, new: Array
    ) -> SubstringLayout:
        cut = self.substrings
        bits = self.prefix_bits(len(codes), part)
        if old.table is not None and bits == old.bits:
            bucket = cut.substring(new, part, bits)
            order = np.argsort(bucket, kind="stable")
            bucket = bucket[order]
            # Each new entry goes to the end of its bucket's run.
            at = old.table[bucket + 1].astype(np.int64)
            words = np.insert(old.words, at, cut.packed(new, part)[order])
            counts = np.bincount(bucket, minlength=1 << bits)
            return SubstringLayout(words, bits, _grown_table(old.table, counts, len(codes)), None)
        if old.keys is not None and not bits:
            keys = cut.substring(new, part).astype(np.uint32)
            order = np.argsort(keys, kind="stable")
            at = np.searchsorted(old.keys, keys[order], side="right")
            return SubstringLayout(
                np.insert(old.words, at, cut.packed(new, part)[order]),
                self.widths[part],
                None,
                np.insert(old.keys, at, keys[order]),
            )
        # The prefix table changes size: regroup from layout 0 (rare: once per doubling).
        return self._layout_from(codes, part)
