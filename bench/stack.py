"""The local stack for benchmarks: embedded stand-in, matcher, N ingest workers and a
gateway as real processes on free loopback ports.

With LOOKALIKE_BENCH_KAFKA and LOOKALIKE_BENCH_ES_URL set, the benchmarks use those servers
instead of the stand-in: a real Kafka and Elasticsearch (for example `docker compose up -d
kafka elasticsearch`, then LOOKALIKE_BENCH_KAFKA=localhost:9094
LOOKALIKE_BENCH_ES_URL=http://localhost:9200), for the figures the stand-in's linear scan
cannot give. Use empty servers: the benchmarks create their topics and indexes by name."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import set_up
from lookalike_stack.embedded import (
    Backends,
    start_embedded,
    start_embedded_service,
    start_second_kafka,
)
from lookalike_stack.processes import Child, Supervisor, free_port
from lookalike_stack.sample import materialize


@dataclass
class BenchStack:
    folder: Path
    ingest_workers: int = 2
    # "embedded": the stand-in serves Kafka and Elasticsearch; "tansu": a second broker
    # (lookalike_stack.embedded.start_second_kafka) serves Kafka, the stand-in only ES.
    kafka: str = "embedded"
    # Called once the backends, topics, index and sample catalogue are ready and before any
    # service starts; returns environment to add to every service's (a catalogue profile,
    # say, whose library index must exist before ingest and gateway check it).
    prepare: Callable[[BenchStack], dict[str, str]] | None = None
    supervisor: Supervisor = field(init=False)
    settings: CommonSettings = field(init=False)
    catalogue: list[dict[str, Any]] = field(init=False)
    services: dict[str, Child] = field(init=False, default_factory=dict)
    matcher_port: int = field(init=False, default_factory=free_port)
    gateway_port: int = field(init=False, default_factory=free_port)

    def __enter__(self) -> BenchStack:
        self.supervisor = Supervisor(self.folder / "logs")
        try:
            external = external_backends()
            if external is not None:
                backends = external
            elif self.kafka == "tansu":
                es_port = free_port()
                start_embedded_service(
                    self.supervisor, "elasticsearch", self.folder / "noida", es_port
                )
                backends = Backends(
                    start_second_kafka(self.supervisor, free_port()),
                    f"http://127.0.0.1:{es_port}",
                )
            else:
                backends = start_embedded(
                    self.supervisor, self.folder / "noida", free_port(), free_port()
                )
            self.settings = CommonSettings(
                kafka_bootstrap=backends.kafka_bootstrap,
                es_url=backends.es_url,
                kafka_idempotence=self.kafka != "tansu",
                kafka_idle_rest_ms=backends.idle_rest_ms,
            )
            asyncio.run(set_up(self.settings))
            self.catalogue = materialize(self.folder / "catalogue")
            env = {
                "LOOKALIKE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "LOOKALIKE_ES_URL": self.settings.es_url,
                "LOOKALIKE_KAFKA_IDEMPOTENCE": str(self.settings.kafka_idempotence).lower(),
                # idle consumers rest on the stand-in (it answers empty fetches at once)
                "LOOKALIKE_KAFKA_IDLE_REST_MS": str(self.settings.kafka_idle_rest_ms),
                "LOOKALIKE_BIND_HOST": "127.0.0.1",
                "LOOKALIKE_FILE_ROOT": str(self.folder / "catalogue"),
                "LOOKALIKE_MATCHER_PORT": str(self.matcher_port),
                "LOOKALIKE_MATCHER_DATA_DIR": str(self.folder / "matcher"),
                "LOOKALIKE_GATEWAY_PORT": str(self.gateway_port),
                "LOOKALIKE_MATCHER_URLS": f"http://127.0.0.1:{self.matcher_port}",
                "LOOKALIKE_POOL_WORKERS": "1",
                "LOOKALIKE_LOG_LEVEL": "WARNING",
            }
            if self.prepare is not None:
                env.update(self.prepare(self))
            self._start("matcher", "lookalike_matcher", self.matcher_port, env)
            for n in range(self.ingest_workers):
                port = free_port()
                self._start(
                    f"ingest-{n}",
                    "lookalike_ingest",
                    port,
                    {**env, "LOOKALIKE_INGEST_PORT": str(port)},
                )
            self._start("gateway", "lookalike_gateway", self.gateway_port, env)
        except BaseException:
            self.supervisor.stop_all()
            raise
        return self

    def _start(self, name: str, module: str, port: int, env: dict[str, str]) -> None:
        child = self.supervisor.start(name, [sys.executable, "-m", module], env)
        self.supervisor.wait_ready(child, f"http://127.0.0.1:{port}/readyz", 120)
        self.services[name] = child

    def __exit__(self, *exc: object) -> None:
        self.supervisor.stop_all()

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each child the stack started (servers and services)."""
        return {c.name: cpu_seconds(c.proc.pid) for c in self.supervisor.children}

    def matcher_images(self) -> int:
        url = f"http://127.0.0.1:{self.matcher_port}/v1/stats"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(json.load(resp)["images"])

    def es_count(self) -> int:
        url = f"{self.settings.es_url}/{self.settings.es_alias}/_count"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(json.load(resp)["count"])


def external_backends() -> Backends | None:
    """Servers named by LOOKALIKE_BENCH_KAFKA and LOOKALIKE_BENCH_ES_URL, if both are set."""
    kafka = os.environ.get("LOOKALIKE_BENCH_KAFKA")
    es_url = os.environ.get("LOOKALIKE_BENCH_ES_URL")
    if not (kafka and es_url):
        return None
    return Backends(kafka, es_url)


def _process_tree(pid: int) -> list[int]:
    """A process and all its live descendants."""
    out, pids = [], [pid]
    while pids:
        current = pids.pop()
        out.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        try:
            pids.extend(int(p) for p in children.read_text().split())
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its live children (a service
    and its process pool)."""
    total = 0
    for current in _process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process and its children (a service and its process pool):
    all of it (VmRSS), or the private part (RssAnon), without the mapped files' pages the
    kernel can take back."""
    total = 0
    for current in _process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0
