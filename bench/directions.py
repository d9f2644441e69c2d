"""Scratch measurement: would stronger local features close the recall gaps on the dev part?

Reads what `bench/robustness.py --part dev --keep FILE` kept (the indexed pictures, every
query's bytes, and the matcher's scores) and, for each local feature below, adds what a
matcher built on it would find: candidates by descriptor votes (each query descriptor's
nearest indexed descriptor, ratio-tested, votes for its image; the CANDIDATES images with
the most votes) and, for each, a RANSAC homography with the matcher's own checks (inliers
on five distinct spots, a convex plausible quadrilateral). A pair counts as found when the
matcher's score reaches its duplicate label or the inliers reach the feature's threshold:
the lowest number of inliers at which no negative pair of the run gets there.

Only the queries of the families with gaps are run (crop_20, crop_50, rotate_4, tilt,
watermark, gamma_colour, combined), never-indexed originals' included; false pairs are
counted over those. A bench scratch script, not a benchmark to keep running.

    .venv/bin/python bench/robustness.py --part dev --keep /tmp/dev.pkl
    .venv/bin/python bench/directions.py /tmp/dev.pkl
"""

from __future__ import annotations

import argparse
import io
import pickle
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import faiss
import numpy as np
from PIL import Image

from lookalike_shared.imaging import as_shown

GAP_FAMILIES = ("crop_20", "crop_50", "rotate_4", "tilt", "watermark", "gamma_colour", "combined")
CANDIDATES = 8
RATIO = 0.8
KEEP = 500  # keypoints per image, strongest first
DUPLICATE = 60.0
Array = np.ndarray


def grey_at(data: bytes, side: int) -> Array:
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (side, side))
        rgb = np.asarray(as_shown(im).convert("L"))
    scale = side / max(rgb.shape)
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb)


def _strongest(found: list, desc: Array | None) -> tuple[Array, Array]:
    if desc is None or not found:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    order = np.argsort([-k.response for k in found])[:KEEP]
    return np.array([found[i].pt for i in order], np.float32), desc[order]


def orb512(data: bytes) -> tuple[Array, Array]:
    orb = cv2.ORB_create(nfeatures=KEEP, fastThreshold=12, edgeThreshold=15, nlevels=8)  # type: ignore[attr-defined]
    return _strongest(*orb.detectAndCompute(grey_at(data, 512), None))


def akaze512(data: bytes) -> tuple[Array, Array]:
    akaze = cv2.AKAZE_create(threshold=0.0005)  # type: ignore[attr-defined]
    return _strongest(*akaze.detectAndCompute(grey_at(data, 512), None))


def sift512(data: bytes) -> tuple[Array, Array]:
    sift = cv2.SIFT_create(nfeatures=KEEP)  # type: ignore[attr-defined]
    xy, d = _strongest(*sift.detectAndCompute(grey_at(data, 512), None))
    if len(d) and d.dtype != np.float32:
        d = d.astype(np.float32)
    if len(d):  # RootSIFT: L1-normalise, square root (Hellinger kernel), stored as uint8
        d = np.sqrt(d / np.maximum(1e-7, d.sum(axis=1, keepdims=True)))
        d = np.round(d * 255).astype(np.uint8)
    return xy, d


FEATURES: dict[str, tuple[Callable[[bytes], tuple[Array, Array]], bool]] = {
    "orb512": (orb512, True),  # binary descriptors
    "rootsift512": (sift512, False),
}
if hasattr(cv2, "AKAZE_create"):  # not in opencv-python-headless 5.0's main modules
    FEATURES["akaze512"] = (akaze512, True)


def extract(job: tuple[str, bytes]) -> tuple[Array, Array, float]:
    name, data = job
    started = time.perf_counter()
    xy, d = FEATURES[name][0](data)
    return xy, d, time.perf_counter() - started


def verify(qxy: Array, qd: Array, txy: Array, td: Array, binary: bool) -> int:
    if len(qd) < 8 or len(td) < 8:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING if binary else cv2.NORM_L2)
    a, b = (qd, td) if binary else (qd.astype(np.float32), td.astype(np.float32))
    pairs = matcher.knnMatch(a, b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 8:
        return 0
    src = qxy[[m.queryIdx for m in good]]
    dst = txy[[m.trainIdx for m in good]]
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, 8.0, maxIters=400, confidence=0.99)
    if h is None or mask is None:
        return 0
    keep = mask.ravel().astype(bool)
    if _spots(src[keep]) < 5 or _spots(dst[keep]) < 5:
        return 0
    w, hh = qxy[:, 0].max() + 1, qxy[:, 1].max() + 1
    corners = np.array([[0, 0], [w, 0], [w, hh], [0, hh]], np.float64)
    q = cv2.perspectiveTransform(corners[None], h)[0]
    edges = np.roll(q, -1, axis=0) - q
    cross = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return 0
    return int(keep.sum())


def _spots(xy: Array, apart: float = 8.0) -> int:
    spots: list[Array] = []
    for p in xy:
        if all(float(np.hypot(*(p - s))) >= apart for s in spots):
            spots.append(p)
            if len(spots) == 5:
                break
    return len(spots)


def candidates(index_d: list[Array], query_d: list[Array], binary: bool) -> list[Array]:
    """Per query, the CANDIDATES indexed images with the most ratio-tested nearest
    descriptors (an IVF index over every indexed descriptor, 8 lists probed)."""
    owner = np.concatenate([np.full(len(d), i) for i, d in enumerate(index_d)])
    base = np.concatenate([d for d in index_d if len(d)])
    if binary:
        base = np.unpackbits(base, axis=1)
    x = np.ascontiguousarray(base, dtype=np.float32)
    quantizer = faiss.IndexFlatL2(x.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, x.shape[1], 1024)
    ivf.train(x[np.random.default_rng(0).choice(len(x), min(len(x), 100_000), replace=False)])
    ivf.add(x)
    ivf.nprobe = 8
    out = []
    for d in query_d:
        if len(d) == 0:
            out.append(np.zeros(0, np.int64))
            continue
        q = np.unpackbits(d, axis=1) if binary else d
        dist, idx = ivf.search(np.ascontiguousarray(q, dtype=np.float32), 2)
        ok = (idx[:, 0] >= 0) & (dist[:, 0] < RATIO**2 * np.maximum(dist[:, 1], 1e-9))
        votes = np.bincount(owner[idx[ok, 0]], minlength=len(index_d))
        out.append(np.argsort(-votes, kind="stable")[:CANDIDATES][votes_nonzero(votes)])
    return out


def votes_nonzero(votes: Array) -> slice:
    return slice(0, min(CANDIDATES, int((votes > 0).sum())))


def fingerprint(data: bytes) -> object:
    from lookalike_shared.fingerprint import fingerprint_bytes

    try:
        return fingerprint_bytes(data)
    except Exception:
        return None


def query_fingerprint(data: bytes) -> object:
    from lookalike_shared.fingerprint import fingerprint_bytes

    try:
        return fingerprint_bytes(data, query=True)
    except Exception:
        return None


def diagnose(indexed, queries, rows, source, family, base_found, args) -> None:  # type: ignore[no-untyped-def]
    """For the matcher's misses: was the original a candidate (hash stage or descriptor-key
    stage) and lost in verification, or never a candidate? Uses the index's own stages."""
    from lookalike_matcher.index import FingerprintIndex
    from lookalike_matcher.verify import Keypoints

    missed = [k for k in range(len(rows)) if source[rows[k]] >= 0 and not base_found[k]]
    with ProcessPoolExecutor(args.workers) as pool:
        fps = list(pool.map(fingerprint, indexed, chunksize=16))
        qfps = list(pool.map(query_fingerprint, [queries[k] for k in missed], chunksize=4))
    index = FingerprintIndex()
    for i, fp in enumerate(fps):
        if fp is not None:
            index.upsert(str(i), 1, fp)
    counts: dict[str, dict[str, int]] = {}
    qfp: Any
    for k, qfp in zip(missed, qfps, strict=True):
        f = str(family[rows[k]])
        c = counts.setdefault(f, {"missed": 0, "hash": 0, "local": 0, "none": 0})
        c["missed"] += 1
        if qfp is None:
            c["none"] += 1
            continue
        truth = source[rows[k]]
        from lookalike_matcher import candidates
        from lookalike_matcher.appearance import QueryAppearance

        names = index.state.names
        short = candidates.by_hashes(index.state, qfp, QueryAppearance.of(qfp))
        if str(truth) in {names.id_of(cand.slot) for cand in short}:
            c["hash"] += 1
            continue
        kp = Keypoints.from_text(qfp.keypoints) if qfp.keypoints else None
        shortlisted = {cand.slot for cand in short}
        local = candidates.by_keypoints(index.state, kp, shortlisted) if kp is not None else []
        if str(truth) in {names.id_of(cand.slot) for cand in local}:
            c["local"] += 1
        else:
            c["none"] += 1
    print("matcher misses: original on the hash shortlist / on the descriptor-key list / neither")
    for f, c in counts.items():
        print(
            f"  {f:13} missed {c['missed']:3d}: hash {c['hash']:3d}, keys {c['local']:3d}, "
            f"neither {c['none']:3d}"
        )


def subset(kept: dict, distractors: int) -> dict:
    """Every original, and only the first `distractors` of the other indexed pictures."""
    if not distractors:
        return kept
    originals = set(int(s) for s in kept["source"] if s >= 0)
    others = [i for i in range(len(kept["indexed"])) if i not in originals][:distractors]
    keep = sorted(originals) + others
    new = {old: k for k, old in enumerate(keep)}
    return kept | {
        "indexed": [kept["indexed"][i] for i in keep],
        "source": np.array([new.get(int(s), -1) if s >= 0 else -1 for s in kept["source"]]),
        "excluded": kept["excluded"][:, keep],
        "lookalike": kept["lookalike"][:, keep],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kept", type=Path)
    parser.add_argument("--features", default=",".join(FEATURES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--diagnose", action="store_true", help="where the matcher loses")
    parser.add_argument(
        "--distractors", type=int, default=0, help="index only this many distractors (0: all)"
    )
    args = parser.parse_args()
    kept = subset(pickle.loads(args.kept.read_bytes()), args.distractors)
    family, source, look = kept["family"], kept["source"], kept["lookalike"]
    rows = np.nonzero(np.isin(family, GAP_FAMILIES))[0]
    per_family = len(family) // len(np.unique(family))
    excluded = kept["excluded"][rows % per_family]
    indexed = [data for _, data in kept["indexed"]]
    queries = [kept["queries"][r] for r in rows]
    base_found = np.array([source[r] >= 0 and look[r, source[r]] >= DUPLICATE for r in rows])
    base_false = int(
        sum(
            ((look[r] >= DUPLICATE) & ~excluded[k] & (np.arange(len(indexed)) != source[r])).sum()
            for k, r in enumerate(rows)
        )
    )
    print(f"{len(rows)} queries of {len(GAP_FAMILIES)} families, {len(indexed)} indexed")
    table = {"matcher": (base_found, base_false, 0.0, 0.0, 0)}
    if args.diagnose:
        diagnose(indexed, queries, rows, source, family, base_found, args)
    for name in filter(None, args.features.split(",")):
        found, ms, nbytes = run_feature(
            name, indexed, queries, rows, source, excluded, base_found, args
        )
        table[name] = (found, base_false, ms, nbytes, 0)  # its own threshold adds none
    print_table(table, family[rows], source[rows])


def run_feature(name, indexed, queries, rows, source, excluded, base_found, args):
    binary = FEATURES[name][1]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        ind = list(pool.map(extract, [(name, d) for d in indexed], chunksize=16))
        qs = list(pool.map(extract, [(name, d) for d in queries], chunksize=16))
    ms = float(np.median([t for *_, t in ind + qs])) * 1e3
    nbytes = float(
        np.mean([len(d) * (d.shape[1] if len(d) else 0) + 4 * len(d) for _, d, _ in ind])
    )
    cands = candidates([d for _, d, _ in ind], [d for _, d, _ in qs], binary)
    inliers = np.zeros(len(rows), np.int32)  # on the true original (0 if not a candidate)
    worst = 0  # most inliers on any negative candidate
    for k, (qxy, qd, _) in enumerate(qs):
        truth = source[rows[k]]
        for c in cands[k]:
            n = verify(qxy, qd, ind[c][0], ind[c][1], binary)
            if c == truth:
                inliers[k] = n
            elif not excluded[k, c]:
                worst = max(worst, n)
    # At least the inliers the matcher itself calls a duplicate (score_local: 11).
    threshold = max(worst + 1, 11)
    found = base_found | (inliers >= threshold)
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.0f} s, threshold {threshold} inliers, {ms:.1f} ms/image")
    return found, ms, nbytes


def print_table(table, fam, src) -> None:  # type: ignore[no-untyped-def]
    print(
        f"{'direction':14}" + "".join(f"{f:>13}" for f in GAP_FAMILIES) + "  false  ms/img  B/img"
    )
    for name, (found, false, ms, nbytes, _) in table.items():
        cells = [f"{found[(fam == f) & (src >= 0)].mean():13.3f}" for f in GAP_FAMILIES]
        print(f"{name:14}" + "".join(cells) + f"{false:7d}{ms:8.1f}{nbytes:7.0f}")


if __name__ == "__main__":
    main()
