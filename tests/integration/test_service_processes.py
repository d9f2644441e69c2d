"""Each service as a real process, started as deployment starts it (python -m ...): SIGTERM
stops it cleanly with exit 0; one whose essential part dies exits non-zero, the reason in
its log and on stderr."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from tests.fixtures.matcher import make_topics

pytestmark = pytest.mark.slow

# The log line each service writes once it does its work.
RUNNING = {
    "lookalike_ingest": "ingest worker running",
    "lookalike_matcher": "index loaded",
    "lookalike_gateway": "serving",
}


def _env(settings: CommonSettings, file_root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LOOKALIKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOOKALIKE_KAFKA_IDLE_REST_MS": str(settings.kafka_idle_rest_ms),
        "LOOKALIKE_ES_URL": settings.es_url,
        "LOOKALIKE_CATALOGUE_TOPIC": settings.catalogue_topic,
        "LOOKALIKE_FINGERPRINT_TOPIC": settings.fingerprint_topic,
        "LOOKALIKE_ES_ALIAS": settings.es_alias,
        "LOOKALIKE_FILE_ROOT": str(file_root),
        "LOOKALIKE_GROUP_ID": f"lookalike-ingest-{settings.catalogue_topic}",
        "LOOKALIKE_BIND_HOST": "127.0.0.1",
        "LOOKALIKE_INGEST_PORT": "0",
        "LOOKALIKE_MATCHER_PORT": "0",
        "LOOKALIKE_GATEWAY_PORT": "0",
        "LOOKALIKE_POOL_WORKERS": "1",
        **extra,
    }


async def _start(service: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        service,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _log_until(proc: asyncio.subprocess.Process, message: str) -> list[dict[str, Any]]:
    """The JSON log lines the process writes, up to and including one saying `message`."""
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []
    async with asyncio.timeout(120):
        while line := await proc.stderr.readline():
            if line.startswith(b"{"):  # not a warning of Python's own, say
                lines.append(json.loads(line))
                if lines[-1]["message"] == message:
                    return lines
    raise AssertionError(f"the process ended without logging {message!r}: {lines}")


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("service", sorted(RUNNING))
async def test_sigterm_stops_a_service_cleanly_with_exit_0(
    service: str,
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    proc = await _start(service, _env(lookalike_settings, sample_catalogue[0]))
    try:
        started = await _log_until(proc, RUNNING[service])
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stopped = _json_lines(rest.decode())
    assert proc.returncode == 0, stopped
    assert {line["service"] for line in started + stopped} == {service.split("_")[1]}
    assert "stopping: asked to" in [line["message"] for line in stopped]


async def test_ingest_whose_consumer_loop_dies_exits_non_zero_saying_why(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    # An index name Elasticsearch refuses (upper case, a space): the loop dies setting up.
    env = _env(lookalike_settings, sample_catalogue[0], LOOKALIKE_ES_ALIAS="Not An Index")
    proc = await _start("lookalike_ingest", env)
    _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1
    text = stderr.decode()
    assert text.splitlines()[-1].startswith("ingest stopped: the consumer failed (BadRequestError")
    logged = _json_lines(text)
    failure = [line for line in logged if line["message"] == "stopping: an essential part failed"]
    assert failure and failure[0]["reason"].startswith("the consumer failed (BadRequestError")
