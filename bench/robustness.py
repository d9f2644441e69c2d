"""Robustness benchmark: does each method find the original behind a transformed copy?

In the spirit of the `perception` library's benchmark: take a folder of images (by default
every real image that installed packages ship: scikit-image, matplotlib and scikit-learn
sample data, which includes the sample catalogue, plus synthetic "minimal art" - colour
fields, gradients and hard-edged shapes, the low-texture images local features miss),
index the originals, query with transformed copies of every original, and score every
(query, indexed image) pair. Every pair of a query with an image it was not made from is a
negative, so each query meets all the other originals as distractors.

One threshold per method, over all families together (a deployed matcher cannot know how a
query was transformed), is the loosest that keeps precision >= --precision (99.99%). Recall
is printed per family at that threshold, side by side for:

- lookalike: the matcher's FingerprintIndex (score 0-100, with verification),
- phash: imagehash.phash alone, score = 64 - Hamming distance,
- pdq: PDQ (pdqhash) with its own 8 dihedral variants, score = 256 - best distance.

    .venv/bin/python bench/robustness.py                 # full run (~2-4 minutes, 2 cores)
    .venv/bin/python bench/robustness.py --quick         # fewer synthetic images
    .venv/bin/python bench/robustness.py --folder DIR    # your own images
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import math
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from lookalike_shared.imaging import as_shown

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
MIN_SIDE = 96
# Sample files that show the same picture as another one: they would count as false pairs.
TWINS = {
    "chessboard_GRAY.png",  # chessboard_RGB.png in grey
    "motorcycle_right.png",  # the right view of the motorcycle_left.png stereo pair
    "motorcycle_disp.npz",
}

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
    warped = canvas.transform(canvas.size, Image.Transform.PERSPECTIVE, coeffs, Image.BILINEAR)
    mask = Image.new("L", im.size, 255)
    mask_canvas = Image.new("L", canvas.size, 0)
    mask_canvas.paste(mask, (pad, pad))
    mask_warp = mask_canvas.transform(
        canvas.size, Image.Transform.PERSPECTIVE, coeffs, Image.BILINEAR
    )
    return Image.composite(warped, bg, mask_warp).filter(ImageFilter.GaussianBlur(0.6))


def _perspective_coeffs(
    dst: list[tuple[float, float]], src: list[tuple[float, float]]
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
}


# --- image set ----------------------------------------------------------------------------


def package_images() -> list[Path]:
    found: dict[str, Path] = {}
    for package in ("skimage", "matplotlib", "sklearn"):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        for path in sorted(Path(spec.origin).parent.rglob("*")):
            if (
                path.suffix.lower() not in IMAGE_SUFFIXES
                or "tests" in path.parts
                or path.name in TWINS
            ):
                continue
            try:
                with Image.open(path) as im:
                    if min(im.size) < MIN_SIDE:
                        continue
            except Exception:
                continue
            found.setdefault(path.name, path)
    return list(found.values())


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
    pdq: list[np.ndarray]


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
    pdq, _ = pdqhash.compute_dihedral(np.asarray(rgb))
    return Hashes(fp, ph, [np.asarray(h, dtype=np.uint8) for h in pdq])


def make_query(args: tuple[bytes, str, int]) -> Hashes:
    data, family, seed = args
    with Image.open(io.BytesIO(data)) as im:
        rgb = as_shown(im).copy()  # pixels loaded before the file closes with the block
    changed = FAMILIES[family](rgb, random.Random(seed))
    buf = io.BytesIO()
    changed.save(buf, "JPEG", quality=30 if family == "jpeg_30" else 90)
    return hash_all(buf.getvalue(), query=True)


# --- scoring ------------------------------------------------------------------------------


def score_matrices(originals: list[Hashes], queries: list[Hashes]) -> dict[str, np.ndarray]:
    """method -> (queries, originals) scores; higher means more likely the same image."""
    from lookalike_matcher.index import FingerprintIndex

    index = FingerprintIndex()
    for i, h in enumerate(originals):
        if h.lookalike is not None:
            index.upsert(str(i), 1, h.lookalike)
    look = np.zeros((len(queries), len(originals)))
    for q, h in enumerate(queries):
        if h.lookalike is None:
            continue
        for match in index.search(h.lookalike, limit=200):
            look[q, int(match.image_id)] = match.score

    o_ph = np.array([h.phash for h in originals], dtype=np.uint64)
    q_ph = np.array([h.phash for h in queries], dtype=np.uint64)
    phash = 64 - np.bitwise_count(q_ph[:, None] ^ o_ph[None, :]).astype(np.float64)

    o_pdq = np.stack([h.pdq[0] for h in originals]).astype(bool)  # (O, 256)
    q_pdq = np.stack([np.stack(h.pdq) for h in queries]).astype(bool)  # (Q, 8, 256)
    best = np.full((len(queries), len(originals)), 256)
    for v in range(8):
        d = (q_pdq[:, v, None, :] != o_pdq[None, :, :]).sum(axis=2)
        best = np.minimum(best, d)
    pdq = 256 - best.astype(np.float64)
    return {"lookalike": look, "phash": phash, "pdq": pdq}


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", type=Path, help="images to use instead of package samples")
    parser.add_argument("--synthetic", type=int, default=120, help="minimal-art images to add")
    parser.add_argument("--precision", type=float, default=0.9999)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="30 synthetic images")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.synthetic = min(args.synthetic, 30)

    paths = (
        sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if args.folder
        else package_images()
    )
    images = [(p.stem, p.read_bytes()) for p in paths] + synthetic_art(args.synthetic)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        originals = list(pool.map(hash_all, [data for _, data in images], chunksize=4))
        jobs = [
            (data, family, args.seed * 100003 + i)
            for family in FAMILIES
            for i, (_, data) in enumerate(images)
        ]
        queries = list(pool.map(make_query, jobs, chunksize=8))
    hashed = time.perf_counter() - started
    n = len(images)
    families = list(FAMILIES)
    source = np.array([i for _ in families for i in range(n)])
    family_of = np.array([f for f in families for _ in range(n)])
    truth = source[:, None] == np.arange(n)[None, :]

    matrices = score_matrices(originals, queries)
    methods = list(matrices)
    thresholds = {m: threshold_at_precision(matrices[m], truth, args.precision) for m in methods}
    recall: dict[str, dict[str, float]] = {m: {} for m in methods}
    for m in methods:
        found = matrices[m][np.arange(len(queries)), source] >= thresholds[m]
        for f in families:
            recall[m][f] = float(found[family_of == f].mean())

    print(
        f"{n} originals ({n - args.synthetic} real, {args.synthetic} synthetic), "
        f"{len(families)} families, {len(queries)} queries, "
        f"{len(queries) * n} scored pairs; hashing took {hashed:.0f} s"
    )
    print(f"recall at precision >= {args.precision:.2%} (one threshold per method)")
    print(f"{'family':14}" + "".join(f"{m:>11}" for m in methods) + f"{'vs best peer':>14}")
    for f in families:
        peer = max(recall[m][f] for m in methods if m != "lookalike")
        ratio = recall["lookalike"][f] / peer if peer else math.inf
        print(f"{f:14}" + "".join(f"{recall[m][f]:11.3f}" for m in methods) + f"{ratio:13.2f}x")
    means = {m: float(np.mean(list(recall[m].values()))) for m in methods}
    print(f"{'mean':14}" + "".join(f"{means[m]:11.3f}" for m in methods))
    print("thresholds: " + ", ".join(f"{m} score >= {thresholds[m]:g}" for m in methods))
    look = matrices["lookalike"]
    fp_at_dup = int(((look >= thresholds["lookalike"]) & ~truth).sum())
    print(f"lookalike false pairs at its threshold: {fp_at_dup} of {int((~truth).sum())}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
