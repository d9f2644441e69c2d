"""Child processes that never outlive us: started in their own session (so Ctrl-C reaches
only the supervisor, which stops them in order), with a parent-death signal (so even a
SIGKILLed supervisor leaves no orphans), stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A part of the stack could not start; the message says which and why."""


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the supervisor's own cleanup still stops children


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{name} did not open port {port} within {timeout:.0f}s")


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Supervisor:
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, url: str, timeout: float) -> None:
        """Poll a /readyz URL until 200; fail fast if the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise StackError(
                    f"{child.name} exited with code {child.proc.returncode}; "
                    f"last lines of {child.log_path}:\n{child.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise StackError(
            f"{child.name} not ready after {timeout:.0f}s ({last}); see {child.log_path}"
        )

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop_all(self, grace: float = 15.0) -> None:
        """SIGTERM in reverse start order (services before the broker), then SIGKILL. Each
        child leads its own process group, so the signal reaches whatever it started too
        (such as a service's process pool)."""
        for child in reversed(self.children):
            _signal_group(child.proc, signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(child.proc, signal.SIGKILL)
                child.proc.wait()
            _signal_group(child.proc, signal.SIGKILL)  # stragglers left by the leader
        self.children.clear()


def _signal_group(proc: subprocess.Popen[bytes], signo: int) -> None:
    try:
        os.killpg(proc.pid, signo)
    except (ProcessLookupError, PermissionError):
        pass
