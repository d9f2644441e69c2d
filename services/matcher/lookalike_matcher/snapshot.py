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

from .hamming import HammingTable
from .ids import ImageIds
from .postings import KeypointPostings, remove_other_segments
from .state import TABLES, IndexState, new_tables
from .verify import KeypointStore

log = logging.getLogger(__name__)

# 2: HammingTable layouts (codes sorted, packed words, prefix tables); 3: postings segments
SNAPSHOT_SCHEMA = 3
MANIFEST = "manifest.json"
KEYPOINTS = "keypoints.bin"


Array = np.ndarray


@dataclass(frozen=True)
class Snapshot:
    state: IndexState
    offsets: dict[int, int]  # partition -> next offset to read


def keypoint_store(folder: Path | None) -> KeypointStore:
    return KeypointStore(folder / KEYPOINTS if folder else None)


def empty_state(folder: Path | None) -> IndexState:
    """An index state that keeps its files in `folder`, whatever an ignored snapshot left
    there removed (its keypoints and postings belong to records that will be replayed)."""
    store = keypoint_store(folder)
    store.truncate(0)
    if folder is not None:
        remove_other_segments(folder, keep=[])
    return IndexState(keypoints=store, postings=KeypointPostings(folder))


def export_state(state: IndexState) -> tuple[dict[str, Array], list[list[list[float]]]]:
    """Arrays of the whole state and the region-window layouts (call with writes paused)."""
    n = state.slot_count
    slots = state.slots
    arrays = {f"slot_{name}": getattr(slots, name)[:n] for name in slots.names()}
    for prefix in TABLES:
        for name, array in state.tables[prefix].arrays().items():
            arrays[f"{prefix}_{name}"] = array
    for name, array in state.names.arrays(n).items():
        arrays[f"ids_{name}"] = array
    arrays["dead_slots"] = np.array(state.dead_slots, dtype=np.int64)
    arrays["free_slots"] = np.array(state.free_slots, dtype=np.int64)
    deleted = sorted(state.deleted.items())
    arrays["deleted_ids"] = np.array([i for i, _ in deleted], dtype=np.str_)
    arrays["deleted_versions"] = np.array([v for _, (v, _) in deleted], dtype=np.int64)
    arrays["deleted_at"] = np.array([at for _, (_, at) in deleted], dtype=np.float64)
    windows = [[[b.x, b.y, b.w, b.h] for b in boxes] for boxes in state.window_sets]
    return arrays, windows


def restore_state(
    arrays: dict[str, Array],
    windows: list[list[list[float]]],
    keypoints: KeypointStore,
    postings: KeypointPostings | None = None,
) -> IndexState:
    """The state export_state wrote; fields and tables added since stay empty."""
    state = IndexState(keypoints=keypoints, postings=postings or KeypointPostings())
    for boxes in windows:
        state.window_set(tuple((x, y, w, h) for x, y, w, h in boxes))
    n = len(arrays["ids_length"])
    state.slots.grow(max(1024, n))
    for name in state.slots.names():
        if f"slot_{name}" in arrays:
            getattr(state.slots, name)[:n] = arrays[f"slot_{name}"]
    state.names = ImageIds.from_arrays(
        {k[4:]: v for k, v in arrays.items() if k.startswith("ids_")}
    )
    state.slot_count = n
    state.dead_slots = arrays["dead_slots"].tolist()
    state.free_slots = arrays["free_slots"].tolist()
    if "deleted_ids" in arrays:
        state.deleted = {
            str(i): (int(v), float(at))
            for i, v, at in zip(
                arrays["deleted_ids"], arrays["deleted_versions"], arrays["deleted_at"], strict=True
            )
        }
    state.entries = int(state.slots.codes[state.names.live_slots()].sum())
    empty = new_tables()
    for prefix in TABLES:
        mine = {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix)}
        if "codes" in mine:  # else a table the writer did not have: empty
            like = empty[prefix]
            state.tables[prefix] = HammingTable.from_arrays(
                mine,
                delta_limit=like.delta_limit,
                prefix_bytes_per_entry=like.prefix_bytes_per_entry,
                widths=tuple(like.widths),
            )
    return state


def save_snapshot(
    state: IndexState,
    folder: Path,
    topic: str,
    partitions: list[int],
    offsets: dict[int, int],
) -> Path:
    """Write the index as of `offsets`; the caller keeps writers paused meanwhile."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    arrays, windows = export_state(state)
    keypoint_bytes = state.keypoints.flush()
    segments = state.postings.persist(folder)
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
        "images": len(state.names),
        "written_at": time.time(),
    }
    _write_atomically(folder / MANIFEST, json.dumps(manifest).encode())
    for old in folder.glob("snapshot-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    remove_other_segments(folder, keep=segments)
    log.info(
        "snapshot written",
        extra={"images": len(state.names), "seconds": round(time.perf_counter() - started, 3)},
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
    state = restore_state(arrays, manifest["window_sets"], store, postings)
    offsets = {int(p): int(o) for p, o in manifest["offsets"].items()}
    log.info(
        "snapshot loaded",
        extra={"images": len(state.names), "seconds": round(time.perf_counter() - started, 3)},
    )
    return Snapshot(state, offsets)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
