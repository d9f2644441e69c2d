"""Matcher benchmark: search latency, memory, add/delete throughput and restart time at
millions of indexed images, against faiss IndexBinaryFlat exact search in the same run.

The index is filled with synthetic fingerprints (random 64-bit content and region codes,
the region-window layout of real fingerprints; up to --postings-up-to images, descriptor-key
postings too, in segment files on disk as the service keeps them, and keypoints to verify)
and real fingerprints of the sample images are planted among them; queries are transformed
copies of those (resized, cropped, framed, flipped, turned), fingerprinted once up front.
For each size:

- hash stage: the matcher's multi-index-hashing lookups (every query code at its radius)
  vs faiss IndexBinaryFlat range search with the same codes and radii on the same entries,
  one thread each; wall clock, and the searching thread's CPU time (on a shared machine
  the wall p99 also counts time other processes held the core);
- local stage: the images sharing the most descriptor keys with the query (postings.py).
  Synthetic postings follow real keys' skew: each synthetic keypoint's keys are those of a
  real keypoint with probability REAL_KEY_SHARE, else uniform; all synthetic images share
  one set of random keypoints, so verifying one costs what an unrelated image does;
- full search: hash stage + local stage + verification (256-bit hash, ORB + RANSAC), timed
  after one untimed pass over the queries (its figures are printed apart: it maps the
  postings' pages);
- RAM per image: the index's arrays and id map, divided by the images (postings are on
  disk: their bytes per image are shown apart);
- add and delete throughput through upsert()/delete() of real fingerprints (enough adds
  that the table merges they cause are in the time);
- restart: snapshot written, then loaded into a fresh index (at the smallest size >= 1M).

Before that, RAM per real image: a few thousand FingerprintRecords of real fingerprints
(originals and transformed copies), parsed and applied as the replay does, into an index
with its keypoint and postings files on disk as the service runs; the process's private RSS
growth per image, as a soak would see it, next to what the index counts.

    .venv/bin/python bench/matcher.py                      # 1M and 10M (~20 min, ~16 GB)
    .venv/bin/python bench/matcher.py --quick              # 100k and 1M
    .venv/bin/python bench/matcher.py --sizes 2000000 --queries 50
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import itertools
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bulk_load import bulk_add, merge
from datasets import MIN_ORIGINAL_SIDE, package_samples, usable
from robustness import FAMILIES

from lookalike_matcher import candidates as index_module
from lookalike_matcher.allocator import fix_mmap_threshold
from lookalike_matcher.appearance import QueryAppearance
from lookalike_matcher.index import FingerprintIndex, SearchTrace
from lookalike_matcher.postings import KEY_BYTES, KEY_TABLES, KeypointPostings, descriptor_keys
from lookalike_matcher.snapshot import keypoint_store, load_snapshot, save_snapshot
from lookalike_matcher.state import CENTRE_WINDOWS, IndexState, hex_to_u64
from lookalike_matcher.verify import STORED_KEYPOINTS, Keypoints
from lookalike_shared.contracts import Box, Fingerprint, FingerprintRecord
from lookalike_shared.fingerprint import REGION_WINDOWS, fingerprint_bytes, pack_keypoints
from lookalike_shared.imaging import ImageRejected

QUERY_FAMILIES = ("resize_50", "jpeg_30", "crop_20", "crop_50", "border_10", "flip", "rotate_90")
REAL_KEY_SHARE = 0.1
KEY_CHUNK = 100_000  # synthetic images whose postings are made (and sorted) at once


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def real_fingerprints() -> tuple[list[Fingerprint], list[tuple[int, Fingerprint]]]:
    """(fingerprints of the originals, (original number, query fingerprint) pairs)."""
    originals, queries = [], []
    # A sample too small to be a catalogue image (skimage's 10x15 multipage.tif) is left out.
    samples = [p for p in package_samples() if usable(p, MIN_ORIGINAL_SIDE)]
    for i, path in enumerate(samples):
        data = path.read_bytes()
        try:
            originals.append(fingerprint_bytes(data))
        except ImageRejected:  # a sample file that is no picture the service would take
            continue
        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")
        for family in QUERY_FAMILIES:
            changed = FAMILIES[family](rgb, random.Random(i))
            buf = io.BytesIO()
            changed.save(buf, "JPEG", quality=30 if family == "jpeg_30" else 90)
            try:
                query = fingerprint_bytes(buf.getvalue(), query=True)
            except ImageRejected:  # a copy of a tiny sample, too small to fingerprint
                continue
            queries.append((len(originals) - 1, query))
    return originals, queries


def query_codes(fp: Fingerprint) -> list[tuple[str, np.ndarray, int]]:
    """The (table, codes, radius) lookups candidates.by_hashes makes for `fp`."""
    dihedral = np.array(
        [hex_to_u64(h) for h in fp.phash_dihedral + (fp.untrimmed_phash_dihedral or [])],
        dtype=np.uint64,
    )
    probes = np.array([hex_to_u64(h) for h in fp.phash_probes or []], dtype=np.uint64)
    regions = np.array([hex_to_u64(r.phash) for r in fp.regions], dtype=np.uint64)
    centre = [
        k
        for k, r in enumerate(fp.regions)
        if (r.box.x, r.box.y, r.box.w, r.box.h) in CENTRE_WINDOWS
    ]
    turned = np.array([hex_to_u64(h) for h in fp.turned_centre or []], dtype=np.uint64)
    unmarked = np.array([hex_to_u64(fp.unmarked_phash)] if fp.unmarked_phash else [], np.uint64)
    looks = QueryAppearance.of(fp)
    smooth = looks.average_hashes if looks is not None else np.zeros(0, np.uint64)
    identity = np.arange(len(dihedral)) % 8 == 0
    return [
        ("content", dihedral[identity], index_module.CONTENT_RADIUS),
        ("content", dihedral[~identity], index_module.TURN_RADIUS),
        ("content", probes, index_module.PROBE_RADIUS),
        ("content", unmarked, index_module.TURN_RADIUS),
        ("smooth", smooth, index_module.SMOOTH_RADIUS),
        ("content", regions, index_module.REGION_RADIUS),
        ("regions", dihedral[:1], index_module.CROP_RADIUS),
        ("centre", dihedral[:1], index_module.CROP_RADIUS),
        ("centre", regions[centre], index_module.REGION_RADIUS),
        ("centre", turned, index_module.REGION_RADIUS),
    ]


def real_key_pool(fingerprints: list[Fingerprint]) -> np.ndarray:
    """(n, KEY_TABLES) descriptor keys of the keypoints real catalogue images store."""
    return np.concatenate(
        [
            descriptor_keys(Keypoints.from_bytes(Keypoints.raw_from_text(fp.keypoints)).descriptors)
            for fp in fingerprints
            if fp.keypoints
        ]
    )


def synthetic_keys(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, STORED_KEYPOINTS * KEY_TABLES) keys: a real keypoint's, or uniform."""
    shape = (k, STORED_KEYPOINTS)
    real = pool[rng.integers(0, len(pool), shape)]
    tables = np.arange(KEY_TABLES, dtype=np.uint64) << np.uint64(8 * KEY_BYTES)
    uniform = rng.integers(0, 1 << (8 * KEY_BYTES), (*shape, KEY_TABLES), dtype=np.uint64)
    keys = np.where(rng.random((*shape, 1)) < REAL_KEY_SHARE, real, uniform | tables)
    return keys.reshape(k, -1)


def random_keypoints(rng: np.random.Generator) -> bytes:
    xy = rng.uniform(0, 255, (STORED_KEYPOINTS, 2)).astype(np.float32)
    descriptors = rng.integers(0, 256, (STORED_KEYPOINTS, 32), dtype=np.uint8)
    return Keypoints.raw_from_text(pack_keypoints(256, 256, xy, descriptors))


def fill(
    index: FingerprintIndex,
    n: int,
    rng: np.random.Generator,
    chunk: int,
    key_pool: np.ndarray | None,
) -> float:
    windows = tuple(Box(x=x, y=y, w=w, h=h) for x, y, w, h in REGION_WINDOWS)
    keypoints = random_keypoints(rng) if key_pool is not None else b""
    chunk = min(chunk, KEY_CHUNK) if key_pool is not None else chunk
    started = time.perf_counter()
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        bulk_add(
            index,
            [f"s{j}" for j in range(start, start + k)],
            np.ones(k, dtype=np.int64),
            rng.integers(0, 2**64, k, dtype=np.uint64, endpoint=False),
            rng.integers(0, 2**64, (k, len(windows)), dtype=np.uint64, endpoint=False),
            windows,
            keypoint_keys=synthetic_keys(key_pool, k, rng) if key_pool is not None else None,
            keypoints=keypoints,
        )
    return time.perf_counter() - started


def faiss_tables(index: FingerprintIndex) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)
    out = {}
    for name in ("content", "regions", "centre", "smooth"):
        table = index.state.tables[name]
        flat = faiss.IndexBinaryFlat(64)
        codes = table.arrays()["codes"]
        # faiss reads each code as 8 bytes; the byte order is the same for queries.
        flat.add(np.ascontiguousarray(codes).view(np.uint8).reshape(-1, 8))
        out[name] = flat
    return out


def faiss_search(tables: dict[str, Any], fp: Fingerprint) -> int:
    found = 0
    for name, codes, radius in query_codes(fp):
        if len(codes) == 0:
            continue
        x = np.ascontiguousarray(codes).view(np.uint8).reshape(-1, 8)
        lims, _, _ = tables[name].range_search(x, radius + 1)  # faiss: distance < radius
        found += int(lims[-1])
    return found


def rss_bytes() -> int:
    """Resident private memory: what the process holds itself. Mapped segment files' pages
    are page cache the kernel can take back, so they are left out."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def real_image_memory(fingerprints: list[Fingerprint], count: int) -> dict[str, float]:
    """RSS growth and index bytes per real image added the way the replay adds them."""
    stamp = datetime.now(UTC)
    ids = (f"soak-{k:07d}" for k in itertools.count())
    cycle = itertools.cycle(fingerprints)
    records = [
        FingerprintRecord(image_id=next(ids), version=1, fingerprint=next(cycle), indexed_at=stamp)
        .model_dump_json()
        .encode()
        for _ in range(count + 200)
    ]
    with index_in_a_folder() as (index, _):

        def apply(values: list[bytes]) -> None:
            for value in values:
                record = FingerprintRecord.model_validate_json(value)
                index.upsert(record.image_id, record.version, record.fingerprint)

        apply(records[:200])  # warm: first allocations, caches
        index.search(fingerprints[0])
        gc.collect()
        rss, held = rss_bytes(), index.nbytes()
        started = time.perf_counter()
        apply(records[200:])
        seconds = time.perf_counter() - started
        gc.collect()
        return {
            "images": count,
            "rss_per_image": (rss_bytes() - rss) / count,
            "bytes_per_image": (index.nbytes() - held) / count,
            "adds_per_s": count / seconds,
        }


@contextlib.contextmanager
def index_in_a_folder() -> Iterator[tuple[FingerprintIndex, Path]]:
    """An index keeping its keypoints and postings in a scratch folder, as the service keeps
    them in its data dir; the folder is removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    index = FingerprintIndex(
        IndexState(keypoints=keypoint_store(folder), postings=KeypointPostings(folder))
    )
    try:
        yield index, folder
    finally:
        index.keypoints.close()
        shutil.rmtree(folder, ignore_errors=True)


def bench_size(
    n: int,
    originals: list[Fingerprint],
    queries: list[tuple[int, Fingerprint]],
    args: argparse.Namespace,
    restart: bool,
) -> dict[str, float]:
    rng = np.random.default_rng(n)
    gc.collect()
    rss_before = rss_bytes()
    with_postings = n <= args.postings_up_to
    with index_in_a_folder() as (index, files):
        key_pool = real_key_pool(originals) if with_postings else None
        fill_seconds = fill(index, n - len(originals), rng, args.chunk, key_pool)
        for i, fp in enumerate(originals):
            index.upsert(f"real-{i}", 1, fp)
        merge(index)
        index.postings.seal()
        rss_after = rss_bytes()
        res = measure(index, files, n, originals, queries, args, restart)
        res["fill_s"] = fill_seconds
        res["rss_per_image"] = (rss_after - rss_before) / len(index)
        res["postings_per_image"] = index.postings.disk_bytes() / len(index)
        return res


def measure(
    index: FingerprintIndex,
    files: Path,
    n: int,
    originals: list[Fingerprint],
    queries: list[tuple[int, Fingerprint]],
    args: argparse.Namespace,
    restart: bool,
) -> dict[str, float]:
    res: dict[str, float] = {"images": len(index)}
    res["bytes_per_image"] = index.nbytes() / len(index)

    chosen = queries[: args.queries]
    cold_ms = []  # the first pass maps the postings' pages into the process
    for _source, fp in chosen:
        started = time.perf_counter()
        index.search(fp, limit=10)
        cold_ms.append((time.perf_counter() - started) * 1000)
    res["cold_p50"], res["cold_p99"] = percentile(cold_ms, 50), percentile(cold_ms, 99)
    hash_ms, cpu_ms, local_ms, full_ms, found = [], [], [], [], 0
    for _ in range(args.repeat):
        for source, fp in chosen:
            trace = SearchTrace()
            started = time.perf_counter()
            matches = index.search(fp, limit=10, trace=trace)
            full_ms.append((time.perf_counter() - started) * 1000)
            hash_ms.append(trace.hash_seconds * 1000)
            cpu_ms.append(trace.hash_cpu_seconds * 1000)
            local_ms.append(trace.local_seconds * 1000)
            found += any(m.image_id == f"real-{source}" for m in matches[:1])
    res["hash_p50"], res["hash_p99"] = percentile(hash_ms, 50), percentile(hash_ms, 99)
    res["cpu_p50"], res["cpu_p99"] = percentile(cpu_ms, 50), percentile(cpu_ms, 99)
    res["local_p50"], res["local_p99"] = percentile(local_ms, 50), percentile(local_ms, 99)
    res["full_p50"], res["full_p99"] = percentile(full_ms, 50), percentile(full_ms, 99)
    res["top1"] = found / (len(chosen) * args.repeat)

    if not args.no_faiss:
        tables = faiss_tables(index)
        faiss_ms, faiss_cpu_ms = [], []
        for _source, fp in chosen[: args.faiss_queries]:
            started, cpu = time.perf_counter(), time.thread_time()
            faiss_search(tables, fp)
            faiss_ms.append((time.perf_counter() - started) * 1000)
            faiss_cpu_ms.append((time.thread_time() - cpu) * 1000)
        res["faiss_p50"], res["faiss_p99"] = percentile(faiss_ms, 50), percentile(faiss_ms, 99)
        res["faiss_cpu_p50"] = percentile(faiss_cpu_ms, 50)
        del tables
        gc.collect()

    # add / delete throughput (real fingerprints, new ids); the default count makes the
    # regions table merge once, as it does every REGIONS_DELTA / 23 adds
    count = args.writes
    started = time.perf_counter()
    for k in range(count):
        index.upsert(f"w{k}", 1, originals[k % len(originals)])
    res["adds_per_s"] = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for k in range(count):
        index.delete(f"w{k}")
    res["deletes_per_s"] = count / (time.perf_counter() - started)

    if restart:  # in the folder the index keeps its files in, as the service does
        started = time.perf_counter()
        save_snapshot(index.state, files, "bench", [0], {0: n})
        res["snapshot_s"] = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        loaded = load_snapshot(files, "bench", [0])
        res["restart_s"] = time.perf_counter() - started
        assert loaded is not None and len(loaded.state.names) == res["images"]
        source, fp = chosen[0]
        assert FingerprintIndex(loaded.state).search(fp, limit=1)[0].image_id == f"real-{source}"
    return res


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--quick", action="store_true", help="--sizes 100000,1000000")
    parser.add_argument("--queries", type=int, default=60, help="query fingerprints used")
    parser.add_argument("--repeat", type=int, default=3, help="times each query is run")
    parser.add_argument("--faiss-queries", type=int, default=20)
    parser.add_argument(
        "--writes", type=int, default=12000, help="upserts, then deletes, timed at each size"
    )
    parser.add_argument("--real-images", type=int, default=10000, help="for RAM per real image")
    parser.add_argument("--chunk", type=int, default=2_000_000)
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument(
        "--postings-up-to",
        type=int,
        default=1_000_000,
        help="sizes up to this get descriptor-key postings (6 KB a synthetic image, on disk)",
    )
    args = parser.parse_args()
    sizes = [100_000, 1_000_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    fix_mmap_threshold()  # as the matcher does at start-up: RSS then counts what is held

    originals, queries = real_fingerprints()
    random.Random(3).shuffle(queries)
    print(
        f"{len(originals)} real fingerprints planted, {len(queries)} transformed queries "
        f"({', '.join(QUERY_FAMILIES)}); {args.queries} used x{args.repeat}; one thread"
    )
    real = real_image_memory(originals + [fp for _, fp in queries], args.real_images)
    print(
        f"real images: {real['images']:,} records applied as the replay does, "
        f"{real['adds_per_s']:.0f}/s: RSS +{real['rss_per_image']:.0f} B/image "
        f"(index counts {real['bytes_per_image']:.0f} B/image)",
        flush=True,
    )
    restart_at = min((s for s in sizes if s >= 1_000_000), default=max(sizes))
    rows = []
    for n in sizes:
        res = bench_size(n, originals, queries, args, restart=n == restart_at)
        rows.append(res)
        print(f"  {n:,} images filled in {res['fill_s']:.1f} s", flush=True)

    print()
    print(
        f"{'images':>12} {'hash p50':>9} {'hash p99':>9} {'cpu p50':>8} {'cpu p99':>8}"
        f" {'faiss p50':>10} {'faiss p99':>10} {'x faster':>9} {'local p50':>10}"
        f" {'local p99':>10} {'full p50':>9} {'full p99':>9}"
        f" {'top-1':>6} {'B/image':>8} {'RSS B/img':>10} {'disk B/img':>11}"
        f" {'adds/s':>8} {'dels/s':>8}"
    )
    for r in rows:
        faiss50 = r.get("faiss_p50", float("nan"))
        faiss99 = r.get("faiss_p99", float("nan"))
        faster = r.get("faiss_cpu_p50", float("nan")) / r["cpu_p50"]
        print(
            f"{int(r['images']):>12,} {r['hash_p50']:>7.2f}ms {r['hash_p99']:>7.2f}ms"
            f" {r['cpu_p50']:>6.2f}ms {r['cpu_p99']:>6.2f}ms"
            f" {faiss50:>8.1f}ms {faiss99:>8.1f}ms {faster:>8.1f}x"
            f" {r['local_p50']:>8.2f}ms {r['local_p99']:>8.2f}ms"
            f" {r['full_p50']:>7.2f}ms {r['full_p99']:>7.2f}ms {r['top1']:>6.2f}"
            f" {r['bytes_per_image']:>8.0f} {r['rss_per_image']:>10.0f}"
            f" {r['postings_per_image']:>11.0f}"
            f" {r['adds_per_s']:>8.0f} {r['deletes_per_s']:>8.0f}"
        )
    for r in rows:
        print(
            f"{int(r['images']):,} images, first pass over the queries (postings' pages not yet"
            f" mapped): full p50 {r['cold_p50']:.2f} ms, p99 {r['cold_p99']:.2f} ms"
        )
    for r in rows:
        if "restart_s" in r:
            print(
                f"restart at {int(r['images']):,} images: snapshot written in "
                f"{r['snapshot_s']:.1f} s, loaded in "
                f"{r['restart_s']:.1f} s"
            )
    print(
        f"adds/s: {args.writes:,} upserts of real fingerprints, the table merges they caused "
        "included; dels/s: deleting them again"
    )
    print(
        "hash/faiss: wall clock; cpu: the searching thread's CPU time (the machine is shared, "
        "so wall p99 includes time other processes had the core);\n"
        "x faster = faiss CPU p50 / hash-stage CPU p50 (same codes, same radii, same entries)"
    )


if __name__ == "__main__":
    main()
