"""Gateway benchmark: concurrent clients uploading real 1 MP JPEGs to POST /v1/search.

Starts the local stack (`python -m lookalike_stack up`: the embedded Kafka/Elasticsearch
stand-in, ingest, matcher and gateway as separate processes on free loopback ports) with
the 27-image sample catalogue, bulk-indexes synthetic documents into Elasticsearch, then:

1. times each backend call of a search alone (query fingerprint in a process pool, the
   matcher, hydration of its duplicates by id, Elasticsearch look-alike kNN and keyword
   search), and the same calls made one after the other;
2. runs 1, 8 and 32 concurrent clients, each uploading a 1 MP JPEG with words (so every
   backend is called), reading the NDJSON stream: requests per second, time to first hit
   and to the done line (p50/p99), errors, and from the done line's `timings_ms` the
   gateway's own cost (time with no backend call in flight) and whether the first hit came
   before the keyword search had finished.

The embedded Elasticsearch stand-in scans linearly (300-800 ms a search at 100k documents,
2 ms for an mget of 50 ids), so its absolute figures say little about a real cluster; the
ratios (concurrent vs one after the other, gateway's own share) are the point.

    .venv/bin/python bench/gateway.py              # 10k synthetic docs, 15 s per level
    .venv/bin/python bench/gateway.py --quick      # 2k docs, 5 s per level
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_bulk
from PIL import Image

from lookalike_gateway.catalogue_fields import CatalogueFields
from lookalike_gateway.es_queries import CatalogueSearch
from lookalike_gateway.params import SearchParams
from lookalike_shared.colour_bins import image_bins
from lookalike_shared.contracts import NAMED_COLORS, MatcherSearchRequest, PaletteColor
from lookalike_shared.embedding import EMBEDDING_DIMS
from lookalike_shared.pool import WorkerPool, analyse_in_pool
from lookalike_shared.search_index import stored_palette, stored_vector
from lookalike_stack.processes import free_port
from lookalike_stack.sample import materialize

ALIAS = "lookalike-images"
QUERY_IMAGES = ("img-00003", "img-00024", "img-00026", "img-00001", "img-00008", "img-00025")
WORDS = ("portrait", "space", "cat", "nature", "architecture", "colour", "harbour", "night")
LIMIT = 24


def one_megapixel_jpeg(path: Path) -> bytes:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    scale = math.sqrt(1_000_000 / (rgb.width * rgb.height))
    big = rgb.resize(
        (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS
    )
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    gateway: str
    matcher: str
    es_url: str
    catalogue: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def start_stack(data_dir: Path, es_timeout: float, timeout: float = 300) -> Stack:
    ports = {k: free_port() for k in ("gateway", "matcher", "ingest", "kafka", "es")}
    argv = [sys.executable, "-m", "lookalike_stack", "up", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env["LOOKALIKE_ES_TIMEOUT_SECONDS"] = str(es_timeout)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    stack = Stack(
        proc,
        f"http://127.0.0.1:{ports['gateway']}",
        f"http://127.0.0.1:{ports['matcher']}",
        f"http://127.0.0.1:{ports['es']}",
        data_dir / "catalogue",
    )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    output = []
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        output.append(line)
        if "lookalike is up" in line:
            _drain(proc)  # keep reading, so the stack never blocks on a full pipe
            return stack
        if time.monotonic() > deadline or proc.poll() is not None:
            break
    stack.stop()
    raise SystemExit("the local stack did not come up:\n" + "\n".join(output[-30:]))


def _drain(proc: subprocess.Popen[bytes]) -> None:
    def run() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=run, daemon=True).start()


async def index_synthetic(es_url: str, count: int, seed: int = 7) -> None:
    """Documents shaped like ingest's, with random metadata, embeddings and palettes."""
    rng = random.Random(seed)
    creators = ("Anonymous", "Studio North", "J. Hale", "M. Ito", "R. Okafor", "L. Brun")
    subjects = ("harbour", "portrait", "still life", "landscape", "night", "garden", "study")

    def doc(i: int) -> dict[str, Any]:
        vector = [rng.gauss(0, 1) for _ in range(EMBEDDING_DIMS)]
        palette = [  # five colours, as fingerprint.palette gives
            PaletteColor(hex="#" + bytes(rng.randrange(256) for _ in range(3)).hex(), weight=w)
            for w in (0.4, 0.2, 0.1, 0.05, 0.05)
        ]
        width, height = rng.choice([(800, 600), (600, 800), (1000, 1000), (1600, 900)])
        year = rng.randint(1850, 2024)
        subject = rng.choice(subjects)
        return {
            "_index": ALIAS,
            "_id": f"syn-{i:06d}",
            "_source": {
                "image_id": f"syn-{i:06d}",
                "version": 1,
                "image_url": f"https://cdn.example/syn-{i:06d}.jpg",
                "title": f"{subject.title()} no. {i}",
                "creator": rng.choice(creators),
                "year": year,
                "decade": year // 10 * 10,
                "medium": rng.choice(("oil on canvas", "photograph", "etching")),
                "tags": [subject, rng.choice(WORDS)],
                "license": "rm",
                "width": width,
                "height": height,
                "megapixels": round(width * height / 1e6, 3),
                "orientation": "landscape"
                if width > height
                else "portrait"
                if height > width
                else "square",
                "format": "jpeg",
                "colors": rng.sample(NAMED_COLORS, rng.randint(1, 4)),
                "palette": stored_palette(palette),
                "colour_bins": image_bins((p.hex, p.weight) for p in palette),
                "subjects": [subject],
                "embedding": stored_vector(vector),
            },
        }

    async with AsyncElasticsearch(es_url, request_timeout=120) as es:
        await async_bulk(es, (doc(i) for i in range(count)), chunk_size=1000)
        await es.indices.refresh(index=ALIAS)


# --- backend calls alone --------------------------------------------------------------------


async def time_backends(stack: Stack, queries: list[bytes], reps: int) -> dict[str, list[float]]:
    """Each call of a search on its own, in the order the gateway needs them, and the sum
    made one after the other. Milliseconds."""
    pool = WorkerPool(1)
    await pool.start()
    times: dict[str, list[float]] = {}

    def note(name: str, started: float) -> float:
        ms = (time.perf_counter() - started) * 1000
        times.setdefault(name, []).append(ms)
        return ms

    async with (
        AsyncElasticsearch(stack.es_url, request_timeout=30) as es,
        aiohttp.ClientSession() as http,
    ):
        catalogue = CatalogueSearch(es, CatalogueFields.own(ALIAS))
        for i in range(reps):
            data = queries[i % len(queries)]
            params = SearchParams(q=WORDS[i % len(WORDS)], limit=LIMIT)
            total = 0.0
            t = time.perf_counter()
            analysis = await analyse_in_pool(pool, data, query=True)
            total += note("fingerprint", t)
            t = time.perf_counter()
            body = MatcherSearchRequest(
                fingerprint=analysis.fingerprint, limit=100
            ).model_dump_json()
            async with http.post(
                f"{stack.matcher}/v1/search",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                matches = (await resp.json())["matches"]
            total += note("matcher", t)
            ids = [m["image_id"] for m in matches]
            t = time.perf_counter()
            await catalogue.hydrate(params, ids)
            total += note("es_hydrate", t)
            t = time.perf_counter()
            await catalogue.similar(params, stored_vector(analysis.embedding), 100)
            total += note("es_similar", t)
            t = time.perf_counter()
            await catalogue.keyword(params, 100)  # as deep as the look-alikes it re-ranks
            total += note("es_keyword", t)
            times.setdefault("one after the other", []).append(total)
    await pool.close()
    return times


# --- load -----------------------------------------------------------------------------------


@dataclass
class Level:
    clients: int
    seconds: float = 0.0
    done: list[float] = field(default_factory=list)
    first_hit: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)  # gateway's own cost, from timings_ms
    took: list[float] = field(default_factory=list)
    dup_before_keyword: int = 0
    with_duplicates: int = 0
    errors: int = 0
    warnings: int = 0
    error_samples: list[str] = field(default_factory=list)


async def one_search(
    http: aiohttp.ClientSession, url: str, image: bytes, words: str, level: Level
) -> None:
    form = aiohttp.FormData()
    form.add_field("image", image, filename="query.jpg", content_type="image/jpeg")
    form.add_field("q", words)
    form.add_field("limit", str(LIMIT))
    started = time.perf_counter()
    first: float | None = None
    done: dict[str, Any] | None = None
    first_match = None
    try:
        async with http.post(f"{url}/v1/search", data=form) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            async for raw in resp.content:
                line = json.loads(raw)
                if line["type"] == "hit" and first is None:
                    first = time.perf_counter()
                    first_match = line["match"]
                elif line["type"] == "done":
                    done = line
        if done is None:
            raise RuntimeError("the stream ended without a done line")
    except Exception as exc:  # every failure counts, whatever it is
        level.errors += 1
        if len(level.error_samples) < 3:
            level.error_samples.append(f"{type(exc).__name__}: {exc}")
        return
    end = time.perf_counter()
    level.done.append((end - started) * 1000)
    if first is not None:
        level.first_hit.append((first - started) * 1000)
    timings = done.get("timings_ms", {})
    level.own.append(float(timings.get("gateway", float("nan"))))
    level.took.append(float(done["took_ms"]))
    if done["warnings"]:
        level.warnings += 1
    if first_match == "duplicate":
        level.with_duplicates += 1
        first_at, keyword_at = timings.get("first_hit_at"), timings.get("es_keyword_done_at")
        if first_at is not None and keyword_at is not None and first_at < keyword_at:
            level.dup_before_keyword += 1


async def run_level(url: str, queries: list[bytes], clients: int, seconds: float) -> Level:
    level = Level(clients)
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        # Warm: one request per client, not counted.
        warm = Level(clients)
        await asyncio.gather(
            *(
                one_search(http, url, queries[i % len(queries)], "portrait", warm)
                for i in range(clients)
            )
        )
        stop_at = time.perf_counter() + seconds
        started = time.perf_counter()

        async def client(n: int) -> None:
            rng = random.Random(n)
            while time.perf_counter() < stop_at:
                await one_search(http, url, rng.choice(queries), rng.choice(WORDS), level)

        await asyncio.gather(*(client(n) for n in range(clients)))
        level.seconds = time.perf_counter() - started
    return level


# --- report ---------------------------------------------------------------------------------


def report(
    backends: dict[str, list[float]], levels: list[Level], synthetic: int, reps: int
) -> None:
    med = {k: statistics.median(v) for k, v in backends.items()}
    print(f"\nBackend calls alone (median of {reps}, ms; ES holds 27 sample + {synthetic} docs)")
    print(f"  {'call':<22}{'p50':>9}{'p99':>9}")
    for name, values in backends.items():
        print(f"  {name:<22}{med[name]:>9.1f}{pct(values, 99):>9.1f}")
    chain = med["matcher"] + med["es_hydrate"]
    slowest = max(chain, med["es_similar"], med["es_keyword"])
    concurrent_ideal = med["fingerprint"] + slowest
    print(
        f"  ideal concurrent answer = fingerprint + slowest branch (matcher + hydrate, "
        f"look-alikes or keyword) = "
        f"{concurrent_ideal:.1f} ms; one after the other = {med['one after the other']:.1f} ms "
        f"(concurrency saves {med['one after the other'] / concurrent_ideal:.2f}x)"
    )

    print("\nConcurrent clients, 1 MP JPEG + words each (ms)")
    header = (
        f"  {'clients':>7}{'req/s':>8}{'n':>6}{'err':>5}{'warn':>6}"
        f"{'first p50':>11}{'first p99':>11}{'done p50':>10}{'done p99':>10}"
        f"{'own p50':>9}{'own p99':>9}{'dup<kw':>9}"
    )
    print(header)
    for lv in levels:
        n = len(lv.done)
        dup = f"{lv.dup_before_keyword}/{lv.with_duplicates}" if lv.with_duplicates else "-"
        print(
            f"  {lv.clients:>7}{n / lv.seconds:>8.1f}{n:>6}{lv.errors:>5}{lv.warnings:>6}"
            f"{pct(lv.first_hit, 50):>11.1f}{pct(lv.first_hit, 99):>11.1f}"
            f"{pct(lv.done, 50):>10.1f}{pct(lv.done, 99):>10.1f}"
            f"{pct(lv.own, 50):>9.1f}{pct(lv.own, 99):>9.1f}{dup:>9}"
        )
        for sample in lv.error_samples:
            print(f"          error: {sample}")
    one = levels[0]
    if one.done:
        done50 = pct(one.done, 50)
        print(
            f"\n  1 client: full answer p50 {done50:.1f} ms vs backends one after the other "
            f"{med['one after the other']:.1f} ms ({med['one after the other'] / done50:.2f}x); "
            f"full answer - fingerprint - slowest branch = "
            f"{done50 - med['fingerprint'] - slowest:.1f} ms"
        )
    print(
        "  own = time inside the gateway with neither the upload nor a backend call in flight "
        "(done line's timings_ms.gateway);\n  dup<kw = answers whose first hit (a duplicate) "
        "was sent before the keyword search finished."
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        data_dir = Path(tmp)
        print(f"starting the local stack in {data_dir} ...", flush=True)
        stack = start_stack(data_dir, args.es_timeout)
        try:
            print(f"indexing {args.synthetic} synthetic documents ...", flush=True)
            await index_synthetic(stack.es_url, args.synthetic)
            catalogue = materialize(data_dir / "catalogue")
            paths = {
                c["image_id"]: next(stack.catalogue.glob(f"{c['image_id']}.*")) for c in catalogue
            }
            queries = [one_megapixel_jpeg(paths[i]) for i in QUERY_IMAGES]
            print(
                f"queries: {len(queries)} JPEGs of ~1 MP, "
                f"{statistics.mean(len(q) for q in queries) / 1024:.0f} KB on average",
                flush=True,
            )
            backends = await time_backends(stack, queries, args.reps)
            levels = []
            for clients in args.levels:
                print(f"running {clients} client(s) for {args.seconds:.0f} s ...", flush=True)
                levels.append(await run_level(stack.gateway, queries, clients, args.seconds))
            report(backends, levels, args.synthetic, args.reps)
        finally:
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k docs, 5 s per level")
    parser.add_argument("--synthetic", type=int, default=None, help="synthetic ES documents")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per level")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of each call alone")
    parser.add_argument(
        "--es-timeout",
        type=float,
        default=30.0,
        help="the gateway's Elasticsearch deadline [30 s]: the stand-in's scans (~0.5 s each "
        "at 10k documents) queue up under 8+ clients and would hit the 3 s default, turning "
        "every answer into a degraded one",
    )
    parser.add_argument(
        "--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    args = parser.parse_args()
    args.synthetic = (
        args.synthetic if args.synthetic is not None else (2000 if args.quick else 10_000)
    )
    args.seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 15.0)
    args.reps = args.reps if args.reps is not None else (10 if args.quick else 30)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
