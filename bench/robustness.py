"""Robustness benchmark: does each method find the original behind a transformed copy?

In the spirit of the `perception` library's benchmark, on real pictures from installed
packages (bench/datasets.py: photographs, wallpapers' paintings and abstract art, textures,
cut-out photographs and cartoons, line drawings and flat clip art, plus solar-cell
photographs as distractors). One part of the set is run at a time (`--part dev` to tune
on, `--part report` to report on): its originals and the distractors of both parts are
indexed, except one original in six that is never indexed; every original, indexed or
not, is queried through 18 transform families. Every (query, indexed image) pair is
scored: a pair of a query with an image it was not made from is a negative, so each query
meets every other indexed image as a distractor, and a copy of a never-indexed original
can only find false duplicates.

Per family, recall with its 95% Wilson interval, side by side for:

- lookalike: the matcher's FingerprintIndex (score 0-100, with verification), at the score
  it ships as "duplicate" (index.DUPLICATE_SCORE);
- pdq: PDQ (pdqhash), best of its 8 dihedral hashes, score = 256 - distance, 0 where
  either hash has PDQ quality under 50 (PDQ's own rule: a flat picture's hash says little);
- phash: imagehash.phash, score = 64 - Hamming distance;

each peer at its own threshold: over all families together (a deployed matcher cannot know
how a query was transformed), the loosest that keeps precision >= --precision (99.99%).
lookalike's own such threshold is printed too. Pairs of pictures that PDQ finds within 31
bits of each other, both of PDQ quality 50 or more (the same picture shipped twice), are
left out of the count and named.

    .venv/bin/python bench/robustness.py --part report   # ~6 minutes on 2 cores
    .venv/bin/python bench/robustness.py --part dev --quick
    .venv/bin/python bench/robustness.py --set samples --synthetic 120   # the old set
    .venv/bin/python bench/robustness.py --folder DIR    # your own images (all originals)
"""

from __future__ import annotations

import argparse
import io
import json
import math
import pickle
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
import datasets

from lookalike_shared.imaging import as_shown

TWIN_BITS = 31  # PDQ distance at or under which two originals are the same picture

Transform = Callable[[Image.Image, random.Random], Image.Image]


# --- transform families ------------------------------------------------------------------


def resize(scale: float) -> Transform:
    def apply(im: Image.Image, _: random.Random) -> Image.Image:
        return im.resize(
            (max(8, round(im.width * scale)), max(8, round(im.height * scale))),
            Image.Resampling.BILINEAR,
        )

    return apply


def gamma_colour(im: Image.Image, rng: random.Random) -> Image.Image:
    gamma = rng.choice([0.6, 1.6])
    arr = np.asarray(im, dtype=np.float64) / 255.0
    arr = arr**gamma * np.array([1.08, 1.0, 0.86])  # a warm cast, as under tungsten light
    out = Image.fromarray(np.clip(arr * 255, 0, 255).astype(np.uint8))
    return ImageEnhance.Color(out).enhance(rng.choice([0.6, 1.4]))


def greyscale(im: Image.Image, _: random.Random) -> Image.Image:
    return im.convert("L").convert("RGB")


def watermark(im: Image.Image, rng: random.Random) -> Image.Image:
    out = im.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, im.width // 12)
    try:
        font: Any = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    for row in range(3):
        y = (row + 0.5) * im.height / 3 - size / 2
        draw.text((im.width * 0.08, y), "© SAMPLE STOCK", fill=(255, 255, 255, 140), font=font)
    return Image.alpha_composite(out, layer).convert("RGB")


def crop(share: float) -> Transform:
    """Remove `share` of the area: keep a window sqrt(1-share) of each side, anywhere."""

    def apply(im: Image.Image, rng: random.Random) -> Image.Image:
        side = math.sqrt(1 - share)
        w, h = round(im.width * side), round(im.height * side)
        x, y = rng.randint(0, im.width - w), rng.randint(0, im.height - h)
        return im.crop((x, y, x + w, y + h))

    return apply


def border(share: float) -> Transform:
    """A plain mat `share` of the image's size on every side."""

    def apply(im: Image.Image, rng: random.Random) -> Image.Image:
        colour = rng.choice([(255, 255, 255), (0, 0, 0), (235, 228, 210), (60, 60, 60)])
        dx, dy = round(im.width * share), round(im.height * share)
        out = Image.new("RGB", (im.width + 2 * dx, im.height + 2 * dy), colour)
        out.paste(im, (dx, dy))
        return out

    return apply


def frame(im: Image.Image, rng: random.Random) -> Image.Image:
    """A picture frame: a shaded wooden moulding around a light mat."""
    mat = border(0.06)(im, rng)
    d = max(6, round(min(mat.size) * 0.08))
    out = Image.new("RGB", (mat.width + 2 * d, mat.height + 2 * d), (110, 70, 35))
    draw = ImageDraw.Draw(out)
    for i in range(d):
        shade = 70 + int(80 * i / d)
        draw.rectangle(
            (i, i, out.width - 1 - i, out.height - 1 - i), outline=(shade, shade * 2 // 3, 30)
        )
    out.paste(mat, (d, d))
    return out


def small_rotation(im: Image.Image, rng: random.Random) -> Image.Image:
    return im.rotate(rng.choice([-4, 4]), resample=Image.Resampling.BILINEAR, expand=False)


def quarter_turn(im: Image.Image, rng: random.Random) -> Image.Image:
    return im.transpose(rng.choice([Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270]))


def half_turn(im: Image.Image, _: random.Random) -> Image.Image:
    return im.transpose(Image.Transpose.ROTATE_180)


def flip(im: Image.Image, _: random.Random) -> Image.Image:
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def tilt(im: Image.Image, rng: random.Random) -> Image.Image:
    """A print photographed from slightly off-axis, on a grey wall."""
    w, h = im.size
    pad = round(0.06 * max(w, h))
    canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad), (128, 126, 120))
    canvas.paste(im, (pad, pad))
    k = 0.08 * h
    src = [(pad, pad), (pad + w, pad), (pad + w, pad + h), (pad, pad + h)]
    if rng.random() < 0.5:  # right side further away
        dst = [(pad, pad), (pad + w, pad + k), (pad + w, pad + h - k), (pad, pad + h)]
    else:
        dst = [(pad, pad + k), (pad + w, pad), (pad + w, pad + h), (pad, pad + h - k)]
    coeffs = _perspective_coeffs(dst, src)
    bg = Image.new("RGB", canvas.size, (128, 126, 120))
    warped = canvas.transform(
        canvas.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    mask = Image.new("L", im.size, 255)
    mask_canvas = Image.new("L", canvas.size, 0)
    mask_canvas.paste(mask, (pad, pad))
    mask_warp = mask_canvas.transform(
        canvas.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR
    )
    return Image.composite(warped, bg, mask_warp).filter(ImageFilter.GaussianBlur(0.6))


def combined(im: Image.Image, rng: random.Random) -> Image.Image:
    """About 15% of the area cropped away, then downscaled to 60% (JPEG quality 50 below):
    a copy that went through a social network's cropper and re-encoder."""
    return resize(0.6)(crop(0.15)(im, rng), rng)


def _perspective_coeffs(
    dst: Sequence[tuple[float, float]], src: Sequence[tuple[float, float]]
) -> list[float]:
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, dtype=np.float64)
    b = np.array([c for p in src for c in p], dtype=np.float64)
    return [float(c) for c in np.linalg.solve(a, b)]


FAMILIES: dict[str, Transform] = {
    "resize_50": resize(0.5),
    "resize_25": resize(0.25),
    "jpeg_30": lambda im, _: im,  # encoded at quality 30 below
    "gamma_colour": gamma_colour,
    "greyscale": greyscale,
    "watermark": watermark,
    "crop_5": crop(0.05),
    "crop_20": crop(0.20),
    "crop_50": crop(0.50),
    "border_10": border(0.10),
    "border_20": border(0.20),
    "frame": frame,
    "rotate_4": small_rotation,
    "rotate_90": quarter_turn,
    "rotate_180": half_turn,
    "flip": flip,
    "tilt": tilt,
    "combined": combined,
}
JPEG_QUALITY = {"jpeg_30": 30, "combined": 50}  # every other copy is saved at quality 90


# --- image set ----------------------------------------------------------------------------


def synthetic_art(n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """Minimal abstract art: colour fields, gradients, hard-edged shapes, stripes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w, h = rng.choice([(480, 360), (360, 480), (420, 420), (520, 340)])
        kind = i % 4
        im = Image.new("RGB", (w, h), _colour(rng))
        draw = ImageDraw.Draw(im)
        if kind == 0:  # stacked colour fields with soft edges
            y = 0
            while y < h:
                band = rng.randint(h // 6, h // 2)
                draw.rectangle((w * 0.08, y + 8, w * 0.92, y + band - 8), fill=_colour(rng))
                y += band
            im = im.filter(ImageFilter.GaussianBlur(4))
        elif kind == 1:  # a two- or three-stop gradient
            a, b, c = (np.array(_colour(rng), dtype=np.float64) for _ in range(3))
            angle = rng.uniform(0, math.pi)
            yy, xx = np.mgrid[0:h, 0:w]
            t = (xx * math.cos(angle) + yy * math.sin(angle)).astype(np.float64)
            t = (t - t.min()) / max(1.0, float(t.max() - t.min()))
            t3 = t[..., None]
            arr = np.where(t3 < 0.5, a + (b - a) * t3 * 2, b + (c - b) * (t3 - 0.5) * 2)
            im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
        elif kind == 2:  # hard-edged shapes
            for _ in range(rng.randint(3, 9)):
                x0, y0 = rng.randint(0, w), rng.randint(0, h)
                x1, y1 = x0 + rng.randint(30, w // 2), y0 + rng.randint(30, h // 2)
                shape = rng.choice([draw.rectangle, draw.ellipse])
                shape((x0, y0, x1, y1), fill=_colour(rng))
        else:  # bands of colour, a few to a dozen across (finer stripes alias in every
            # low-frequency hash, so two such paintings look the same to all three methods)
            step = rng.randint(max(w, h) // 12, max(w, h) // 4)
            vertical = rng.random() < 0.5
            for k in range(0, w if vertical else h, step):
                box = (k, 0, k + step // 2, h) if vertical else (0, k, w, k + step // 2)
                draw.rectangle(box, fill=_colour(rng))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append((f"synthetic-{i:04d}", buf.getvalue()))
    return out


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


# --- methods (run in worker processes) -----------------------------------------------------


@dataclass
class Hashes:
    lookalike: Any  # lookalike_shared Fingerprint, or None if it refused the image
    phash: int
    pdq: np.ndarray  # (8, 4) uint64: PDQ's 256 bits in each of its 8 dihedral variants
    pdq_quality: int = 100  # PDQ's own 0-100: under 50 its bits say little (flat pictures)


def hash_all(data: bytes, query: bool = False) -> Hashes:
    import imagehash
    import pdqhash

    from lookalike_shared.fingerprint import fingerprint_bytes
    from lookalike_shared.imaging import ImageRejected

    try:
        fp: Any = fingerprint_bytes(data, query)
    except ImageRejected:
        fp = None
    with Image.open(io.BytesIO(data)) as im:
        rgb = as_shown(im).copy()  # pixels loaded before the file closes with the block
    ph = int(str(imagehash.phash(rgb)), 16)
    pdq, quality = pdqhash.compute_dihedral(np.asarray(rgb))
    bits = np.packbits(np.asarray(pdq, dtype=np.uint8).reshape(8, 256), axis=1)
    return Hashes(fp, ph, bits.view(np.uint64).reshape(8, 4), int(quality))


def query_bytes(data: bytes, family: str, seed: int) -> bytes:
    """The transformed copy of one original, encoded as it would be uploaded."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = as_shown(im).copy()  # pixels loaded before the file closes with the block
    changed = FAMILIES[family](rgb, random.Random(seed))
    buf = io.BytesIO()
    changed.save(buf, "JPEG", quality=JPEG_QUALITY.get(family, 90))
    return buf.getvalue()


def make_query(args: tuple[bytes, str, int]) -> tuple[bytes, Hashes]:
    data = query_bytes(*args)
    return data, hash_all(data, query=True)


def prepare_and_hash(picture: datasets.Picture) -> tuple[bytes, Hashes]:
    data = picture.prepared()
    return data, hash_all(data)


# --- scoring ------------------------------------------------------------------------------


def lookalike_scores(indexed: list[Hashes], queries: list[Hashes]) -> np.ndarray:
    """(queries, indexed) scores from the matcher's own index and search."""
    from lookalike_matcher.index import FingerprintIndex

    index = FingerprintIndex()
    for i, h in enumerate(indexed):
        if h.lookalike is not None:
            index.upsert(str(i), 1, h.lookalike)
    look = np.zeros((len(queries), len(indexed)), dtype=np.float32)
    for q, h in enumerate(queries):
        if h.lookalike is None:
            continue
        for match in index.search(h.lookalike, limit=200):
            look[q, int(match.image_id)] = match.score
    return look


def pdq_distances(a: list[Hashes], b: list[Hashes], variants: int = 8) -> np.ndarray:
    """(len(a), len(b)) best distance of a's first `variants` PDQ variants to b's own."""
    b_bits = np.stack([h.pdq[0] for h in b])  # (B, 4)
    best = np.full((len(a), len(b)), 256, dtype=np.int16)
    for lo in range(0, len(a), 256):
        a_bits = np.stack([h.pdq[:variants] for h in a[lo : lo + 256]])  # (A, V, 4)
        for v in range(variants):
            d = np.bitwise_count(a_bits[:, v, None, :] ^ b_bits[None, :, :]).sum(axis=2)
            best[lo : lo + 256] = np.minimum(best[lo : lo + 256], d)
    return best


def peer_scores(indexed: list[Hashes], queries: list[Hashes]) -> dict[str, np.ndarray]:
    o_ph = np.array([h.phash for h in indexed], dtype=np.uint64)
    q_ph = np.array([h.phash for h in queries], dtype=np.uint64)
    phash = 64 - np.bitwise_count(q_ph[:, None] ^ o_ph[None, :]).astype(np.float32)
    pdq = 256 - pdq_distances(queries, indexed).astype(np.float32)
    # PDQ's own rule: a hash of quality under 50 (a flat picture) is no evidence. Without it
    # flat clip art and solar cells share near-identical hashes and no threshold keeps
    # precision; pHash has no such measure and is left as it is.
    q_ok = np.array([h.pdq_quality >= 50 for h in queries])
    o_ok = np.array([h.pdq_quality >= 50 for h in indexed])
    pdq[~(q_ok[:, None] & o_ok[None, :])] = 0
    return {"pdq": pdq, "phash": phash}


def threshold_at_precision(scores: np.ndarray, truth: np.ndarray, precision: float) -> float:
    """The lowest score threshold whose pairs at or above it keep `precision`."""
    flat, pos = scores.ravel(), truth.ravel()
    order = np.argsort(-flat, kind="stable")
    s, p = flat[order], pos[order]
    tp, fp = np.cumsum(p), np.cumsum(~p)
    # Only cut between distinct scores: ties are all in or all out.
    last_of_score = np.r_[s[1:] != s[:-1], True]
    ok = (tp / np.maximum(1, tp + fp) >= precision) & last_of_score & (s > 0)
    if not ok.any():
        return math.inf
    return float(s[np.nonzero(ok)[0].max()])


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion hits/n."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


# --- the run ------------------------------------------------------------------------------


@dataclass
class Run:
    """What was hashed: indexed images, queries, and which original each query came from."""

    names: list[str]  # of the indexed images
    indexed: list[Hashes]
    queries: list[Hashes]
    source: np.ndarray  # per query: the indexed image it came from, -1 if never indexed
    family: np.ndarray  # per query
    query_origin: list[str]  # per query: its original's name
    excluded: np.ndarray  # (queries, indexed) bool: twin pairs, neither positive nor negative
    twins: list[tuple[str, str]]
    seconds: float
    kept: dict[str, Any] | None = None  # bytes of indexed images and queries (--keep)


def select(args: argparse.Namespace) -> tuple[list[datasets.Picture], list[str]]:
    if args.folder:
        paths = sorted(
            p for p in args.folder.rglob("*") if p.suffix.lower() in datasets.IMAGE_SUFFIXES
        )
        found = [datasets.Picture(p.name, p, "folder", "original", args.part) for p in paths]
        return found, [f"folder: {len(found)} originals"]
    if args.set == "samples":
        paths = datasets.package_samples()
        found = [datasets.Picture(p.name, p, "samples", "original", args.part) for p in paths]
        return found, [f"samples: {len(found)} originals (the old set, not split)"]
    found, notes = datasets.pictures()
    # A part's own originals; the distractors of both parts (one part's alone are fewer
    # than 3,000, and no rule was tuned on distractors: they only bring false pairs).
    found = [p for p in found if p.part == args.part or p.role == "distractor"]
    if args.quick:  # a fifth of the originals, a tenth of the distractors
        found = [
            p
            for p in found
            if datasets.key("quick:" + p.name)[0] < (25 if p.role == "distractor" else 51)
        ]
    return found, notes


def hash_everything(
    pictures: list[datasets.Picture], synthetic: list[tuple[str, bytes]], args: argparse.Namespace
) -> Run:
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        prepared = list(pool.map(prepare_and_hash, pictures, chunksize=8))
        originals = [
            (p.name, data, p.role) for p, (data, _) in zip(pictures, prepared, strict=True)
        ]
        originals += [(name, data, "original") for name, data in synthetic]
        hashes = [h for _, h in prepared] + list(pool.map(hash_all, [d for _, d in synthetic]))
        indexed = [i for i, (_, _, role) in enumerate(originals) if role != "unindexed"]
        position = {i: k for k, i in enumerate(indexed)}
        queried = [i for i, (_, _, role) in enumerate(originals) if role != "distractor"]
        jobs = [
            (originals[i][1], family, args.seed * 100003 + i)
            for family in FAMILIES
            for i in queried
        ]
        made = list(pool.map(make_query, jobs, chunksize=8))
    queries = [h for _, h in made]
    kept = None
    if args.keep:  # for bench/directions.py: the same pictures and copies
        kept = {
            "indexed": [(originals[i][0], originals[i][1]) for i in indexed],
            "queries": [data for data, _ in made],
            # the matcher's fingerprints of both, so scratch scripts need not make them again
            "fingerprints": [hashes[i].lookalike for i in indexed],
            "query_fingerprints": [h.lookalike for h in queries],
        }
    source = np.array([position.get(i, -1) for _ in FAMILIES for i in queried])
    family = np.array([f for f in FAMILIES for _ in queried])
    origin = [originals[i][0] for _ in FAMILIES for i in queried]
    # Originals shipped twice (the same picture under two names) are no false pairs.
    near = pdq_distances([hashes[i] for i in queried], [hashes[i] for i in indexed], 8)
    quality = np.array([h.pdq_quality for h in hashes])
    sure = (quality[queried] >= 50)[:, None] & (quality[indexed] >= 50)[None, :]
    twin = (
        (near <= TWIN_BITS)
        & sure
        & (np.array([position.get(i, -1) for i in queried])[:, None] != np.arange(len(indexed)))
    )
    names = [originals[i][0] for i in indexed]
    twins = [(originals[queried[a]][0], names[b]) for a, b in zip(*np.nonzero(twin), strict=True)]
    return Run(
        names=names,
        indexed=[hashes[i] for i in indexed],
        queries=queries,
        source=source,
        family=family,
        query_origin=origin,
        excluded=np.tile(twin, (len(FAMILIES), 1)),
        twins=twins,
        seconds=time.perf_counter() - started,
        kept=kept,
    )


def report(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    from lookalike_matcher.index import DUPLICATE_SCORE

    started = time.perf_counter()
    scores = {"lookalike": lookalike_scores(run.indexed, run.queries)}
    searched = time.perf_counter() - started
    scores |= peer_scores(run.indexed, run.queries)
    truth = run.source[:, None] == np.arange(len(run.indexed))[None, :]
    counted = ~run.excluded
    thresholds = {
        m: threshold_at_precision(s[counted], truth[counted], args.precision)
        for m, s in scores.items()
    }
    own = thresholds["lookalike"]
    thresholds["lookalike"] = DUPLICATE_SCORE
    rows = np.arange(len(run.queries))
    has_source = run.source >= 0
    out: dict[str, Any] = {"families": {}, "thresholds": thresholds}
    found = {}
    for m, s in scores.items():
        found[m] = np.zeros(len(run.queries), dtype=bool)
        found[m][has_source] = s[rows[has_source], run.source[has_source]] >= thresholds[m]
    methods = list(scores)
    header = f"{'family':13}{'n':>5}" + "".join(f"{m:>22}" for m in methods)
    print(header)
    for f in FAMILIES:
        mine = (run.family == f) & has_source
        cells, out["families"][f] = [], {}
        for m in methods:
            hits, n = int(found[m][mine].sum()), int(mine.sum())
            lo, hi = wilson(hits, n)
            cells.append(f"{hits / max(1, n):8.3f} [{lo:.3f}-{hi:.3f}]")
            out["families"][f][m] = {"hits": hits, "n": n}
        print(f"{f:13}{int(mine.sum()):>5}" + "".join(f"{c:>22}" for c in cells))
    means = {
        m: float(np.mean([found[m][(run.family == f) & has_source].mean() for f in FAMILIES]))
        for m in methods
    }
    print(f"{'mean':13}{'':>5}" + "".join(f"{means[m]:>8.3f}{'':14}" for m in methods))
    negatives = ~truth & counted
    from_unindexed = (~has_source)[:, None] & negatives
    print(
        "thresholds: lookalike score >= "
        f"{DUPLICATE_SCORE:g} (its duplicate label; lowest at precision "
        f">= {args.precision:.2%}: {own:g}), "
        + ", ".join(f"{m} score >= {thresholds[m]:g}" for m in methods[1:])
        + f" (lowest at precision >= {args.precision:.2%})"
    )
    for m in methods:
        above = scores[m] >= thresholds[m]
        false = int((above & negatives).sum())
        unindexed = int((above & from_unindexed).sum())
        print(
            f"{m} false pairs at its threshold: {false} of {int(negatives.sum())} "
            f"({unindexed} from copies of never-indexed originals)"
        )
        out.setdefault("false_pairs", {})[m] = false
    worst = np.argsort(-np.where(negatives, scores["lookalike"], 0).ravel())[:3]
    for flat in worst:
        q, i = divmod(int(flat), len(run.indexed))
        if scores["lookalike"][q, i] > 0:
            print(
                f"  highest lookalike negative: {scores['lookalike'][q, i]:.1f} "
                f"{run.family[q]} of {run.query_origin[q]} vs {run.names[i]}"
            )
    print(
        f"lookalike searches took {searched:.0f} s "
        f"({searched / len(run.queries) * 1e3:.1f} ms each)"
    )
    out["means"] = means
    if run.kept is not None:
        run.kept |= {
            "source": run.source,
            "family": run.family,
            "excluded": run.excluded[: len(run.queries) // len(FAMILIES)],
            "lookalike": scores["lookalike"],
        }
        with args.keep.open("wb") as file:
            pickle.dump(run.kept, file)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("dev", "report"), default="report")
    parser.add_argument(
        "--set",
        choices=("packaged", "samples"),
        default="packaged",
        help="packaged: bench/datasets.py's set; samples: the 29 sample images alone",
    )
    parser.add_argument("--folder", type=Path, help="images to use instead (all originals)")
    parser.add_argument("--synthetic", type=int, default=0, help="minimal-art images to add")
    parser.add_argument("--precision", type=float, default=0.9999)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a fifth of the set")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the counts here")
    parser.add_argument("--keep", type=Path, help="pickle the pictures and copies here")
    args = parser.parse_args()

    started = time.perf_counter()
    pictures, notes = select(args)
    run = hash_everything(pictures, synthetic_art(args.synthetic), args)
    n_orig = sum(p.role == "original" for p in pictures) + args.synthetic
    n_unindexed = sum(p.role == "unindexed" for p in pictures)
    n_distractors = sum(p.role == "distractor" for p in pictures)
    print("; ".join(notes))
    print(
        f"part {args.part}: {n_orig} indexed originals ({args.synthetic} synthetic), "
        f"{n_unindexed} never-indexed originals, {n_distractors} distractors; "
        f"{len(FAMILIES)} families, {len(run.queries)} queries, "
        f"{len(run.queries) * len(run.indexed)} scored pairs; preparing and hashing took "
        f"{run.seconds:.0f} s"
    )
    if run.twins:
        print(
            f"left out as twins (PDQ <= {TWIN_BITS} bits): "
            + ", ".join(f"{a} ~ {b}" for a, b in sorted(set(run.twins)))
        )
    print("recall [95% Wilson interval] at each method's threshold")
    out = report(run, args)
    out["seconds"] = time.perf_counter() - started
    print(f"total {out['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
