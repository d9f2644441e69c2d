"""The README's run command: the whole system comes up with the sample catalogue, a resized
sample is found first, a part that dies is restarted, and Ctrl-C or SIGTERM leaves no process
behind however the launcher was started."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.catalogue import publish
from lookalike_stack.processes import free_port
from lookalike_stack.sample import materialize
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


class Launcher:
    """`python -m lookalike_stack up` on free ports, its output read as it comes."""

    def __init__(
        self, data_dir: Path, *extra: str, preexec_fn: Callable[[], None] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in ("gateway", "matcher", "ingest")}
        cmd = [sys.executable, "-m", "lookalike_stack", "up", "--data-dir", str(data_dir)]
        for name, port in self.ports.items():
            cmd += [f"--{name}-port", str(port)]
        self.kafka_port, self.es_port = free_port(), free_port()
        cmd += ["--kafka-port", str(self.kafka_port), "--es-port", str(self.es_port), *extra]
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("LOOKALIKE_KAFKA_BOOTSTRAP", "LOOKALIKE_ES_URL")
        }
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # closed at the end of the output
            for line in self.proc.stdout:
                self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 180, since: int | None = None) -> str:
        """The first line that contains text, read from now on or, with since, from that line
        of the output on; fails on an error or the end."""
        if since is not None:
            for seen in self.output[since:]:
                if text in seen:
                    return seen
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {text!r} within {timeout:.0f}s:\n" + "\n".join(self.output))
            if line is None:
                pytest.fail(f"the launcher ended before {text!r}:\n" + "\n".join(self.output))
            self.output.append(line)
            if text in line:
                return line
            if "error:" in line and "error:" not in text:
                pytest.fail("\n".join(self.output))

    def rest(self, timeout: float = 60) -> str:
        """Everything it printed, once it has ended."""
        deadline = time.monotonic() + timeout
        while (line := self._lines.get(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            self.output.append(line)
        return "\n".join(self.output)

    def pid_of(self, part: str) -> int:
        """The pid of the launcher's child running `part` (a module or noida-db)."""
        for pid in _children_of(self.proc.pid):
            if part in Path(f"/proc/{pid}/cmdline").read_text():
                return pid
        raise AssertionError(f"no child runs {part}")

    def search(self, image: bytes) -> list[dict[str, Any]]:
        body, content_type = _multipart(image)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['gateway']}/v1/search",
            data=body,
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith("application/x-ndjson")
            return [json.loads(line) for line in resp.read().splitlines()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def launchers() -> Iterator[Callable[..., Launcher]]:
    started: list[Launcher] = []

    def start(*args: Any, **kwargs: Any) -> Launcher:
        started.append(Launcher(*args, **kwargs))
        return started[-1]

    yield start
    for launcher in started:
        launcher.stop()


def _ignore_stop_signals() -> None:
    """What a launcher started in the background by a script inherits (`run-local.sh &` in
    a non-interactive shell ignores SIGINT); SIGTERM too, to show both are set explicitly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _assert_all_gone(pids: set[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_stack_comes_up_finds_a_resized_sample_and_ctrl_c_stops_it_even_if_ignored(
    tmp_path: Path, launchers: Callable[..., Launcher]
) -> None:
    stack = launchers(tmp_path / "stack", preexec_fn=_ignore_stop_signals)
    up = stack.wait_for("lookalike is up")
    assert f"http://127.0.0.1:{stack.ports['gateway']}/" in up
    for part in ("noida-db", "lookalike_matcher", "lookalike_ingest", "lookalike_gateway"):
        stack.pid_of(part)  # each part runs under the launcher
    children = _descendants_of(stack.proc.pid)  # and their process pools

    sample = tmp_path / "stack" / "catalogue" / "img-00006.jpg"
    lines = stack.search(resized_copy(sample, 0.4))
    assert lines[0]["image_id"] == "img-00006" and lines[0]["match"] == "duplicate"

    stack.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert stack.proc.wait(timeout=60) == 0
    stack.wait_for("[lookalike] stopped")
    _assert_all_gone(children)


def test_killed_parts_are_restarted_and_sigterm_stops_them_even_if_ignored(
    tmp_path: Path, launchers: Callable[..., Launcher]
) -> None:
    stack = launchers(tmp_path / "stack", preexec_fn=_ignore_stop_signals)
    stack.wait_for("lookalike is up")
    sample = resized_copy(tmp_path / "stack" / "catalogue" / "img-00006.jpg", 0.4)
    before_kills = len(stack.output)

    for part in ("lookalike_matcher", "lookalike_ingest", "lookalike_gateway"):
        os.kill(stack.pid_of(part), signal.SIGKILL)
    for name in ("matcher", "ingest", "gateway"):
        stack.wait_for(f"{name} is ready again", since=before_kills)
    said = "\n".join(stack.output)
    for name in ("matcher", "ingest", "gateway"):
        assert re.search(rf"{name} stopped unexpectedly \(code -9\); restarting in [\d.]+ s", said)
    restarted = stack.wait_for("restarted ingest (pid ", since=before_kills)
    assert stack.pid_of("lookalike_ingest") == int(restarted.split("pid ")[1].rstrip(")"))
    assert stack.search(sample)[0]["image_id"] == "img-00006"  # the matcher replayed its topic

    os.kill(stack.pid_of("noida-db"), signal.SIGKILL)
    stack.wait_for("noida-db is ready again")
    assert stack.search(sample)[0]["image_id"] == "img-00006"
    # and the new ingest does its job: a changed title reaches the search answers
    settings = CommonSettings(
        kafka_bootstrap=f"127.0.0.1:{stack.kafka_port}", es_url=f"http://127.0.0.1:{stack.es_port}"
    )
    catalogue = materialize(stack.data_dir / "catalogue")
    event = next(e for e in catalogue if e["image_id"] == "img-00006")
    asyncio.run(publish(settings, [{**event, "version": 2, "title": "Seen after restarts"}]))
    deadline = time.monotonic() + 60
    while stack.search(sample)[0]["doc"]["title"] != "Seen after restarts":
        assert time.monotonic() < deadline, "the restarted ingest did not index the update"
        time.sleep(0.5)

    lines = (stack.data_dir / "logs" / "stack.log").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    restarts = {entry["part"] for entry in logged if entry["message"].startswith("restarted ")}
    assert restarts == {"matcher", "ingest", "gateway", "noida-db"}
    children = _descendants_of(stack.proc.pid)
    stack.proc.send_signal(signal.SIGTERM)  # ignored when inherited, handled by the launcher
    assert stack.proc.wait(timeout=60) == 0
    stack.wait_for("[lookalike] stopped")
    _assert_all_gone(children)


def test_a_part_that_keeps_dying_stops_the_stack_with_its_log_tail(
    tmp_path: Path, launchers: Callable[..., Launcher]
) -> None:
    stack = launchers(tmp_path / "stack", "--no-sample")
    stack.wait_for("lookalike is up")
    children = _descendants_of(stack.proc.pid)
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the matcher's own
        os.kill(stack.pid_of("lookalike_matcher"), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:  # take the matcher's port as soon as the kernel lets go of it
            try:
                thief.bind(("127.0.0.1", stack.ports["matcher"]))
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        thief.listen()

        error = stack.wait_for("error:", timeout=240)
        assert stack.proc.wait(timeout=60) == 1

    assert "matcher stopped (code 1) 5 times in a row" in error
    said = stack.rest()
    assert "address already in use" in said.split(error)[1]  # why, from the matcher's log
    assert said.count("matcher stopped unexpectedly") == 4  # restarted 4 times first
    _assert_all_gone(children)


def test_taken_port_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
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
