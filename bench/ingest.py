"""Ingest benchmark.

1. Fingerprint cost: the full lookalike fingerprint (one draft-mode decode, every hash,
   palette, colours, layout) against the naive `imagehash.phash(Image.open(path))` on the
   same real JPEGs (sample photographs re-encoded at 1-4 megapixels), one core, medians.
2. End to end through the embedded stack: events/s with N ingest worker processes on a
   backlog, and the time from publish to searchable (matcher and Elasticsearch) for single
   events when nothing is backlogged, p50/p99. Run once with the stand-in's Kafka and once
   with the Tansu broker for Kafka (Elasticsearch from the stand-in both times): the
   stand-in answers an empty fetch at once, so every idle consumer polls it thousands of
   times a second and takes CPU from the work being measured.

    python bench/ingest.py                 # both parts
    python bench/ingest.py --part fingerprint --repeat 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image
from stack import BenchStack, percentile

from lookalike_shared.fingerprint import FINGERPRINT_SIDE, fingerprint_bytes
from lookalike_shared.imaging import decode_image
from lookalike_stack.catalogue import publish
from lookalike_stack.sample import materialize

PHOTOS = ("img-00001", "img-00003", "img-00004", "img-00006", "img-00008", "img-00009",
          "img-00020", "img-00024", "img-00025", "img-00026")  # fmt: skip
MEGAPIXELS = (1.0, 1.6, 2.5, 4.0)


def make_jpegs(folder: Path) -> list[Path]:
    """Real photographs from the sample catalogue, resized to 1-4 MP and saved as JPEG q90."""
    catalogue = folder / "catalogue"
    materialize(catalogue)
    out = []
    for n, image_id in enumerate(PHOTOS):
        source = next(catalogue.glob(f"{image_id}.*"))
        mp = MEGAPIXELS[n % len(MEGAPIXELS)]
        with Image.open(source) as img:
            rgb = img.convert("RGB")
            scale = (mp * 1e6 / (rgb.width * rgb.height)) ** 0.5
            big = rgb.resize(
                (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS
            )
        path = folder / f"{image_id}-{mp}mp.jpg"
        big.save(path, "JPEG", quality=90)
        out.append(path)
    return out


def median_ms(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def bench_fingerprint(folder: Path, repeat: int) -> None:
    paths = make_jpegs(folder)
    print(f"\n## Fingerprint cost, one core, median of {repeat} runs per image\n")
    print("| image | MP | naive phash ms | draft decode alone ms | full fingerprint ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    naive_all, decode_all, ours_all = [], [], []
    for path in paths:
        data = path.read_bytes()
        naive = median_ms(lambda p=path: imagehash.phash(Image.open(p)), repeat)
        decode = median_ms(lambda d=data: decode_image(d, FINGERPRINT_SIDE), repeat)
        ours = median_ms(lambda d=data: fingerprint_bytes(d), repeat)
        naive_all.append(naive)
        decode_all.append(decode)
        ours_all.append(ours)
        with Image.open(path) as img:
            mp = img.width * img.height / 1e6
        print(
            f"| {path.stem} | {mp:.1f} | {naive:.1f} | {decode:.1f} | {ours:.1f} "
            f"| {ours / naive:.2f} |"
        )
    n, d, o = (statistics.median(v) for v in (naive_all, decode_all, ours_all))
    print(f"| **median** | | **{n:.1f}** | **{d:.1f}** | **{o:.1f}** | **{o / n:.2f}** |")
    print(f"\nimages/s on one core: naive {1000 / n:.0f}, lookalike {1000 / o:.0f}")
    print(f"the draft decode alone costs {d / n:.2f} of the naive pHash")


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def bench_end_to_end(folder: Path, workers: int, backlog: int, singles: int, kafka: str) -> None:
    with BenchStack(folder, ingest_workers=workers, kafka=kafka) as stack:
        settings, catalogue = stack.settings, stack.catalogue
        events = [
            {**catalogue[i % len(catalogue)], "image_id": f"bl-{i:06d}", "version": 1}
            for i in range(backlog)
        ]
        cpu_before = stack.cpu_by_process()
        started = time.perf_counter()
        asyncio.run(publish(settings, events))
        while stack.matcher_images() < backlog or stack.es_count() < backlog:
            if time.perf_counter() - started > 900:
                raise SystemExit(f"backlog not done after 900 s ({stack.matcher_images()} held)")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in stack.cpu_by_process().items()}
        broker = {"embedded": "the stand-in", "tansu": "the Tansu broker"}[kafka]
        print(f"\n## End to end, {workers} ingest worker processes, Kafka from {broker}\n")
        print(f"backlog of {backlog} events: {elapsed:.1f} s, **{backlog / elapsed:.0f} events/s**")
        print(f"CPU ms per event, by process (with its pool), {os.cpu_count()} cores:")
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            print(f"  {name:24s} {seconds * 1000 / backlog:6.1f}")
        print(f"  {'all':24s} {sum(cpu.values()) * 1000 / backlog:6.1f}")

        latencies = []
        matcher = f"http://127.0.0.1:{stack.matcher_port}/v1/images"
        for i in range(singles):
            image_id = f"single-{i:04d}"
            event = {**catalogue[i % len(catalogue)], "image_id": image_id, "version": 1}
            sent = time.perf_counter()
            asyncio.run(publish(settings, [event]))
            while _get(f"{matcher}/{image_id}") != 200 or (
                _get(f"{settings.es_url}/{settings.es_alias}/_doc/{image_id}") != 200
            ):
                time.sleep(0.005)
            latencies.append(time.perf_counter() - sent)
        print(
            f"publish to searchable, {singles} single events: "
            f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("fingerprint", "end-to-end", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=30, help="runs per image [30]")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes [2]")
    parser.add_argument("--backlog", type=int, default=2000, help="events in the backlog [2000]")
    parser.add_argument("--singles", type=int, default=50, help="single events timed [50]")
    parser.add_argument(
        "--kafka",
        choices=("embedded", "tansu", "both"),
        default="both",
        help="Kafka for the end-to-end part: the stand-in's, the Tansu broker (which, unlike "
        "the stand-in, holds an empty fetch for fetch.max.wait.ms instead of answering at "
        "once), or each in turn [both]",
    )
    args = parser.parse_args()
    print(f"# lookalike ingest benchmark ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("fingerprint", "all"):
            bench_fingerprint(Path(tmp), args.repeat)
        if args.part in ("end-to-end", "all"):
            for kafka in ("embedded", "tansu") if args.kafka == "both" else (args.kafka,):
                bench_end_to_end(
                    Path(tmp) / f"e2e-{kafka}", args.workers, args.backlog, args.singles, kafka
                )


if __name__ == "__main__":
    main()
