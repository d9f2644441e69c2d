"""The local stack's supervisor, with real (tiny) child processes: a child that dies is
restarted after a backoff, with what it started stopped first; one that keeps dying
straight away stops the stack with its log tail; one that stays up between deaths is
restarted every time, unless it never got ready again."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lookalike_stack.processes import Child, RestartPolicy, StackError, Supervisor


@pytest.fixture
def supervisors(tmp_path: Path) -> Iterator[Callable[[RestartPolicy], Supervisor]]:
    made: list[Supervisor] = []

    def make(policy: RestartPolicy) -> Supervisor:
        made.append(Supervisor(tmp_path / "logs", policy))
        return made[-1]

    yield make
    for supervisor in made:
        supervisor.stop_all(grace=5)


def supervise_until(supervisor: Supervisor, done: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the supervisor did not get there in time"
        supervisor.supervise()
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def delays_said(caplog: pytest.LogCaptureFixture, name: str) -> list[float]:
    pattern = re.compile(rf"^{name} stopped unexpectedly \(code -?\d+\); restarting in ([\d.]+) s$")
    return [
        float(match.group(1))
        for record in caplog.records
        if (match := pattern.match(record.getMessage()))
    ]


def test_a_killed_child_is_restarted_after_the_backoff_and_the_log_says_so(
    supervisors: Callable[[RestartPolicy], Supervisor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="lookalike_stack")
    supervisor = supervisors(RestartPolicy(first_delay=0.5))
    child = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"])
    first = child.proc.pid

    os.kill(first, signal.SIGKILL)
    killed_at = time.monotonic()
    supervise_until(supervisor, lambda: child.proc.pid != first)

    assert time.monotonic() - killed_at >= 0.5  # not before the backoff
    assert child.proc.poll() is None and alive(child.proc.pid)
    assert not alive(first)
    messages = [r.getMessage() for r in caplog.records]
    assert "sleeper stopped unexpectedly (code -9); restarting in 0.5 s" in messages
    assert f"restarted sleeper (pid {child.proc.pid})" in messages


def test_what_a_dead_child_started_is_stopped_before_it_restarts(
    supervisors: Callable[[RestartPolicy], Supervisor], tmp_path: Path
) -> None:
    supervisor = supervisors(RestartPolicy(first_delay=0.2))
    script = (
        "import subprocess, time\n"
        "helper = subprocess.Popen(['sleep', '600'])\n"  # like a service's process pool
        "print('helper', helper.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = supervisor.start("parent", [sys.executable, "-c", script])
    log = tmp_path / "logs" / "parent.log"
    said = re.compile(r"^helper (\d+)$", re.M)
    supervise_until(supervisor, lambda: said.search(log.read_text()) is not None)
    found = said.search(log.read_text())
    assert found is not None
    helper = int(found.group(1))
    first = child.proc.pid

    os.kill(first, signal.SIGKILL)
    supervise_until(supervisor, lambda: child.proc.pid != first)

    assert not alive(helper)


def test_a_child_that_keeps_dying_straight_away_stops_with_its_log_tail(
    supervisors: Callable[[RestartPolicy], Supervisor],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level("INFO", logger="lookalike_stack")
    policy = RestartPolicy(first_delay=0.1, max_delay=0.3, stable_after=30, give_up_after=5)
    supervisor = supervisors(policy)
    script = "print('cannot bind: port 8081 is taken', flush=True); raise SystemExit(3)"
    supervisor.start("crasher", [sys.executable, "-c", script])

    with pytest.raises(StackError) as raised:
        supervise_until(supervisor, lambda: False, timeout=30)

    message = str(raised.value)
    assert "crasher stopped (code 3) 5 times in a row" in message
    assert "cannot bind: port 8081 is taken" in message  # the tail of its log
    log = (tmp_path / "logs" / "crasher.log").read_text()
    assert log.count("cannot bind") == 5  # started 5 times, then left dead
    assert delays_said(caplog, "crasher") == [0.1, 0.2, 0.3, 0.3]  # doubling, capped


def living_longer_than_stable_after(
    supervisors: Callable[[RestartPolicy], Supervisor], name: str, give_up_after: int
) -> tuple[Supervisor, Child]:
    """A child that dies after 0.6 s each run, twice `stable_after`."""
    policy = RestartPolicy(
        first_delay=0.1, max_delay=5, stable_after=0.3, give_up_after=give_up_after
    )
    supervisor = supervisors(policy)
    return supervisor, supervisor.start(name, ["sh", "-c", "sleep 0.6; exit 1"])


def test_a_child_that_stays_up_between_deaths_is_restarted_every_time(
    supervisors: Callable[[RestartPolicy], Supervisor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="lookalike_stack")
    supervisor, _ = living_longer_than_stable_after(supervisors, "flaky", give_up_after=2)

    supervise_until(supervisor, lambda: len(delays_said(caplog, "flaky")) == 4)

    assert delays_said(caplog, "flaky") == [0.1] * 4  # the backoff starts over each time


def test_a_child_that_lives_long_but_never_gets_ready_again_counts_as_dying_in_a_row(
    supervisors: Callable[[RestartPolicy], Supervisor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="lookalike_stack")
    supervisor, child = living_longer_than_stable_after(supervisors, "slow", give_up_after=3)
    # It was ready once (as wait_ready leaves a part); after a restart it never is again.
    child.ready, child.ready_check = True, lambda: False

    with pytest.raises(StackError) as raised:
        supervise_until(supervisor, lambda: False, timeout=20)

    assert "slow stopped (code 1) 3 times in a row" in str(raised.value)
    assert delays_said(caplog, "slow") == [0.1, 0.2]  # only its first run had stayed up


def test_children_stop_on_sigterm_even_when_the_launcher_ignores_it(
    supervisors: Callable[[RestartPolicy], Supervisor],
) -> None:
    supervisor = supervisors(RestartPolicy())
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as if inherited ignored
    try:
        child = supervisor.start("sleeper", ["sleep", "600"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    proc = child.proc

    supervisor.stop_all(grace=10)

    assert proc.returncode == -signal.SIGTERM  # stopped by SIGTERM, not left for SIGKILL
