"""Child processes that never outlive us: started in their own session (so Ctrl-C reaches
only the supervisor, which stops them in order), with a parent-death signal (so even a
SIGKILLed supervisor leaves no orphans), stopped with SIGTERM then SIGKILL.

With a RestartPolicy the supervisor also restarts a child that dies, with a backoff; only a
child that keeps dying straight away stops the stack (see `Supervisor.supervise`)."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1

log = logging.getLogger("lookalike_stack")


class StackError(RuntimeError):
    """A part of the stack could not start; the message says which and why."""


def _prepare_child() -> None:
    """Runs in the child between fork and exec. Ignored signals stay ignored through exec:
    a launcher started with SIGINT or SIGTERM ignored must not pass that on, or SIGTERM
    would not stop the child."""
    for signo in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signo, signal.SIG_DFL)
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


def ports_open(*ports: int) -> bool:
    for port in ports:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return False
    return True


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


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervised child that dies is restarted: after `first_delay` seconds, doubling
    with each death in a row up to `max_delay`. A child that stayed up `stable_after` seconds
    (and was ready again, if it has a readiness check) starts again from `first_delay`;
    `give_up_after` deaths in a row without staying up mean it cannot run (bad config, a
    port taken), and the stack stops."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 30.0
    give_up_after: int = 5

    def delay(self, deaths_in_a_row: int) -> float:
        return min(self.first_delay * 2.0 ** (deaths_in_a_row - 1), self.max_delay)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    deaths_in_a_row: int = 0
    restart_at: float | None = None  # set while it is dead and waiting for its restart
    # Once it has been ready: how to tell it is ready again after a restart.
    ready_check: Callable[[], bool] | None = None
    ready: bool = False

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Supervisor:
    log_dir: Path
    policy: RestartPolicy | None = None  # None: a dead child is reported, never restarted
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, self._spawn(name, argv, env or {}), self.log_dir / f"{name}.log")
        child.argv, child.env = argv, env or {}
        self.children.append(child)
        return child

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
                preexec_fn=_prepare_child,
            )

    def wait_ready(self, child: Child, url: str, timeout: float) -> None:
        """Poll a /readyz URL until 200. Without a policy, fail fast if the process dies;
        with one, keep supervising every child (which may restart this one) meanwhile."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.policy is not None:
                self.supervise()
            elif child.proc.poll() is not None:
                raise StackError(
                    f"{child.name} exited with code {child.proc.returncode}; "
                    f"last lines of {child.log_path}:\n{child.tail()}"
                )
            if child.restart_at is None:
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        if resp.status == 200:
                            child.ready = True
                            child.ready_check = functools.partial(_answers_ready, url)
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

    def supervise(self) -> None:
        """One round, called every fraction of a second: notice deaths, restart the children
        whose backoff is over, report those that became ready again. Raises StackError for
        a child that keeps dying straight away, with the last lines of its log."""
        policy = self.policy or RestartPolicy(give_up_after=1)
        now = time.monotonic()
        for child in self.children:
            code = child.proc.poll()
            if child.restart_at is None and code is not None:
                self._schedule_restart(child, code, policy, now)
            elif child.restart_at is not None and now >= child.restart_at:
                child.proc = self._spawn(child.name, child.argv, child.env)
                child.started_at, child.restart_at, child.ready = now, None, False
                log.info(f"restarted {child.name} (pid {child.proc.pid})", extra=_about(child))
            elif code is None and not child.ready and child.ready_check is not None:
                child.ready = child.ready_check()
                if child.ready:
                    log.info(f"{child.name} is ready again", extra=_about(child))

    def _schedule_restart(self, child: Child, code: int, policy: RestartPolicy, now: float) -> None:
        # What the dead leader started (a process pool) dies with it, before anything new.
        _signal_group(child.proc, signal.SIGKILL)
        # Stayed up: lived stable_after seconds and, if it has a readiness check, became ready
        # again. A part that starts slowly and then fails (a taken port found after a long
        # replay) would otherwise never count as dying in a row, and be restarted forever.
        stayed_up = now - child.started_at >= policy.stable_after
        if stayed_up and (child.ready or child.ready_check is None):
            child.deaths_in_a_row = 0  # start the backoff again
        child.deaths_in_a_row += 1
        if child.deaths_in_a_row >= policy.give_up_after:
            raise StackError(
                f"{child.name} stopped (code {code}) {child.deaths_in_a_row} times in a row "
                f"without staying up {policy.stable_after:g} s; giving up. "
                f"Last lines of {child.log_path}:\n{child.tail()}"
            )
        delay = policy.delay(child.deaths_in_a_row)
        child.restart_at = now + delay
        log.warning(
            f"{child.name} stopped unexpectedly (code {code}); restarting in {delay:.1f} s",
            extra={**_about(child), "code": code, "delay_s": delay},
        )

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


def _about(child: Child) -> dict[str, object]:
    return {"part": child.name, "pid": child.proc.pid, "deaths_in_a_row": child.deaths_in_a_row}


def _answers_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:  # HTTPError (a 503) included
        return False


def _signal_group(proc: subprocess.Popen[bytes], signo: int) -> None:
    try:
        os.killpg(proc.pid, signo)
    except (ProcessLookupError, PermissionError):
        pass
