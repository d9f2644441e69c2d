"""A matcher killed with SIGKILL and started again on the same data folder is ready again
from the snapshot it wrote on its own while running, plus the topic's tail, and gives the
same answers as before."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_shared.fingerprint import fingerprint_bytes
from lookalike_stack.catalogue import publish
from lookalike_stack.processes import free_port
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.services import run_pipeline, wait_until

pytestmark = pytest.mark.slow
QUERIES = ("img-00003", "img-00008", "img-00024", "img-00026")


def _start_matcher(
    settings: CommonSettings, data_dir: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LOOKALIKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOOKALIKE_FINGERPRINT_TOPIC": settings.fingerprint_topic,
        "LOOKALIKE_MATCHER_DATA_DIR": str(data_dir),
        "LOOKALIKE_MATCHER_PORT": str(port),
        "LOOKALIKE_BIND_HOST": "127.0.0.1",
        # Snapshots while records arrive, so one exists before the kill; none is written
        # on a SIGKILL.
        "LOOKALIKE_SNAPSHOT_INTERVAL_SECONDS": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "lookalike_matcher"], env=env, stdout=out, stderr=out
        )


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=5) as resp:
        return dict(json.load(resp))


def _snapshot_images(data_dir: Path) -> int:
    try:
        return int(json.loads((data_dir / "manifest.json").read_text())["images"])
    except (OSError, ValueError, KeyError):
        return 0


def _answers(port: int, root: Path) -> list[list[tuple[str, str]]]:
    out = []
    for image_id in QUERIES:
        fingerprint = fingerprint_bytes(resized_copy(sample_path(root, image_id), 0.5))
        body = json.dumps({"fingerprint": fingerprint.model_dump(mode="json"), "limit": 5}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            out.append([(m["image_id"], m["match"]) for m in json.load(resp)["matches"]])
    return out


async def test_killed_matcher_is_ready_again_with_the_same_answers(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    root, catalogue = sample_catalogue
    settings = lookalike_settings
    async with run_pipeline(settings, root) as pipeline:
        await publish(settings, catalogue)

        async def indexed() -> bool:
            return (await pipeline.matcher_stats())["images"] == len(catalogue)

        await wait_until(indexed, timeout=120, what="the sample catalogue")

    port = free_port()
    matcher = _start_matcher(settings, tmp_path / "matcher", port, tmp_path / "matcher.log")
    try:
        await wait_until(lambda: asyncio.to_thread(_ready, port), timeout=60, what="first start")
        before = await asyncio.to_thread(_answers, port, root)
        assert [answer[0] for answer in before] == [(q, "duplicate") for q in QUERIES]

        async def snapshot_written() -> bool:
            return _snapshot_images(tmp_path / "matcher") == len(catalogue)

        await wait_until(snapshot_written, timeout=60, what="a periodic snapshot")
        matcher.send_signal(signal.SIGKILL)
        matcher.wait(timeout=10)

        # While it was down, the catalogue changed: a delete must be seen after the restart.
        await publish(settings, deletes=[{"image_id": "img-00008", "version": 2}])
        async with run_pipeline(settings, root) as pipeline:

            async def deleted() -> bool:
                return (await pipeline.matcher_stats())["images"] == len(catalogue) - 1

            await wait_until(deleted, timeout=60, what="the delete to be applied")

        matcher = _start_matcher(settings, tmp_path / "matcher", port, tmp_path / "matcher.log")
        await wait_until(lambda: asyncio.to_thread(_ready, port), timeout=60, what="the restart")
        stats = await asyncio.to_thread(_stats, port)
        assert stats["from_snapshot"] == len(catalogue)  # loaded, not replayed from scratch
        assert stats["replayed"] == 1  # only the tail: the delete
        after = await asyncio.to_thread(_answers, port, root)
        assert after[0] == before[0] and after[2:] == before[2:]
        assert "img-00008" not in [image_id for image_id, _ in after[1]]
    finally:
        if matcher.poll() is None:
            matcher.kill()
            matcher.wait()
