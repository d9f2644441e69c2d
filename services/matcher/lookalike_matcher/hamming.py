"""HammingTable: exact range search over 64-bit codes by multi-index hashing (MIH).

A code is cut into `parts` disjoint substrings (22, 21 and 21 bits). If two codes are within
Hamming distance r, then for any radii s_p with sum(s_p + 1) > r at least one substring p is
within s_p (pigeonhole), so a search probes every key within s_p of the query's substring p,
in a copy of the table grouped by substring p, and checks what it finds with the whole code.
Radius 10 over three substrings probes radii 3, 3 and 2 (`split_radius`).

The work is split in three modules:

    hamming_layout  the sorted copies grouped by each substring (layouts, prefix tables),
                    built from scratch or merged with the delta
    hamming_probe   which entries of those layouts lie within a radius: probes, or a linear
                    scan when that is cheaper
    hamming         (this one) the table that owns them: writes, searches over the layouts
                    and the delta, dead owners, and the snapshot arrays

Memory per entry: 8 + 4 + 1 + 4 * (parts - 1) bytes, plus the prefix tables; entries added
since the last merge wait in a delta, unsorted, scanned linearly. Searches are exact: a test
compares them with brute force.

Life cycle of an entry:

    add --> delta --merge (sorted insert into every layout, linear in the table)--> layouts
    kill(owner) --> the owner is marked dead: its entries are skipped by every search
    compact --> entries of dead owners are dropped (their owner numbers may then be reused)

Searches read one `TableView`, swapped as a whole by the writer; arrays are replaced, never
changed in place where a reader could see it (entries past the delta's length are invisible).
"""

from __future__ import annotations

import numpy as np

from .hamming_layout import (
    LayoutBuilder,
    SubstringLayout,
    Substrings,
    TableView,
    empty_delta,
    near_equal_widths,
)
from .hamming_probe import find_merged, probe_count, probe_masks, scan, split_radius

__all__ = ["DEFAULT_PARTS", "HammingTable", "probe_count", "probe_masks", "split_radius"]

Array = np.ndarray

DEFAULT_PARTS = 3  # 22 + 21 + 21 bits: about log2 of the entries of a large table
MIN_DELTA_CAPACITY = 1024  # a delta's room when empty (it doubles as entries arrive)


def _grown_dead(dead: Array, owners: int) -> Array:
    """`dead` with room for owner numbers below `owners` (new ones alive)."""
    if owners <= len(dead):
        return dead
    grown = np.zeros(owners, dtype=bool)
    grown[: len(dead)] = dead
    return grown


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
        self.widths = list(widths) if widths else near_equal_widths(parts)
        self.parts = len(self.widths)
        if sum(self.widths) != 64 or not all(16 <= w <= 32 for w in self.widths):
            raise ValueError("substrings of 16 to 32 bits that make 64")
        self._cut = Substrings(tuple(self.widths))
        self.shifts = list(self._cut.shifts)
        self.delta_limit = delta_limit
        # while a backlog is replayed: let the delta grow to this share of the merged entries
        self.delta_share = 0.0
        self.prefix_bytes_per_entry = prefix_bytes_per_entry
        self._layouts = LayoutBuilder(self._cut, prefix_bytes_per_entry)
        self._dead = np.zeros(1024, dtype=bool)  # by owner
        self._view = self._layouts.build(
            np.zeros(0, np.uint64), np.zeros(0, np.int32), np.zeros(0, np.int8), MIN_DELTA_CAPACITY
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
            self._dead = _grown_dead(self._dead, max(2 * len(self._dead), top + 1))
        self._dead[owner] = False
        v = self._view
        dc, do, dt = v.delta_codes, v.delta_owner, v.delta_tag
        if v.delta_n + k > len(dc):
            dc, do, dt = empty_delta(max(2 * len(dc), v.delta_n + k))
            dc[: v.delta_n] = v.delta_codes[: v.delta_n]
            do[: v.delta_n] = v.delta_owner[: v.delta_n]
            dt[: v.delta_n] = v.delta_tag[: v.delta_n]
        # Entries past delta_n are invisible to readers, so filling them in place is safe.
        dc[v.delta_n : v.delta_n + k] = codes
        do[v.delta_n : v.delta_n + k] = owner
        dt[v.delta_n : v.delta_n + k] = tag
        self._view = TableView(v.layouts, v.owner, v.tag, dc, do, dt, v.delta_n + k)
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
        # a delta that grew during a backlog shrinks back to what a full one needs
        capacity = min(len(v.delta_codes), max(MIN_DELTA_CAPACITY, self.delta_limit + 1))
        self._view = self._layouts.merge(v, capacity)

    def compact(self) -> None:
        """Drop the entries of dead owners (whose numbers `add` may then reuse)."""
        self.merge()
        v = self._view
        alive = ~self._dead[v.owner]
        if alive.all():
            return
        self._view = self._layouts.build(
            v.layouts[0].words[alive], v.owner[alive], v.tag[alive], len(v.delta_codes)
        )

    # --- reads -------------------------------------------------------------------------------

    def search(
        self, queries: Array, radius: int | Array, method: str = "auto"
    ) -> tuple[Array, Array, Array, Array]:
        """Every live entry within `radius` (one per query, or one for all) of a query:
        (query number, owner, tag, distance), each entry once per query.

        method: "probe" (multi-index lookups), "scan" (linear) or "auto" (the cheaper)."""
        v = self._view  # one view throughout: a merge meanwhile swaps in another
        dead = self._dead
        queries = np.ascontiguousarray(queries, dtype=np.uint64).ravel()
        radii = np.broadcast_to(np.asarray(radius, dtype=np.int64), queries.shape)
        found: list[tuple[Array, Array, Array, Array]] = []
        if v.merged and len(queries):
            q, at, d = find_merged(v, self._cut, queries, radii, method)
            found.append((q, v.owner[at], v.tag[at], d))
        if v.delta_n and len(queries):
            q, at, d = scan(v.delta_codes[: v.delta_n], queries, radii)
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

    # --- snapshot ----------------------------------------------------------------------------
    # Keys: codes, owner, tag, dead, widths, and per layout p bits{p}, words{p} (p > 0),
    # table{p} or keys{p}. Snapshots on disk use them: rename none, only add.

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
        if len(owner):
            table._dead = _grown_dead(table._dead, int(owner.max()) + 1)
        layouts = table._stored_layouts(arrays, codes)
        if layouts is not None and bool(np.all(codes[:-1] <= codes[1:])):
            table._view = TableView(layouts, owner, tag, *empty_delta(MIN_DELTA_CAPACITY), 0)
        else:
            table._view = table._layouts.build(codes, owner, tag, MIN_DELTA_CAPACITY)
        return table

    def _stored_layouts(
        self, arrays: dict[str, Array], codes: Array
    ) -> tuple[SubstringLayout, ...] | None:
        """The layouts in `arrays`, taken as they are (a restart maps them, no copy), or None
        when one is missing or was made for another prefix-table budget."""
        n = len(codes)
        layouts: list[SubstringLayout] = []
        for p in range(self.parts):
            bits = self._layouts.prefix_bits(n, p)
            words = codes if p == 0 else arrays.get(f"words{p}")
            stored = arrays.get(f"table{p}")
            keys = arrays.get(f"keys{p}")
            saved_bits = int(arrays[f"bits{p}"]) if f"bits{p}" in arrays else -1
            ok = words is not None and len(words) == n and saved_bits == (bits or self.widths[p])
            ok = ok and (stored is not None if bits else (p == 0 or keys is not None))
            if not ok:
                return None
            layouts.append(SubstringLayout(np.asarray(words), saved_bits, stored, keys))
        return tuple(layouts)
