"""Filling an index with millions of synthetic images fast, for the matcher benchmarks: one
call adds a whole chunk that shares its region windows, straight into the index's state
(the service adds images one by one, through FingerprintIndex.upsert)."""

from __future__ import annotations

import numpy as np

from lookalike_matcher.index import FingerprintIndex
from lookalike_matcher.state import CENTRE_WINDOWS, CONTENT
from lookalike_shared.contracts import Box

Array = np.ndarray


def bulk_add(
    index: FingerprintIndex,
    image_ids: list[str],
    versions: Array,
    content_codes: Array,
    region_codes: Array,
    windows: tuple[Box, ...],
    keypoint_keys: Array | None = None,
    keypoints: bytes = b"",
) -> None:
    """Add many images with the same region windows at once: region_codes is (n, R);
    keypoint_keys (n, K) their descriptor keys (postings.descriptor_keys), if any, and
    keypoints one packed set of keypoints they all share, if any. Not thread-safe: no search
    may run meanwhile."""
    state = index.state
    n, r = region_codes.shape
    first = state.slot_count
    need = first + n
    if need > len(state.slots.version):
        state.slots.grow(max(1024, need, 2 * len(state.slots.version)))
    slots = np.arange(first, need, dtype=np.int32)
    state.names.bind_many(image_ids, slots)
    state.slot_count = need
    s = state.slots
    s.version[first:need] = versions
    s.trim[first:need] = (0.0, 0.0, 1.0, 1.0)
    s.aspect[first:need] = 0.0  # not known: proportions are not checked
    key = tuple((b.x, b.y, b.w, b.h) for b in windows)
    s.windows[first:need] = state.window_set(key)
    s.codes[first:need] = 1 + r
    s.phash[first:need], s.has_phash[first:need] = content_codes, True
    state.entries += n * (1 + r)
    state.content.add(content_codes, slots, CONTENT)
    central = np.array([k in CENTRE_WINDOWS for k in key], dtype=bool)
    number = np.arange(r, dtype=np.int8)
    for table, these in ((state.regions, ~central), (state.centre, central)):
        table.add(
            region_codes[:, these].ravel(),
            np.repeat(slots, int(these.sum())),
            np.tile(number[these], n),
        )
    merge(index)
    if keypoints:
        s.kp_offset[first:need] = state.keypoints.append(keypoints)
        s.kp_length[first:need] = len(keypoints)
    if keypoint_keys is not None:
        state.postings.add_many(slots, keypoint_keys)


def merge(index: FingerprintIndex) -> None:
    """Fold every table's recent codes into its sorted layouts (searches then scan none)."""
    for table in index.state.tables.values():
        table.merge()
