"""FingerprintIndex: 64-bit pHashes of whole images and of regions, searched by Hamming
distance, with add, update and delete in place.

Each catalogue image contributes entries: its whole (border-trimmed) content and a set of
overlapping regions. A query brings the pHash of its content in all 8 flips and quarter
turns, and the pHashes of its own regions. Three kinds of pairs are compared:
- query content (any of 8 orientations) vs catalogue content: resized, recoloured, framed,
  mirrored or turned copies;
- query content vs catalogue regions: the query is a crop of the artwork;
- query regions vs catalogue content: the query shows the artwork with more around it.
The best pair per image decides; its distance maps to a calibrated 0-100 score.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from lookalike_shared.contracts import (
    DIHEDRAL_TRANSFORMS,
    Box,
    Fingerprint,
    MatcherMatch,
    Overlap,
)

CONTENT = -1  # region id of the whole trimmed content
DUPLICATE_DISTANCE = 10  # content vs content: at most this many of 64 bits differ
REGION_DUPLICATE_DISTANCE = 8  # region pairs are many more comparisons: be stricter
SIMILAR_DISTANCE = 16


@dataclass(frozen=True)
class IndexedImage:
    image_id: str
    version: int
    trim: Box
    region_boxes: tuple[Box, ...]


def hex_to_u64(value: str) -> np.uint64:
    return np.uint64(int(value, 16))


class FingerprintIndex:
    """Thread-safe for one writer and concurrent readers (writes take a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._images: dict[int, IndexedImage] = {}
        self._slot_of: dict[str, int] = {}
        self._next_slot = 0
        self._hashes = np.zeros(0, dtype=np.uint64)
        self._slots = np.zeros(0, dtype=np.int64)
        self._regions = np.zeros(0, dtype=np.int16)
        self._dead = 0  # entries whose image was deleted or replaced, compacted lazily

    def __len__(self) -> int:
        return len(self._slot_of)

    def get(self, image_id: str) -> IndexedImage | None:
        slot = self._slot_of.get(image_id)
        return None if slot is None else self._images[slot]

    def upsert(self, image_id: str, version: int, fingerprint: Fingerprint) -> bool:
        """Add or replace; an older or equal version than the one held changes nothing."""
        with self._lock:
            current = self.get(image_id)
            if current is not None and current.version >= version:
                return False
            if current is not None:
                self._remove_locked(image_id)
            slot = self._next_slot
            self._next_slot += 1
            self._slot_of[image_id] = slot
            self._images[slot] = IndexedImage(
                image_id, version, fingerprint.trim, tuple(r.box for r in fingerprint.regions)
            )
            hashes = [hex_to_u64(fingerprint.phash)] + [
                hex_to_u64(r.phash) for r in fingerprint.regions
            ]
            regions = [CONTENT, *range(len(fingerprint.regions))]
            self._hashes = np.concatenate([self._hashes, np.array(hashes, dtype=np.uint64)])
            self._slots = np.concatenate([self._slots, np.full(len(hashes), slot, dtype=np.int64)])
            self._regions = np.concatenate([self._regions, np.array(regions, dtype=np.int16)])
            return True

    def delete(self, image_id: str) -> bool:
        with self._lock:
            return self._remove_locked(image_id)

    def _remove_locked(self, image_id: str) -> bool:
        slot = self._slot_of.pop(image_id, None)
        if slot is None:
            return False
        del self._images[slot]
        dead = self._slots == slot
        self._slots[dead] = -1
        self._dead += int(dead.sum())
        if self._dead > len(self._hashes) // 2:
            keep = self._slots >= 0
            self._hashes, self._slots, self._regions = (
                self._hashes[keep],
                self._slots[keep],
                self._regions[keep],
            )
            self._dead = 0
        return True

    def search(
        self, query: Fingerprint, limit: int = 20, include_similar: bool = True
    ) -> list[MatcherMatch]:
        hashes, slots, regions = self._hashes, self._slots, self._regions  # a consistent view
        if len(hashes) == 0:
            return []
        is_content = regions == CONTENT
        best: dict[int, tuple[float, int, str, int, int]] = {}

        def consider(
            distances: np.ndarray,
            threshold: int,
            transform: str,
            query_region: int,
            entry_mask: np.ndarray,
        ) -> None:
            hits = np.nonzero((distances <= threshold) & entry_mask & (slots >= 0))[0]
            for i in hits.tolist():
                d = int(distances[i])
                # Region pairs get a small penalty so a whole-image match wins ties.
                rank = d + (0.5 if regions[i] != CONTENT or query_region != CONTENT else 0.0)
                slot = int(slots[i])
                if slot not in best or rank < best[slot][0]:
                    best[slot] = (rank, d, transform, int(regions[i]), query_region)

        limit_content = SIMILAR_DISTANCE if include_similar else DUPLICATE_DISTANCE
        for transform, value in zip(DIHEDRAL_TRANSFORMS, query.phash_dihedral, strict=True):
            distances = np.bitwise_count(hashes ^ hex_to_u64(value))
            consider(distances, limit_content, transform, CONTENT, is_content)
            consider(distances, REGION_DUPLICATE_DISTANCE, transform, CONTENT, ~is_content)
        for q_region, region in enumerate(query.regions):
            distances = np.bitwise_count(hashes ^ hex_to_u64(region.phash))
            consider(distances, REGION_DUPLICATE_DISTANCE, "identity", q_region, is_content)

        matches = []
        for slot, (_, distance, transform, region, q_region) in best.items():
            image = self._images.get(slot)
            if image is None:
                continue  # deleted while we searched
            matches.append(self._explain(image, query, distance, transform, region, q_region))
        matches.sort(key=lambda m: (-m.score, m.image_id))
        return matches[:limit]

    @staticmethod
    def _explain(
        image: IndexedImage,
        query: Fingerprint,
        distance: int,
        transform: str,
        region: int,
        q_region: int,
    ) -> MatcherMatch:
        target_box = image.region_boxes[region] if region != CONTENT else Box(x=0, y=0, w=1, h=1)
        query_box = query.regions[q_region].box if q_region != CONTENT else Box(x=0, y=0, w=1, h=1)
        # Boxes are in the trimmed content; report them in the full catalogue image.
        trim = image.trim
        in_target = Box(
            x=trim.x + target_box.x * trim.w,
            y=trim.y + target_box.y * trim.h,
            w=target_box.w * trim.w,
            h=target_box.h * trim.h,
        )
        threshold = (
            DUPLICATE_DISTANCE
            if region == CONTENT and q_region == CONTENT
            else REGION_DUPLICATE_DISTANCE
        )
        score = max(0.0, min(100.0, 100.0 * (1 - distance / 32)))
        q_trim = query.trim
        return MatcherMatch(
            image_id=image.image_id,
            version=image.version,
            match="duplicate" if distance <= threshold else "similar",
            score=round(score, 1),
            distance=distance,
            transform=transform,
            overlap=Overlap(
                query=round(query_box.w * query_box.h * q_trim.w * q_trim.h, 3),
                target=round(in_target.w * in_target.h, 3),
            ),
            region=Box(
                x=round(in_target.x, 4),
                y=round(in_target.y, 4),
                w=round(in_target.w, 4),
                h=round(in_target.h, 4),
            ),
        )
