"""A local snapshot of the index, so a restart replays only the tail of the topic.

    data dir/
      manifest.json         which arrays file is current, the topic, the partitions, the next
                            offset per partition it covers, the keypoint file's size then
      snapshot-<gen>.npz    every array of the index (uncompressed: loads at disk speed)
      keypoints.bin         the append-only KeypointStore (not copied: only its size counts)
      postings-<gen>.npy    the descriptor-key segments (postings.py), immutable: the manifest
                            names those the snapshot uses

Writing: the arrays go to a new snapshot-<gen>.npz through a temporary file and a rename,
then the manifest the same way; only then are the previous arrays file and the postings
segments the new manifest does not name removed (between snapshots, merges delete only
segments no manifest names). A crash at any point leaves the previous manifest pointing at
complete files.
A snapshot written for another topic, partition set or SNAPSHOT_SCHEMA is ignored with a
log line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .index import FingerprintIndex
from .postings import KeypointPostings, remove_other_segments
from .verify import KeypointStore

log = logging.getLogger(__name__)

# 2: HammingTable layouts (codes sorted, packed words, prefix tables); 3: postings segments
SNAPSHOT_SCHEMA = 3
MANIFEST = "manifest.json"
KEYPOINTS = "keypoints.bin"


@dataclass(frozen=True)
class Snapshot:
    index: FingerprintIndex
    offsets: dict[int, int]  # partition -> next offset to read


def keypoint_store(folder: Path | None) -> KeypointStore:
    return KeypointStore(folder / KEYPOINTS if folder else None)


def empty_index(folder: Path | None) -> FingerprintIndex:
    """An index that keeps its files in `folder`, whatever an ignored snapshot left there
    removed (its keypoints and postings belong to records that will be replayed again)."""
    store = keypoint_store(folder)
    store.truncate(0)
    if folder is not None:
        remove_other_segments(folder, keep=[])
    return FingerprintIndex(store, KeypointPostings(folder))


def save_snapshot(
    index: FingerprintIndex,
    folder: Path,
    topic: str,
    partitions: list[int],
    offsets: dict[int, int],
) -> Path:
    """Write the index as of `offsets`; the caller keeps writers paused meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    arrays, windows = index.export()
    keypoint_bytes = index.keypoints.flush()
    segments = index.postings.persist(folder)
    generation = time.time_ns()
    name = f"snapshot-{generation}.npz"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as out:
        np.savez(out, **arrays)  # type: ignore[arg-type]
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, folder / name)
    manifest = {
        "schema": SNAPSHOT_SCHEMA,
        "topic": topic,
        "partitions": sorted(partitions),
        "offsets": {str(p): o for p, o in sorted(offsets.items())},
        "arrays": name,
        "keypoints_bytes": keypoint_bytes,
        "postings": segments,
        "window_sets": windows,
        "images": len(index),
        "written_at": time.time(),
    }
    _write_atomically(folder / MANIFEST, json.dumps(manifest).encode())
    for old in folder.glob("snapshot-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    remove_other_segments(folder, keep=segments)
    log.info(
        "snapshot written",
        extra={"images": len(index), "seconds": round(time.perf_counter() - started, 3)},
    )
    return folder / name


def load_snapshot(folder: Path, topic: str, partitions: list[int]) -> Snapshot | None:
    """The index and offsets of the snapshot in `folder`, or None if there is none that fits."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("snapshot manifest unreadable, ignored", extra={"error": str(exc)})
        return None
    why = None
    if manifest.get("schema") != SNAPSHOT_SCHEMA:
        why = f"schema {manifest.get('schema')} is not {SNAPSHOT_SCHEMA}"
    elif manifest.get("topic") != topic:
        why = f"topic {manifest.get('topic')!r} is not {topic!r}"
    elif manifest.get("partitions") != sorted(partitions):
        why = f"partitions {manifest.get('partitions')} are not {sorted(partitions)}"
    if why:
        log.warning("snapshot ignored", extra={"reason": why})
        return None
    started = time.perf_counter()
    try:
        with np.load(folder / manifest["arrays"], allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        postings = KeypointPostings.open(folder, manifest["postings"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("snapshot arrays unreadable, ignored", extra={"error": str(exc)})
        return None
    store = keypoint_store(folder)
    # Keypoints appended after the snapshot belong to records that will be replayed again.
    store.truncate(int(manifest["keypoints_bytes"]))
    remove_other_segments(folder, keep=manifest["postings"])  # replayed again
    index = FingerprintIndex.restore(arrays, manifest["window_sets"], store, postings)
    offsets = {int(p): int(o) for p, o in manifest["offsets"].items()}
    log.info(
        "snapshot loaded",
        extra={"images": len(index), "seconds": round(time.perf_counter() - started, 3)},
    )
    return Snapshot(index, offsets)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
