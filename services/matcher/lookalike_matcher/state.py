"""IndexState: everything a FingerprintIndex holds, in one value, so that a snapshot can
save and load it (snapshot.py) and an index can take over a loaded one whole.

Per image, RAM holds its 64-bit codes in four HammingTables (content pHashes; region
pHashes, the two central windows apart since they are also looked up window by window; and
the thumbnail's average hash, which means nothing to a pHash) and a few fixed-size fields in
numpy arrays (Slots), indexed by the image's slot; keypoints live in a KeypointStore file
and their descriptor keys in KeypointPostings segment files (memory-mapped). A slot freed by
a delete or an update is reused once the tables have dropped its codes (compaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lookalike_shared.contracts import Box, Fingerprint

from .hamming import HammingTable
from .ids import ImageIds
from .postings import KeypointPostings
from .verify import KeypointStore

Array = np.ndarray

CONTENT = -1  # region id of the whole trimmed content
UNTRIMMED = -2  # region id of the whole image, borders included (only when they differ)
SMOOTH = -3  # the average hash of the content's thumbnail (appearance.average_hashes)
CENTRE_WINDOWS = {(0.05, 0.05, 0.9, 0.9), (0.15, 0.15, 0.7, 0.7)}
# Codes added since the last merge are scanned linearly by every search (a content search
# has ~60 query codes, a regions search 3), and a merge costs time linear in the table:
# these bound the scan to about a million code comparisons a search.
CONTENT_DELTA = 16384
REGIONS_DELTA = 262144
CENTRE_DELTA = 65536
# RAM the prefix tables may take, per entry and layout: content has 1 to 3 entries an image,
# regions one per window (23), so regions take less and resolve fewer bits while small.
CONTENT_PREFIX_BYTES = 8.0
REGIONS_PREFIX_BYTES = 0.5
CENTRE_PREFIX_BYTES = 2.0
# The regions table is searched at a radius of 10 only: substrings of 22, 22 and 20 bits,
# probed at radii 3, 3 and 2, find fewer candidates there than 22, 21 and 21 (-20%).
REGIONS_WIDTHS = (22, 22, 20)
TABLES = ("content", "regions", "centre", "smooth")  # also the snapshot's array prefixes

WindowKey = tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class IndexedImage:
    image_id: str
    version: int
    trim: Box
    region_boxes: tuple[Box, ...]
    has_keypoints: bool = False


@dataclass
class Slots:
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
    # a search by catalogue image id starts from (by_id.py).
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


def new_tables() -> dict[str, HammingTable]:
    return {
        "content": HammingTable(
            delta_limit=CONTENT_DELTA, prefix_bytes_per_entry=CONTENT_PREFIX_BYTES
        ),
        "regions": HammingTable(
            delta_limit=REGIONS_DELTA,
            prefix_bytes_per_entry=REGIONS_PREFIX_BYTES,
            widths=REGIONS_WIDTHS,
        ),
        "centre": HammingTable(
            delta_limit=CENTRE_DELTA, prefix_bytes_per_entry=CENTRE_PREFIX_BYTES
        ),
        "smooth": HammingTable(
            delta_limit=CONTENT_DELTA, prefix_bytes_per_entry=CONTENT_PREFIX_BYTES
        ),
    }


@dataclass
class IndexState:
    keypoints: KeypointStore = field(default_factory=KeypointStore)
    postings: KeypointPostings = field(default_factory=KeypointPostings)
    tables: dict[str, HammingTable] = field(default_factory=new_tables)
    slots: Slots = field(default_factory=Slots)
    names: ImageIds = field(default_factory=ImageIds)  # image id <-> slot
    slot_count: int = 0  # slots ever used: [0, slot_count)
    entries: int = 0  # codes of live images in the tables
    dead_slots: list[int] = field(default_factory=list)  # killed in the tables, codes there
    free_slots: list[int] = field(default_factory=list)  # their codes dropped: reusable
    # Distinct region-window layouts (every fingerprint of one version shares one).
    window_sets: list[tuple[Box, ...]] = field(default_factory=list)
    window_set_of: dict[WindowKey, int] = field(default_factory=dict)
    deleted: dict[str, tuple[int, float]] = field(default_factory=dict)  # id -> (version, when)

    @property
    def content(self) -> HammingTable:
        return self.tables["content"]

    @property
    def regions(self) -> HammingTable:
        return self.tables["regions"]

    @property
    def centre(self) -> HammingTable:
        return self.tables["centre"]

    @property
    def smooth(self) -> HammingTable:
        return self.tables["smooth"]

    def window_set(self, windows: WindowKey) -> int:
        """The number of a region-window layout, added if new."""
        known = self.window_set_of.get(windows)
        if known is None:
            known = len(self.window_sets)
            self.window_sets.append(tuple(Box(x=x, y=y, w=w, h=h) for x, y, w, h in windows))
            self.window_set_of[windows] = known
        return known

    def image(self, slot: int) -> IndexedImage:
        s = self.slots
        x, y, w, h = (float(v) for v in s.trim[slot])
        return IndexedImage(
            image_id=self.names.id_of(slot) or "",
            version=int(s.version[slot]),
            trim=Box(x=x, y=y, w=w, h=h),
            region_boxes=self.window_sets[int(s.windows[slot])],
            has_keypoints=bool(s.kp_length[slot] > 0),
        )

    def nbytes(self) -> int:
        """RAM held by the arrays (keypoints and sealed postings excluded: they are in files)."""
        n = self.slot_count
        arrays = sum(getattr(self.slots, name)[:n].nbytes for name in self.slots.names())
        tables = sum(table.nbytes() for table in self.tables.values())
        return int(tables + arrays + self.names.nbytes() + self.postings.ram_bytes())


def content_aspects(fingerprint: Fingerprint) -> tuple[float, float]:
    """Width over height of the trimmed content and of the whole image."""
    whole = fingerprint.width / fingerprint.height
    return whole * fingerprint.trim.w / max(1e-6, fingerprint.trim.h), whole


def hex_to_u64(value: str) -> np.uint64:
    return np.uint64(int(value, 16))
