"""A real Prometheus (Debian's) scrapes the running services and answers, through its HTTP API,
with a metric of each after a search; each endpoint shows its own service's families only."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lookalike_stack.catalogue import publish
from lookalike_stack.processes import free_port
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.services import Pipeline, wait_until

pytestmark = pytest.mark.slow


def _query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return list(json.load(resp)["data"]["result"])
    except OSError:
        return []


async def test_prometheus_scrapes_a_metric_of_every_service_after_a_search(
    pipeline: Pipeline,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
    prometheus: str,
) -> None:
    root, catalogue = sample_catalogue
    await publish(pipeline.settings, catalogue[:3])

    async def indexed() -> bool:
        return (await pipeline.matcher_stats())["images"] == 3

    await wait_until(indexed, what="3 images indexed")
    status, _ = await pipeline.search(resized_copy(sample_path(root, "img-00001"), 0.5))
    assert status == 200

    # The services run in this test's process, each with its own metrics registry: the job
    # label in each query shows which service's endpoint the sample came from.
    targets = {
        "gateway": pipeline.gateway_url,
        "matcher": pipeline.matcher_url,
        "ingest": pipeline.ingest_url,
    }
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [url.removeprefix("http://")]}]}
            for job, url in targets.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))  # JSON is valid YAML
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        prometheus,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wanted = {
            "gateway": 'lookalike_gateway_requests_total{job="gateway",route="/v1/search"}',
            "matcher": 'lookalike_matcher_index_images{job="matcher"}',
            "ingest": 'lookalike_ingest_events_total{job="ingest",outcome="indexed"}',
        }
        for job, promql in wanted.items():

            async def scraped(promql: str = promql) -> bool:
                return bool(await asyncio.to_thread(_query, port, promql))

            await wait_until(scraped, timeout=60, what=f"Prometheus to scrape {job}")
            result = _query(port, promql)
            assert result[0]["metric"]["job"] == job
            assert float(result[0]["value"][1]) >= 1
        up = {r["metric"]["job"]: r["value"][1] for r in _query(port, "up")}
        assert up == {"gateway": "1", "matcher": "1", "ingest": "1"}
        for job in targets:
            ours = _query(port, f'count by (__name__) ({{job="{job}",__name__=~"lookalike_.+"}})')
            families = {r["metric"]["__name__"] for r in ours}
            assert families, job
            assert {f for f in families if not f.startswith(f"lookalike_{job}_")} == set(), job
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
