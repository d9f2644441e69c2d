"""Look-alike benchmark: does the learned embedding find the same subject, and what does it cost?

1. Quality. A labelled set of real images with subject classes: the stamps of Debian's
   `tuxpaint-stamps-default` (photographs and drawings of mammals, birds, insects, fish,
   fruit, vegetables, flowers, houses, road signs, tools, instruments, monuments, planets;
   `apt-get install tuxpaint-stamps-default`, read from /usr/share/tuxpaint/stamps; the
   transparent background shows as white paper, as the service decodes it). Each class
   with at least 10 images counts; within a class, every other image (by file name) is
   indexed and the rest query it. precision@10 of the cosine nearest neighbours, side by
   side in one run: the embedding (projected, as stored), the network's raw 1280 features,
   the old 48-number colour-layout vector, and a colour histogram (8x8x8 bins, Hellinger).
2. Subject words: for each confidence threshold, how many images get a word and how often
   two images sharing a word are of one class (chance: the class shares).
3. CPU per image, one core, medians over real JPEGs of 1-4 MP (bench/ingest.py's set): the
   decode, the fingerprint, the embedding, and the sum against the naive
   `imagehash.phash(Image.open(path))`.
4. Latency on the local stack (`latency`, as bench/gateway.py starts it: embedded
   stand-in, ingest, matcher, gateway; the 27 samples plus N synthetic documents shaped
   like ingest's): the look-alike kNN against the keyword query, each alone, and an image
   search's first hit and full answer through the gateway, one client, p50 and p90.

    .venv/bin/python bench/lookalikes.py              # parts 1-3
    .venv/bin/python bench/lookalikes.py latency --documents 10000
    .venv/bin/python bench/lookalikes.py latency --profile --documents 5000  # own vs profile
    .venv/bin/python bench/lookalikes.py --model lite1=/tmp/lite1.onnx   # compare exports
    .venv/bin/python bench/lookalikes.py fit-projection OUT.npz            # refit the PCA

The projection is fitted on the other stamps (symbols, seasonal and the small classes),
never on the evaluated ones, with each image also mirrored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import imagehash
import numpy as np
from PIL import Image

from lookalike_shared.embedding import ImageEmbedder, ModelFiles, subjects_from
from lookalike_shared.fingerprint import (
    FINGERPRINT_SIDE,
    _colour_bins,
    fingerprint_decoded,
    layout_vector,
    shrink_to_side,
)
from lookalike_shared.imaging import decode_image

if TYPE_CHECKING:
    import aiohttp

STAMPS = Path("/usr/share/tuxpaint/stamps")
# Subject classes are the stamps' first two folder levels; these are themes or glyphs
# rather than subjects, so they only feed the projection's fit.
NOT_SUBJECTS = ("symbols/", "seasonal/")
MIN_CLASS = 10
K = 10


@dataclass
class Item:
    path: Path
    label: str
    rgb: np.ndarray = field(repr=False)


def load_stamps(root: Path) -> tuple[list[Item], list[Item]]:
    """(evaluated items, projection-fit items), decoded as the service decodes."""
    by_class: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.png")):
        parts = path.relative_to(root).parts
        if len(parts) < 3:
            continue
        by_class.setdefault(f"{parts[0]}/{parts[1]}", []).append(path)
    evaluated, fit = [], []
    for label, paths in sorted(by_class.items()):
        subject = not label.startswith(NOT_SUBJECTS) and len(paths) >= MIN_CLASS
        for path in paths:
            try:
                decoded = decode_image(path.read_bytes(), decode_side=FINGERPRINT_SIDE)
            except ValueError:
                continue
            item = Item(path, label, np.asarray(decoded.image))
            (evaluated if subject else fit).append(item)
    return evaluated, fit


def split(items: list[Item]) -> tuple[list[int], list[int]]:
    """Indices of the indexed half and the query half: alternate images of each class."""
    seen: Counter[str] = Counter()
    indexed, queries = [], []
    for n, item in enumerate(items):
        (indexed if seen[item.label] % 2 == 0 else queries).append(n)
        seen[item.label] += 1
    return indexed, queries


def precision_at_k(
    vectors: np.ndarray, labels: list[str], indexed: list[int], queries: list[int]
) -> float:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    scores = unit[queries] @ unit[indexed].T
    top = np.argsort(-scores, axis=1)[:, :K]
    hits = [
        sum(labels[indexed[j]] == labels[q] for j in row) / K
        for q, row in zip(queries, top, strict=True)
    ]
    return float(np.mean(hits))


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    _, counts = _colour_bins(shrink_to_side(rgb, 48))
    return np.sqrt(counts / counts.sum())  # Hellinger: cosine of square roots


def quality(args: argparse.Namespace, evaluated: list[Item]) -> None:
    labels = [i.label for i in evaluated]
    indexed, queries = split(evaluated)
    shares = Counter(labels)
    print(
        f"Labelled set: {len(evaluated)} images in {len(shares)} classes "
        f"({len(indexed)} indexed, {len(queries)} queries)"
    )
    shipped = ImageEmbedder()
    runs = [("embedding (Lite0 160 px, 256-d projected, stored)", shipped, True)]
    runs.append(("Lite0 160 px raw features (1472-d)", shipped, False))
    for spec in args.model:
        name, _, path = spec.partition("=")
        runs.append(
            (
                f"{name} raw features",
                ImageEmbedder(ModelFiles(Path(path), "", None, None)),
                False,
            )
        )
    rows = []
    for title, embedder, projected in runs:
        feats = np.stack([embedder.run(i.rgb)[0] for i in evaluated])
        vectors = embedder.project(feats) if projected else feats
        rows.append((title, precision_at_k(vectors, labels, indexed, queries), vectors.shape[1]))
    layout = np.stack([np.array(layout_vector(shrink_to_side(i.rgb, 48))) for i in evaluated])
    rows.append(
        ("old colour-layout vector (48)", precision_at_k(layout, labels, indexed, queries), 48)
    )
    hist = np.stack([colour_histogram(i.rgb) for i in evaluated])
    rows.append(
        ("colour histogram (512 bins)", precision_at_k(hist, labels, indexed, queries), 512)
    )
    chance = sum((c / len(labels)) ** 2 for c in shares.values())
    print(f"\nprecision@{K} of look-alikes (chance {chance:.3f})")
    for title, p, _ in rows:
        print(f"  {title:48s} {p:.3f}")
    print(f"  embedding / colour histogram = {rows[0][1] / rows[-1][1]:.2f}x")
    subject_words(shipped, evaluated, chance)


def subject_words(embedder: ImageEmbedder, items: list[Item], chance: float) -> None:
    probabilities = [embedder.run(i.rgb)[1] for i in items]
    print("\nSubject words: share of images given a word; share of image pairs sharing a")
    print(f"word that are of one class (chance {chance:.3f})")
    for threshold in (0.1, 0.25, 0.35, 0.45, 0.55, 0.65):
        words = [set(subjects_from(p, threshold)) for p in probabilities]
        pairs = same = 0
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                if words[a] & words[b]:
                    pairs += 1
                    same += items[a].label == items[b].label
        covered = sum(1 for w in words if w) / len(items)
        print(
            f"  >= {threshold:.2f}: {covered:.2f} of images, "
            f"{same / max(pairs, 1):.3f} same class ({pairs} pairs)"
        )


def cpu(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from ingest import make_jpegs  # the real JPEGs of the ingest benchmark

    embedder = ImageEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp))
        blobs = [p.read_bytes() for p in paths]
        costs: dict[str, list[float]] = {
            k: [] for k in ("decode", "fingerprint", "embedding", "naive")
        }
        for _ in range(args.repeat):
            for path, data in zip(paths, blobs, strict=True):
                t = time.thread_time()
                decoded = decode_image(data, decode_side=FINGERPRINT_SIDE)
                t1 = time.thread_time()
                fingerprint_decoded(decoded)
                t2 = time.thread_time()
                embedder.embed(np.asarray(decoded.image))
                t3 = time.thread_time()
                imagehash.phash(Image.open(path))
                t4 = time.thread_time()
                costs["decode"].append(t1 - t)
                costs["fingerprint"].append(t2 - t1)
                costs["embedding"].append(t3 - t2)
                costs["naive"].append(t4 - t3)
    med = {k: statistics.median(v) * 1000 for k, v in costs.items()}
    both = med["decode"] + med["fingerprint"] + med["embedding"]
    print(f"\nCPU ms per image (one core, median of {len(costs['naive'])}; JPEGs of 1-4 MP)")
    print(f"  decode (draft mode, once)     {med['decode']:7.1f}")
    print(f"  fingerprint                   {med['fingerprint']:7.1f}")
    print(f"  embedding + subjects          {med['embedding']:7.1f}")
    print(f"  all of it, one decode         {both:7.1f}")
    print(f"  naive imagehash.phash(open)   {med['naive']:7.1f}")
    print(f"  all / naive = {both / med['naive']:.2f}x")


async def latency(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import aiohttp
    from gateway import (
        QUERY_IMAGES,
        index_synthetic,
        one_megapixel_jpeg,
        pct,
        start_stack,
        time_backends,
    )

    from lookalike_stack.sample import materialize

    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        stack = start_stack(Path(tmp), es_timeout=30.0)
        try:
            await index_synthetic(stack.es_url, args.documents)
            catalogue = materialize(Path(tmp) / "catalogue")
            paths = {
                c["image_id"]: next(stack.catalogue.glob(f"{c['image_id']}.*")) for c in catalogue
            }
            queries = [one_megapixel_jpeg(paths[i]) for i in QUERY_IMAGES]
            alone = await time_backends(stack, queries, args.reps)
            first, full, keyword = [], [], []
            inside: dict[str, list[float]] = {}  # the done lines' timings_ms
            async with aiohttp.ClientSession() as http:
                for n in range(args.reps):
                    form = aiohttp.FormData()
                    form.add_field("image", queries[n % len(queries)], filename="q.jpg")
                    started = time.perf_counter()
                    got_first = None
                    async with http.post(f"{stack.gateway}/v1/search", data=form) as resp:
                        async for raw in resp.content:
                            if got_first is None and b'"type": "hit"' in raw:
                                got_first = time.perf_counter()
                            if b'"type": "done"' in raw:
                                for name, ms in json.loads(raw)["timings_ms"].items():
                                    if isinstance(ms, int | float):
                                        inside.setdefault(name, []).append(float(ms))
                    full.append((time.perf_counter() - started) * 1000)
                    first.append(((got_first or time.perf_counter()) - started) * 1000)
                    started = time.perf_counter()
                    async with http.post(
                        f"{stack.gateway}/v1/search", data={"q": "portrait"}
                    ) as resp:
                        await resp.read()
                    keyword.append((time.perf_counter() - started) * 1000)
        finally:
            stack.stop()
    total = args.documents + 27
    print(f"\nLatency on the local stack, {total} documents, one client (ms, p50 / p90)")
    for name, values in (
        ("look-alike kNN alone (es_similar)", alone["es_similar"]),
        ("keyword query alone (es_keyword)", alone["es_keyword"]),
        ("query analysis (pool)", alone["fingerprint"]),
        ("image search: first hit", first),
        ("image search: full answer", full),
        ("keyword search: full answer", keyword),
    ):
        print(f"  {name:36s} {pct(values, 50):7.1f} / {pct(values, 90):7.1f}")
    print("  inside the image searches (done line timings_ms, p50):")
    for name, values in sorted(inside.items()):
        print(f"    {name:34s} {pct(values, 50):7.1f}")


# The library's fields a profile reads (lookalike_stack.library's profile); the "lean" copy
# keeps only these, to tell the cost of the library's other fields on the stand-in from the
# profile's.
LEAN_FIELDS = ("name", "artist", "created", "dimensions")


async def _library_copies(
    es_url: str, ids: list[str], folder: Path
) -> tuple[dict[str, Path], dict[str, float]]:
    """The same documents in two library indexes (lookalike_stack.library): "profile", the
    library's fields from each document's metadata plus the library's own others (licence,
    collection, thumbnail, price, an unmapped note), and "lean", only the fields the
    profile reads; both with lookalike's measured fields under the namespace, as ingest
    with a profile leaves them. Returns each one's profile path and each index's mean
    document JSON size (own included: the stand-in parses every document a search scans)."""
    from elasticsearch import AsyncElasticsearch
    from gateway import ALIAS

    from lookalike_shared.profile import ENRICHMENT_FIELDS
    from lookalike_stack.library import (
        NAMESPACE,
        create_library_index,
        library_document,
        write_profile,
    )

    documents: dict[str, list[tuple[str, dict]]] = {"profile": [], "lean": []}
    sizes = {"own": 0.0, "profile": 0.0, "lean": 0.0}
    async with AsyncElasticsearch(es_url, request_timeout=120) as es:
        for start in range(0, len(ids), 1000):
            found = await es.mget(index=ALIAS, ids=ids[start : start + 1000])
            for doc in found["docs"]:
                own = doc["_source"]
                library = library_document(doc["_id"], own, len(documents["profile"]))
                library[NAMESPACE] = {k: own[k] for k in ENRICHMENT_FIELDS if k in own}
                lean = {k: library[k] for k in (*LEAN_FIELDS, NAMESPACE)}
                for name, source in (("own", own), ("profile", library), ("lean", lean)):
                    sizes[name] += len(json.dumps(source)) / len(ids)
                documents["profile"].append((doc["_id"], library))
                documents["lean"].append((doc["_id"], lean))
    paths = {}
    for name, alias in (("profile", "library-works"), ("lean", "library-lean")):
        await create_library_index(es_url, documents[name], alias=alias, with_namespace=True)
        paths[name] = write_profile(folder / name, alias)
    return paths, sizes


async def _image_search(
    http: aiohttp.ClientSession, gateway: str, query: bytes, inside: dict[str, list[float]]
) -> tuple[float, float]:
    """One image search through a gateway: (first hit, full answer) in seconds."""
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("image", query, filename="q.jpg")
    started = time.perf_counter()
    got_first = None
    async with http.post(f"{gateway}/v1/search", data=form) as resp:
        async for raw in resp.content:
            if got_first is None and b'"type": "hit"' in raw:
                got_first = time.perf_counter()
            if b'"type": "done"' in raw:
                done = json.loads(raw)
                if done.get("warnings"):
                    raise SystemExit(f"{gateway}: a search answered with warnings: {done}")
                for name, ms in done["timings_ms"].items():
                    if isinstance(ms, int | float):
                        inside.setdefault(name, []).append(float(ms))
    ended = time.perf_counter()
    return (got_first or ended) - started, ended - started


async def latency_profile(args: argparse.Namespace) -> None:
    """The same searches through two gateways on one stack, one on lookalike's own index,
    one with a catalogue profile on a library's index holding the same documents; each
    rep asks each, in turns (who goes first rotates). A third gateway, "lean", has a
    profile on a copy of the library's index with only the fields the profile reads: on the
    stand-in, whose every search parses every document, it tells the cost of the library's
    other fields from the profile's own."""
    sys.path.insert(0, str(Path(__file__).parent))
    import aiohttp
    from elasticsearch import AsyncElasticsearch
    from gateway import (
        ALIAS,
        LIMIT,
        QUERY_IMAGES,
        WORDS,
        index_synthetic,
        one_megapixel_jpeg,
        pct,
        start_stack,
    )

    from lookalike_gateway.catalogue_fields import CatalogueFields
    from lookalike_gateway.es_queries import CatalogueSearch
    from lookalike_gateway.params import SearchParams
    from lookalike_shared.pool import WorkerPool, analyse_in_pool
    from lookalike_shared.profile import index_properties, load_profile
    from lookalike_shared.search_index import stored_vector
    from lookalike_stack.processes import Supervisor, free_port
    from lookalike_stack.sample import materialize

    modes = ("own", "profile", "lean")
    times: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    inside: dict[str, dict[str, list[float]]] = {m: {} for m in modes}

    def note(mode: str, name: str, seconds: float) -> None:
        times[mode].setdefault(name, []).append(seconds * 1000)

    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        stack = start_stack(Path(tmp), es_timeout=30.0)
        supervisor = Supervisor(Path(tmp) / "logs-profile-bench")
        try:
            await index_synthetic(stack.es_url, args.documents)
            catalogue = materialize(Path(tmp) / "catalogue")
            ids = [c["image_id"] for c in catalogue] + [
                f"syn-{i:06d}" for i in range(args.documents)
            ]
            profile_paths, sizes = await _library_copies(stack.es_url, ids, Path(tmp) / "library")
            gateways = {}
            for mode in modes:
                port = free_port()
                env = {
                    "LOOKALIKE_ES_URL": stack.es_url,
                    "LOOKALIKE_MATCHER_URLS": stack.matcher,
                    "LOOKALIKE_GATEWAY_PORT": str(port),
                    "LOOKALIKE_BIND_HOST": "127.0.0.1",
                    "LOOKALIKE_ES_TIMEOUT_SECONDS": "30",
                    "LOOKALIKE_FILE_ROOT": str(stack.catalogue),
                    "LOOKALIKE_LOG_LEVEL": "WARNING",
                }
                if mode in profile_paths:
                    env["LOOKALIKE_CATALOGUE_PROFILE"] = str(profile_paths[mode])
                child = supervisor.start(
                    f"gateway-{mode}", [sys.executable, "-m", "lookalike_gateway"], env
                )
                supervisor.wait_ready(child, f"http://127.0.0.1:{port}/readyz", 180)
                gateways[mode] = f"http://127.0.0.1:{port}"
            paths = {
                c["image_id"]: next(stack.catalogue.glob(f"{c['image_id']}.*")) for c in catalogue
            }
            queries = [one_megapixel_jpeg(paths[i]) for i in QUERY_IMAGES]

            # Elasticsearch's two searches alone, with each gateway's field paths.
            pool = WorkerPool(1)
            await pool.start()
            async with AsyncElasticsearch(stack.es_url, request_timeout=30) as es:
                searches = {"own": CatalogueSearch(es, CatalogueFields.own(ALIAS))}
                for mode, path in profile_paths.items():
                    profile = load_profile(path)
                    properties = await index_properties(es, profile.alias)
                    fields = CatalogueFields.of_profile(profile, properties)
                    searches[mode] = CatalogueSearch(es, fields)
                for n in range(args.reps):
                    analysis = await analyse_in_pool(pool, queries[n % len(queries)], query=True)
                    vector = stored_vector(analysis.embedding)
                    params = SearchParams(q=WORDS[n % len(WORDS)], limit=LIMIT)
                    for mode in modes[n % 3 :] + modes[: n % 3]:  # who goes first rotates
                        t = time.perf_counter()
                        await searches[mode].similar(params, vector, 100)
                        note(mode, "es_similar", time.perf_counter() - t)
                        t = time.perf_counter()
                        await searches[mode].keyword(params, 100)
                        note(mode, "es_keyword", time.perf_counter() - t)
                        # the floor of any search on the stand-in: it parses every document
                        t = time.perf_counter()
                        await es.search(index=searches[mode].alias, size=0, query={"match_all": {}})
                        note(mode, "es match_all, size 0", time.perf_counter() - t)
            await pool.close()

            async with aiohttp.ClientSession() as http:
                for n in range(args.reps):
                    query = queries[n % len(queries)]
                    for mode in modes[n % 3 :] + modes[: n % 3]:  # who goes first rotates
                        first, full = await _image_search(http, gateways[mode], query, inside[mode])
                        note(mode, "image search: first hit", first)
                        note(mode, "image search: full answer", full)
                        started = time.perf_counter()
                        async with http.post(
                            f"{gateways[mode]}/v1/search", data={"q": WORDS[n % len(WORDS)]}
                        ) as resp:
                            await resp.read()
                        note(mode, "keyword search: full answer", time.perf_counter() - started)
        finally:
            supervisor.stop_all()
            stack.stop()
    print(
        f"\nOwn index against a catalogue profile, {len(ids)} documents in each index, one "
        f"stack, one client, {args.reps} reps each in turns (ms)"
    )
    print(
        f"  a document's JSON source (mean): own index {sizes['own']:.0f} bytes, library's "
        f"index {sizes['profile']:.0f} bytes, lean library copy {sizes['lean']:.0f} bytes"
    )
    print(f"  {'p50':36s} {'own':>8s} {'profile':>8s} {'ratio':>6s} {'lean':>8s} {'ratio':>6s}")
    names = (
        "es match_all, size 0",
        "es_similar",
        "es_keyword",
        "image search: first hit",
        "image search: full answer",
        "keyword search: full answer",
    )

    def row(name: str, got: dict[str, list[float]], q: float = 50) -> str:
        own = pct(got["own"], q)
        cells = [f"{own:8.1f}"]
        for mode in ("profile", "lean"):
            value = pct(got.get(mode, []), q)
            cells.append(f"{value:8.1f} {value / own:6.3f}")
        return f"  {name:36s} " + " ".join(cells)

    for name in names:
        print(row(name, {m: times[m][name] for m in modes}))
    print("  p90")
    for name in names:
        print(row(name, {m: times[m][name] for m in modes}, 90))
    print("  inside the image searches (done line timings_ms, p50):")
    for name in sorted(inside["own"]):
        print(row("  " + name, {m: inside[m].get(name, []) for m in modes}))
    answer = "image search: full answer"
    for mode in ("profile", "lean"):
        ratio = pct(times[mode][answer], 50) / pct(times["own"][answer], 50)
        print(f"\nimage search, full answer p50, {mode} / own: {ratio:.3f} (target: <= 1.10)")


def fit_projection(out: Path, fit: list[Item], dims: int, power: float) -> None:
    """PCA on the fit stamps' pooled features (each image and its mirror), whitened with
    eigenvalues to the power `-power` (0.5 is full whitening)."""
    embedder = ImageEmbedder(ModelFiles(projection=None, projection_sha256=None))
    rows = []
    for item in fit:
        rows.append(embedder.run(item.rgb)[0])
        rows.append(embedder.run(np.ascontiguousarray(item.rgb[:, ::-1]))[0])
    x = np.stack(rows).astype(np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    eigen = s[:dims] ** 2 / (len(x) - 1)
    matrix = vt[:dims].T / eigen**power
    np.savez(out, mean=mean.astype(np.float32), matrix=matrix.astype(np.float32))
    print(f"{out}: {len(fit)} images x2 (mirrored), {dims} dims, eigenvalue power -{power}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="all",
        choices=("all", "quality", "cpu", "latency", "fit-projection"),
    )
    parser.add_argument("out", nargs="?", type=Path, help="fit-projection: the .npz to write")
    parser.add_argument("--stamps", type=Path, default=STAMPS)
    parser.add_argument(
        "--model", action="append", default=[], help="NAME=PATH of another export to compare"
    )
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--power", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--documents", type=int, default=10_000, help="latency: synthetic docs")
    parser.add_argument("--reps", type=int, default=30, help="latency: searches of each kind")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="latency: the same searches on lookalike's own index and, through a catalogue "
        "profile, on a library's index of the same documents; both and the ratio",
    )
    args = parser.parse_args()
    if args.command in ("all", "quality", "fit-projection"):
        if not args.stamps.is_dir():
            raise SystemExit(f"{args.stamps} not found: apt-get install tuxpaint-stamps-default")
        evaluated, fit = load_stamps(args.stamps)
        if args.command == "fit-projection":
            fit_projection(args.out, fit, args.dims, args.power)
            return
        quality(args, evaluated)
    if args.command in ("all", "cpu"):
        cpu(args)
    if args.command == "latency":
        asyncio.run(latency_profile(args) if args.profile else latency(args))


if __name__ == "__main__":
    main()
