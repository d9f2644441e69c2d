"""Bounded soak: mixed ingest and search load on the embedded stack.

A publisher sends catalogue changes (new images, updates, deletes) at a steady rate while
search clients upload resized catalogue images. Every interval it prints throughput,
search latency percentiles and errors; at the end, the resident memory of each service at
start, after the first minute and at the end, all of it and its private part (without the
pages of mapped files, such as the matcher's postings segments, which are page cache).
Stops by itself.

    python bench/soak.py                      # 10 minutes
    python bench/soak.py --minutes 2 --rate 20 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from stack import BenchStack, percentile, rss_mb

from lookalike_stack.catalogue import publish


def _queries(catalogue: list[dict[str, Any]], root: Path) -> list[bytes]:
    out = []
    for entry in catalogue:
        path = next(root.glob(f"{entry['image_id']}.*"))
        with Image.open(path) as img:
            small = img.convert("RGB").resize((max(8, img.width // 2), max(8, img.height // 2)))
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=75)
        out.append(buffer.getvalue())
    return out


class Soak:
    def __init__(self, stack: BenchStack, rate: float, clients: int) -> None:
        self.stack = stack
        self.rate = rate
        self.clients = clients
        self.latencies: list[float] = []
        self.searches = self.errors = self.published = 0
        self.live: dict[str, int] = {}  # image id -> version, what the catalogue holds

    async def publisher(self, until: float) -> None:
        catalogue = self.stack.catalogue
        n = 0
        while time.monotonic() < until:
            started = time.monotonic()
            roll = random.random()
            if roll < 0.1 and self.live:  # delete
                image_id = random.choice(list(self.live))
                version = self.live.pop(image_id) + 1
                await publish(
                    self.stack.settings, deletes=[{"image_id": image_id, "version": version}]
                )
            elif roll < 0.3 and self.live:  # update
                image_id = random.choice(list(self.live))
                self.live[image_id] += 1
                entry = {
                    **random.choice(catalogue),
                    "image_id": image_id,
                    "version": self.live[image_id],
                }
                await publish(self.stack.settings, [entry])
            else:  # new image
                image_id = f"soak-{n:07d}"
                n += 1
                self.live[image_id] = 1
                await publish(
                    self.stack.settings,
                    [{**random.choice(catalogue), "image_id": image_id, "version": 1}],
                )
            self.published += 1
            await asyncio.sleep(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    async def searcher(self, until: float, queries: list[bytes]) -> None:
        url = f"http://127.0.0.1:{self.stack.gateway_port}/v1/search"
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < until:
                form = aiohttp.FormData()
                form.add_field(
                    "image", random.choice(queries), filename="q.jpg", content_type="image/jpeg"
                )
                started = time.monotonic()
                try:
                    async with http.post(
                        url, data=form, timeout=aiohttp.ClientTimeout(total=60)
                    ) as resp:
                        body = await resp.text()
                    if resp.status != 200 or '"type": "done"' not in body:
                        self.errors += 1
                    else:
                        self.latencies.append(time.monotonic() - started)
                except (aiohttp.ClientError, TimeoutError):
                    self.errors += 1
                self.searches += 1

    def rss(self) -> dict[str, tuple[float, float]]:
        """Per service: (all resident MB, private resident MB)."""
        return {
            name: (rss_mb(child.proc.pid), rss_mb(child.proc.pid, "RssAnon"))
            for name, child in self.stack.services.items()
        }


async def run(
    stack: BenchStack, minutes: float, rate: float, clients: int, interval: float
) -> None:
    soak = Soak(stack, rate, clients)
    queries = _queries(stack.catalogue, stack.folder / "catalogue")
    started = time.monotonic()
    until = started + minutes * 60
    rss_start = soak.rss()
    rss_minute: dict[str, tuple[float, float]] = {}
    tasks = [asyncio.create_task(soak.publisher(until))]
    tasks += [asyncio.create_task(soak.searcher(until, queries)) for _ in range(clients)]
    print("| t (s) | events sent | indexed (ES) | searches | search p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    seen = 0
    while time.monotonic() < until:
        await asyncio.sleep(min(interval, max(0.0, until - time.monotonic())))
        window = soak.latencies[seen:]
        seen = len(soak.latencies)
        elapsed = time.monotonic() - started
        if not rss_minute and elapsed >= 60:
            rss_minute = soak.rss()
        count = await asyncio.to_thread(stack.es_count)
        print(
            f"| {elapsed:.0f} | {soak.published} | {count} | {soak.searches} | "
            f"{statistics.median(window) * 1000 if window else 0:.0f} | "
            f"{percentile(window, 0.99) * 1000:.0f} | {soak.errors} |",
            flush=True,
        )
    await asyncio.gather(*tasks)
    rss_end = soak.rss()
    rss_minute = rss_minute or rss_start
    print(
        "\n| service | RSS start MB | after 1 min MB | end MB | growth after 1 min |"
        " private after 1 min MB | private end MB | private growth |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in rss_start:
        cells = []
        for k in (0, 1):
            minute, end = rss_minute[name][k], rss_end[name][k]
            start = f"{rss_start[name][k]:.0f} | " if k == 0 else ""
            cells.append(f"{start}{minute:.0f} | {end:.0f} | {(end - minute) / minute * 100:+.1f}%")
        print(f"| {name} | {' | '.join(cells)} |")
    total = time.monotonic() - started
    p50 = statistics.median(soak.latencies or [0]) * 1000
    print(
        f"\n{soak.published} events ({soak.published / total:.1f}/s), {soak.searches} searches "
        f"({soak.searches / total:.1f}/s), search p50 {p50:.0f} ms "
        f"p99 {percentile(soak.latencies, 0.99) * 1000:.0f} ms, errors {soak.errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="duration [10]")
    parser.add_argument("--rate", type=float, default=10.0, help="catalogue events per second [10]")
    parser.add_argument("--clients", type=int, default=2, help="concurrent search clients [2]")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between rows [30]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, BenchStack(Path(tmp), ingest_workers=2) as stack:
        asyncio.run(run(stack, args.minutes, args.rate, args.clients, args.interval))


if __name__ == "__main__":
    main()
