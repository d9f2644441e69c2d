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
   With --profile the same backlog runs twice, each on a fresh stack: into lookalike's own
   index, and with a catalogue profile into a library's index (lookalike_stack.library) holding
   one library document per image id before ingest starts, so every write is the profile's
   scripted partial update of the namespace; the table gives both and the ratio.

    python bench/ingest.py                 # both parts
    python bench/ingest.py --part end-to-end --kafka embedded --profile
    python bench/ingest.py --part fingerprint --repeat 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image
from stack import BenchStack, percentile

from lookalike_shared.fingerprint import FINGERPRINT_SIDE, fingerprint_bytes
from lookalike_shared.imaging import decode_image
from lookalike_stack.catalogue import publish
from lookalike_stack.library import (
    ALIAS,
    NAMESPACE,
    create_library_index,
    library_document,
    write_profile,
)
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


@dataclass
class EndToEnd:
    mode: str
    events_per_second: float
    cpu_ms_per_event: float
    singles_p50_ms: float


@dataclass
class Target:
    """Where an image counts as searchable in Elasticsearch: lookalike's own index, or the
    library's with lookalike's fields under the profile's namespace."""

    es_url: str
    alias: str
    namespace: str | None = None  # None: lookalike's own index

    def path(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def enriched(self) -> int:
        """Documents holding lookalike's embedding (the same count query in both modes)."""
        body = json.dumps({"query": {"exists": {"field": self.path("embedding")}}}).encode()
        request = urllib.request.Request(
            f"{self.es_url}/{self.alias}/_count",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(json.load(resp)["count"])

    def has(self, image_id: str) -> bool:
        url = f"{self.es_url}/{self.alias}/_doc/{image_id}?_source_includes={self.path('version')}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                source = json.load(resp).get("_source") or {}
        except urllib.error.HTTPError:
            return False
        own = source.get(self.namespace) if self.namespace else source
        return isinstance(own, dict) and own.get("version") is not None


def _library(ids: list[str], folder: Path) -> Any:
    """The BenchStack hook that fills a library index with one library document per image
    id (before ingest starts, as the library's application would have) and hands the
    services its profile."""

    def prepare(stack: BenchStack) -> dict[str, str]:
        catalogue = stack.catalogue
        documents = (
            (image_id, library_document(image_id, catalogue[n % len(catalogue)], n))
            for n, image_id in enumerate(ids)
        )
        asyncio.run(create_library_index(stack.settings.es_url, documents))
        return {"LOOKALIKE_CATALOGUE_PROFILE": str(write_profile(folder))}

    return prepare


def bench_end_to_end(
    folder: Path, workers: int, backlog: int, singles: int, kafka: str, profile: bool = False
) -> EndToEnd:
    backlog_ids = [f"bl-{i:06d}" for i in range(backlog)]
    single_ids = [f"single-{i:04d}" for i in range(singles)]
    prepare = None
    if profile:
        prepare = _library(backlog_ids + single_ids, folder / "library")
    with BenchStack(folder, ingest_workers=workers, kafka=kafka, prepare=prepare) as stack:
        settings, catalogue = stack.settings, stack.catalogue
        target = (
            Target(settings.es_url, ALIAS, NAMESPACE)
            if profile
            else Target(settings.es_url, settings.es_alias)
        )
        events = [
            {**catalogue[i % len(catalogue)], "image_id": image_id, "version": 1}
            for i, image_id in enumerate(backlog_ids)
        ]
        cpu_before = stack.cpu_by_process()
        started = time.perf_counter()
        asyncio.run(publish(settings, events))
        while stack.matcher_images() < backlog or target.enriched() < backlog:
            if time.perf_counter() - started > 900:
                raise SystemExit(f"backlog not done after 900 s ({stack.matcher_images()} held)")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        cpu = {k: v - cpu_before.get(k, 0.0) for k, v in stack.cpu_by_process().items()}
        broker = {"embedded": "the stand-in", "tansu": "the Tansu broker"}[kafka]
        mode = "a catalogue profile (library index)" if profile else "lookalike's own index"
        print(f"\n## End to end, {workers} ingest worker processes, Kafka from {broker}, {mode}\n")
        print(f"backlog of {backlog} events: {elapsed:.1f} s, **{backlog / elapsed:.0f} events/s**")
        print(f"CPU ms per event, by process (with its pool), {os.cpu_count()} cores:")
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            print(f"  {name:24s} {seconds * 1000 / backlog:6.1f}")
        all_ms = sum(cpu.values()) * 1000 / backlog
        print(f"  {'all':24s} {all_ms:6.1f}")

        latencies = []
        matcher = f"http://127.0.0.1:{stack.matcher_port}/v1/images"
        for i, image_id in enumerate(single_ids):
            event = {**catalogue[i % len(catalogue)], "image_id": image_id, "version": 1}
            sent = time.perf_counter()
            asyncio.run(publish(settings, [event]))
            while _get(f"{matcher}/{image_id}") != 200 or not target.has(image_id):
                time.sleep(0.005)
            latencies.append(time.perf_counter() - sent)
        p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
        print(
            f"publish to searchable, {singles} single events: "
            f"p50 {p50:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
        )
    return EndToEnd(mode, backlog / elapsed, all_ms, p50)


def compare_profile(results: list[EndToEnd]) -> None:
    own, lib = (next(r for r in results if ("profile" in r.mode) == p) for p in (False, True))
    print("\n## Own index against a catalogue profile, same backlog, same run\n")
    print("| mode | events/s | CPU ms/event | singles p50 ms |")
    print("|---|---:|---:|---:|")
    for r in (own, lib):
        print(
            f"| {r.mode} | {r.events_per_second:.1f} | {r.cpu_ms_per_event:.1f} "
            f"| {r.singles_p50_ms:.0f} |"
        )
    print(
        f"\nprofile / own: events/s {lib.events_per_second / own.events_per_second:.3f}, "
        f"CPU per event {lib.cpu_ms_per_event / own.cpu_ms_per_event:.3f} "
        "(target: events/s >= 0.90)"
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
    parser.add_argument(
        "--profile",
        action="store_true",
        help="end to end: run the same backlog twice, into lookalike's own index and with a "
        "catalogue profile into a library's index filled beforehand, and compare",
    )
    parser.add_argument(
        "--profile-first",
        action="store_true",
        help="with --profile: the profile's run first (alternate runs to see drift)",
    )
    args = parser.parse_args()
    print(f"# lookalike ingest benchmark ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("fingerprint", "all"):
            bench_fingerprint(Path(tmp), args.repeat)
        if args.part in ("end-to-end", "all"):
            for kafka in ("embedded", "tansu") if args.kafka == "both" else (args.kafka,):
                modes = [False, True] if args.profile else [False]
                if args.profile_first:
                    modes.reverse()
                results = [
                    bench_end_to_end(
                        Path(tmp) / f"e2e-{kafka}-{'profile' if p else 'own'}",
                        args.workers,
                        args.backlog,
                        args.singles,
                        kafka,
                        profile=p,
                    )
                    for p in modes
                ]
                if args.profile:
                    compare_profile(results)


if __name__ == "__main__":
    main()
