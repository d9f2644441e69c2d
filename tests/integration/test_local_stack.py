"""The README's run command: the whole system comes up with the sample catalogue, a resized
sample is found first, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lookalike_stack.processes import free_port
from tests.fixtures.images import resized_copy

pytestmark = pytest.mark.slow


def _descendants_of(pid: int) -> set[int]:
    found = set()
    for child in _children_of(pid):
        found |= {child} | _descendants_of(child)
    return found


def _children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            found.add(int(status.parent.name))
    return found


def _multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_stack_comes_up_finds_a_resized_sample_and_stops_cleanly(tmp_path: Path) -> None:
    gateway = free_port()
    cmd = [
        sys.executable, "-m", "lookalike_stack", "up",
        "--data-dir", str(tmp_path / "stack"),
        "--gateway-port", str(gateway),
        "--matcher-port", str(free_port()),
        "--ingest-port", str(free_port()),
        "--kafka-port", str(free_port()),
        "--es-port", str(free_port()),
    ]  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LOOKALIKE_KAFKA_BOOTSTRAP", "LOOKALIKE_ES_URL")
    }
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    output = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "lookalike is up" in line or "error:" in line:
                break
        assert "lookalike is up" in output[-1], "".join(output)
        assert f"http://127.0.0.1:{gateway}/" in output[-1]
        assert len(_children_of(proc.pid)) == 4  # noida-db, matcher, ingest, gateway
        children = _descendants_of(proc.pid)  # and their process pools

        sample = tmp_path / "stack" / "catalogue" / "img-00006.jpg"
        body, content_type = _multipart(resized_copy(sample, 0.4))
        request = urllib.request.Request(
            f"http://127.0.0.1:{gateway}/v1/search",
            data=body,
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in resp.read().splitlines()]
        assert lines[0]["image_id"] == "img-00006" and lines[0]["match"] == "duplicate"

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while (
            any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_taken_port_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lookalike_stack",
                "up",
                "--data-dir",
                str(tmp_path),
                "--gateway-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} for the gateway is already in use" in result.stdout
