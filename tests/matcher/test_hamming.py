"""HammingTable answers exactly what brute force answers, whatever the table's shape."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike_matcher import hamming_layout, hamming_probe
from lookalike_matcher.hamming import HammingTable, probe_count, split_radius
from lookalike_matcher.hamming_layout import PACKED_BITS, Substrings

Array = np.ndarray


class Mirror:
    """The table's contents kept the plain way: brute force answers from it."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.owner: list[int] = []
        self.tag: list[int] = []
        self.dead: set[int] = set()

    def add(self, table: HammingTable, codes: Array, owner: int | Array, tag: Array) -> None:
        owners = np.broadcast_to(np.asarray(owner), codes.shape)
        table.add(codes, owner, tag)
        self.dead -= set(owners.tolist())
        self.codes += codes.tolist()
        self.owner += owners.tolist()
        self.tag += tag.tolist()

    def kill(self, table: HammingTable, owners: Array) -> None:
        table.kill(owners)
        self.dead |= set(owners.tolist())

    def compact(self, table: HammingTable) -> None:
        table.compact()
        keep = [i for i, o in enumerate(self.owner) if o not in self.dead]
        self.codes = [self.codes[i] for i in keep]
        self.owner = [self.owner[i] for i in keep]
        self.tag = [self.tag[i] for i in keep]

    def answer(self, queries: Array, radii: Array) -> list[tuple[int, int, int, int]]:
        codes = np.array(self.codes, dtype=np.uint64)
        dist = np.bitwise_count(queries[:, None] ^ codes[None, :]).astype(np.int64)
        q, e = np.nonzero(dist <= radii[:, None])
        return sorted(
            (int(a), self.owner[b], self.tag[b], int(dist[a, b]))
            for a, b in zip(q, e, strict=True)
            if self.owner[b] not in self.dead
        )


def answer(table: HammingTable, queries: Array, radii: Array, method: str) -> list[tuple]:
    q, owner, tag, d = table.search(queries, radii, method=method)
    return sorted(zip(q.tolist(), owner.tolist(), tag.tolist(), d.tolist(), strict=True))


def near(rng: np.random.Generator, codes: Array, count: int, flips: int) -> Array:
    """`count` codes, each 0..flips-1 bits away from one of `codes`."""
    out = codes[rng.integers(0, len(codes), count)].copy()
    for j in range(count):
        for bit in rng.choice(64, j % flips, replace=False):
            out[j] ^= np.uint64(1) << np.uint64(int(bit))
    return out


@pytest.mark.parametrize(
    ("widths", "prefix_from", "prefix_bytes"),
    [
        ((22, 21, 21), 1 << 30, 1.0),
        ((22, 21, 21), 600, 1.0),
        ((22, 21, 21), 600, 16.0),
        ((32, 32), 1 << 30, 1.0),
        ((16, 16, 16, 16), 600, 2.0),
        ((22, 22, 20), 600, 1.0),
    ],
    ids=["binary-search", "prefix-tables", "wide-prefix", "two-parts", "four-parts", "uneven"],
)
def test_search_equals_brute_force_through_adds_deletes_compaction_and_reuse(
    monkeypatch: pytest.MonkeyPatch, widths: tuple[int, ...], prefix_from: int, prefix_bytes: float
) -> None:
    monkeypatch.setattr(hamming_layout, "PREFIX_TABLE_FROM", prefix_from)
    parts = len(widths)
    rng = np.random.default_rng(sum(w * w for w in widths) + prefix_from)
    table = HammingTable(delta_limit=400, prefix_bytes_per_entry=prefix_bytes, widths=widths)
    mirror = Mirror()
    base = rng.integers(0, 2**64, 600, dtype=np.uint64, endpoint=False)
    # random codes, clusters of near codes, exact duplicates, and the all-0 / all-1 codes
    codes = np.concatenate(
        [
            rng.integers(0, 2**64, 4000, dtype=np.uint64, endpoint=False),
            near(rng, base, 1200, 6),
            base[:200],
            np.array([0, 0, 2**64 - 1], dtype=np.uint64),
        ]
    )
    rng.shuffle(codes)
    owner = np.arange(len(codes)) // 3  # three codes an owner, tags 0..2
    for start in range(0, len(codes), 450):  # merges as the prefix tables grow
        chunk = slice(start, start + 450)
        mirror.add(table, codes[chunk], owner[chunk], (np.arange(len(codes))[chunk] % 3) - 1)
    queries = np.concatenate(
        [near(rng, codes, 50, 14), rng.integers(0, 2**64, 5, dtype=np.uint64), codes[:2]]
    )

    def probes(radius: int) -> int:
        radii = split_radius(radius, table.widths)
        return sum(probe_count(w, s) for w, s in zip(table.widths, radii, strict=True))

    def check() -> None:
        for radius in (0, 1, 2, 3, 5, 7, 8, 10, 12):
            radii = np.full(len(queries), radius)
            want = mirror.answer(queries, radii)
            # (probing 32-bit substrings at radius 5 or more takes a while: scanned instead)
            methods = ("probe", "scan", "auto") if probes(radius) < 50_000 else ("auto",)
            for method in methods:
                assert answer(table, queries, radii, method) == want, (radius, method)
        for radius in (24, 64):  # too wide for probing: "auto" scans
            radii = np.full(len(queries), radius)
            assert answer(table, queries, radii, "auto") == mirror.answer(queries, radii)
        radii = rng.integers(0, 11 if parts > 2 else 7, len(queries))  # a radius per query
        assert answer(table, queries, radii, "probe") == mirror.answer(queries, radii)

    check()
    mirror.kill(table, rng.choice(owner.max() + 1, 800, replace=False))
    check()  # dead owners are skipped before compaction...
    mirror.compact(table)
    check()  # ...and gone after it
    dead = np.array(sorted(mirror.dead))
    reused = dead[:50]  # owner numbers come alive again with new codes
    fresh = near(rng, queries, 150, 4)
    mirror.add(table, fresh, np.repeat(reused, 3), np.zeros(150, np.int8))
    check()  # some in the delta
    table.merge()
    check()


@pytest.mark.parametrize("chunk", [7, 300, 1 << 22], ids=["part-rows", "rows", "one-block"])
def test_linear_scan_in_blocks_answers_in_query_then_position_order(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Blocks bound the scan's temporaries (hamming_probe.SCAN_CHUNK); the answer and its order
    # (the index breaks ties by it) must not depend on them: the same as in one block, in
    # query order, and every entry within the radius.
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 2**64, 50, dtype=np.uint64, endpoint=False)
    queries = np.concatenate([near(rng, codes, 12, 20), codes[:3]])
    radii = rng.integers(0, 30, len(queries))
    table = HammingTable(delta_limit=10)
    table.add(codes, np.arange(len(codes)), 0)
    table.merge()
    in_one_block = [a.tolist() for a in table.search(queries, radii, method="scan")]
    monkeypatch.setattr(hamming_probe, "SCAN_CHUNK", chunk)
    got = [a.tolist() for a in table.search(queries, radii, method="scan")]
    assert got == in_one_block
    assert got[0] == sorted(got[0])
    dist = np.bitwise_count(queries[:, None] ^ codes[None, :]).astype(np.int64)
    q, owner = np.nonzero(dist <= radii[:, None])
    want = sorted(zip(q.tolist(), owner.tolist(), dist[q, owner].tolist(), strict=True))
    assert sorted(zip(got[0], got[1], got[3], strict=True)) == want


def test_split_radius_makes_pigeonhole_cover_every_distance() -> None:
    for widths in ([32, 32], [22, 21, 21], [16, 16, 16, 16]):
        for radius in range(65):
            radii = split_radius(radius, widths)
            assert sum(s + 1 for s in radii) == radius + 1
            assert max(radii) - min(radii) <= 1 and min(radii) >= -1
    assert split_radius(10, [22, 21, 21]) == [3, 3, 2]
    assert split_radius(8, [22, 21, 21]) == [2, 2, 2]
    assert split_radius(0, [22, 21, 21]) == [0, -1, -1]


@pytest.mark.parametrize(
    "widths",
    [(22, 21, 21), (32, 32), (16, 16, 16, 16), (22, 22, 20)],
    ids=["three-parts", "two-parts", "four-parts", "uneven"],
)
def test_substrings_cut_codes_as_the_bit_strings_say(widths: tuple[int, ...]) -> None:
    # Layouts and probes both cut codes through Substrings. Checked against plain bit
    # strings, a wrong cut is named here, not only seen as a missed code in brute force.
    rng = np.random.default_rng(len(widths))
    codes = np.concatenate(
        [
            rng.integers(0, 2**64, 200, dtype=np.uint64, endpoint=False),
            np.array([0, 2**64 - 1, 1, 2**63], dtype=np.uint64),
        ]
    )
    cut = Substrings(widths)
    starts = [sum(widths[:p]) for p in range(len(widths))]  # from the top, as text
    for p, width in enumerate(widths):
        substring = cut.substring(codes, p).tolist()
        top3 = cut.substring(codes, p, 3).tolist()
        packed = cut.packed(codes, p).tolist()
        for j, code in enumerate(codes.tolist()):
            text = format(code, "064b")
            mine = text[starts[p] : starts[p] + width]
            assert substring[j] == int(mine, 2)
            assert top3[j] == int(mine[:3], 2)
            rest = text[: starts[p]] + text[starts[p] + width :]
            assert packed[j] == int(rest[:PACKED_BITS], 2), (p, code)


def test_snapshot_arrays_load_without_sorting_and_answer_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hamming_layout, "PREFIX_TABLE_FROM", 500)
    rng = np.random.default_rng(3)
    table = HammingTable(delta_limit=300)
    codes = rng.integers(0, 2**64, 3000, dtype=np.uint64, endpoint=False)
    table.add(codes, np.arange(3000) // 2, np.arange(3000) % 2)
    table.kill(np.arange(100))
    queries = near(rng, codes, 40, 12)
    arrays = table.arrays()
    loaded = HammingTable.from_arrays(arrays, delta_limit=300)
    # The loaded table holds the very arrays it was given (a restart maps them, no copy).
    again = loaded.arrays()
    layouts = [k for k in arrays if k == "codes" or k.startswith("words")]
    assert len(layouts) == 3
    assert all(np.shares_memory(again[k], arrays[k]) for k in layouts)
    assert answer(loaded, queries, np.full(40, 10), "probe") == answer(
        table, queries, np.full(40, 10), "probe"
    )
    # other settings (wider prefix tables): the layouts are rebuilt, the answers stay
    rebuilt = HammingTable.from_arrays(arrays, prefix_bytes_per_entry=16.0)
    assert rebuilt.nbytes() > loaded.nbytes()
    assert answer(rebuilt, queries, np.full(40, 10), "probe") == answer(
        table, queries, np.full(40, 10), "probe"
    )


def test_prefix_tables_grow_with_the_table_not_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hamming_layout, "PREFIX_TABLE_FROM", 1000)
    rng = np.random.default_rng(5)
    table = HammingTable(delta_limit=100, prefix_bytes_per_entry=0.5)
    table.add(rng.integers(0, 2**64, 900, dtype=np.uint64, endpoint=False), 0, 0)
    small = table.nbytes()
    assert small < 900 * 40  # no fixed-size tables while small
    for _ in range(30):
        table.add(rng.integers(0, 2**64, 1000, dtype=np.uint64, endpoint=False), 0, 0)
    table.merge()
    per_entry = table.nbytes() / len(table)
    # 8 + 4 + 1 bytes in layout 0, 4 in each other layout, prefix tables within budget (a
    # layout without its table keeps sorted keys instead, which would exceed it: ~29 bytes)
    assert per_entry <= 8 + 4 + 1 + 4 * 2 + 3 * 0.5 + 0.1
