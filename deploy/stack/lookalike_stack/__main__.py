"""python -m lookalike_stack: run lookalike locally, or set up topics and index.

up      start the embedded Kafka/Elasticsearch stand-in (unless LOOKALIKE_KAFKA_BOOTSTRAP
        and LOOKALIKE_ES_URL name real ones), ingest, matcher and gateway on loopback,
        publish the sample catalogue, wait until it is searchable, print the URL. A part
        that dies is restarted with a backoff (1, 2, 4, 8 s: doubling, capped at 30 s, from
        1 s again once it stayed up 30 s); one that dies 5 times in a row without staying
        up 30 s stops the stack. Ctrl-C or SIGTERM stops everything. Logs:
        <data-dir>/logs/ (the launcher's own in stack.log).
setup   create the Kafka topics and the Elasticsearch index behind its alias, then exit
        (the one-shot set-up service of compose.yaml).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from lookalike_shared.config import CommonSettings
from lookalike_shared.logs import JsonFormatter
from lookalike_shared.search_index import NOT_DELETED

from .catalogue import publish, set_up
from .embedded import Backends, start_embedded
from .processes import RestartPolicy, StackError, Supervisor, port_is_free
from .sample import materialize

log = logging.getLogger("lookalike_stack")  # the supervisor's restarts are logged here too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    up = sub.add_parser(
        "up",
        help="run the whole system locally with the sample catalogue",
        description=(
            "Run ingest, matcher and gateway (and the embedded stand-in) on loopback. A part "
            "that dies is restarted with a backoff; one that dies 5 times in a row without "
            "staying up 30 s stops the stack. Ctrl-C or SIGTERM stops everything. Logs: "
            "<data-dir>/logs/ (the launcher's own in stack.log)."
        ),
    )
    env = os.environ.get
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("LOOKALIKE_STACK_DIR", ".lookalike")),
        help="where data and logs live [.lookalike]",
    )
    up.add_argument("--gateway-port", type=int, default=int(env("LOOKALIKE_GATEWAY_PORT", "8080")))
    up.add_argument("--matcher-port", type=int, default=int(env("LOOKALIKE_MATCHER_PORT", "8081")))
    up.add_argument("--ingest-port", type=int, default=int(env("LOOKALIKE_INGEST_PORT", "8082")))
    up.add_argument(
        "--kafka-port",
        type=int,
        default=int(env("LOOKALIKE_STACK_KAFKA_PORT", "19092")),
        help="embedded Kafka port [19092]",
    )
    up.add_argument(
        "--es-port",
        type=int,
        default=int(env("LOOKALIKE_STACK_ES_PORT", "19200")),
        help="embedded Elasticsearch port [19200]",
    )
    up.add_argument("--no-sample", action="store_true", help="do not publish the sample catalogue")
    up.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for each part [180]"
    )
    setup = sub.add_parser("setup", help="create topics and index, then exit")
    setup.add_argument(
        "--partitions", type=int, default=int(env("LOOKALIKE_KAFKA_PARTITIONS", "6"))
    )
    setup.add_argument(
        "--replication-factor",
        type=int,
        default=int(env("LOOKALIKE_KAFKA_REPLICATION_FACTOR", "1")),
    )
    args = parser.parse_args(argv)
    if args.command == "setup":
        asyncio.run(set_up(CommonSettings(), args.partitions, args.replication_factor))
        print("topics and index are ready")
        return 0
    if args.command != "up":
        parser.print_help()
        return 2
    return run_up(args)


def run_up(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.resolve()
    supervisor = Supervisor(data_dir / "logs", RestartPolicy())
    _configure_output(supervisor.log_dir)
    _install_stop_handlers()
    try:
        for name, port in (
            ("gateway", args.gateway_port),
            ("matcher", args.matcher_port),
            ("ingest", args.ingest_port),
        ):
            if not port_is_free(port):
                raise StackError(
                    f"port {port} for the {name} is already in use "
                    f"(choose another with --{name}-port)"
                )
        backends = _backends(args, supervisor, data_dir)
        settings = CommonSettings(kafka_bootstrap=backends.kafka_bootstrap, es_url=backends.es_url)
        say(f"setting up topics and index on {backends.kafka_bootstrap} and {backends.es_url}")
        asyncio.run(set_up(settings, timeout=args.timeout))
        _start_services(args, supervisor, backends, data_dir)
        if not args.no_sample:
            catalogue = materialize(data_dir / "catalogue")
            say(f"publishing {len(catalogue)} sample catalogue events")
            asyncio.run(publish(settings, catalogue))
            _wait_searchable(args, supervisor, settings, len(catalogue))
        url = f"http://127.0.0.1:{args.gateway_port}/"
        say(f"lookalike is up: open {url}  (logs in {supervisor.log_dir}; Ctrl-C stops)")
        say(f"try: curl -F image=@{data_dir / 'catalogue' / 'img-00003.png'} {url}v1/search")
        while True:
            time.sleep(0.2)
            supervisor.supervise()
    except KeyboardInterrupt:
        say("stopping")
        return 0
    except (StackError, TimeoutError) as exc:
        log.error(f"error: {exc}")
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        say("stopped")


def _install_stop_handlers() -> None:
    """Ctrl-C (SIGINT) and SIGTERM both stop the stack, set explicitly: a launcher started in
    the background by a non-interactive shell (`scripts/run-local.sh &`) inherits SIGINT as
    ignored, and Python then leaves it ignored."""

    def on_sigterm(_signo: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # the handler asyncio.run expects
    signal.signal(signal.SIGTERM, on_sigterm)


def _configure_output(log_dir: Path) -> None:
    """What the launcher says goes to stdout and, as JSON lines, to logs/stack.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(logging.Formatter("[lookalike] %(message)s"))
    to_file = logging.FileHandler(log_dir / "stack.log")
    to_file.setFormatter(JsonFormatter("stack"))
    log.handlers[:] = [out, to_file]
    log.setLevel(logging.INFO)
    log.propagate = False


def _backends(args: argparse.Namespace, supervisor: Supervisor, data_dir: Path) -> Backends:
    kafka, es = os.environ.get("LOOKALIKE_KAFKA_BOOTSTRAP"), os.environ.get("LOOKALIKE_ES_URL")
    if kafka and es:
        say(f"using Kafka at {kafka} and Elasticsearch at {es}")
        return Backends(kafka, es)
    if kafka or es:
        raise StackError("set both LOOKALIKE_KAFKA_BOOTSTRAP and LOOKALIKE_ES_URL, or neither")
    say("starting the embedded Kafka/Elasticsearch stand-in (noida-db)")
    return start_embedded(
        supervisor, data_dir / "noida-db", args.kafka_port, args.es_port, args.timeout
    )


def _start_services(
    args: argparse.Namespace, supervisor: Supervisor, backends: Backends, data_dir: Path
) -> None:
    common = {
        "LOOKALIKE_KAFKA_BOOTSTRAP": backends.kafka_bootstrap,
        "LOOKALIKE_ES_URL": backends.es_url,
        "LOOKALIKE_KAFKA_IDLE_REST_MS": os.environ.get(
            "LOOKALIKE_KAFKA_IDLE_REST_MS", str(backends.idle_rest_ms)
        ),
        "LOOKALIKE_BIND_HOST": "127.0.0.1",
        "LOOKALIKE_FILE_ROOT": str(data_dir / "catalogue"),
        "LOOKALIKE_MATCHER_DATA_DIR": str(data_dir / "matcher"),
        "LOOKALIKE_MATCHER_PORT": str(args.matcher_port),
        "LOOKALIKE_GATEWAY_PORT": str(args.gateway_port),
        "LOOKALIKE_INGEST_PORT": str(args.ingest_port),
        "LOOKALIKE_MATCHER_URLS": f"http://127.0.0.1:{args.matcher_port}",
        # One ingest worker: static membership lets its restart take the partitions back at
        # once (the stand-in never drops a member that was killed outright).
        "LOOKALIKE_GROUP_INSTANCE_ID": "lookalike-local-ingest",
        "PYTHONUNBUFFERED": "1",
    }
    for name, module, port in (
        ("matcher", "lookalike_matcher", args.matcher_port),
        ("ingest", "lookalike_ingest", args.ingest_port),
        ("gateway", "lookalike_gateway", args.gateway_port),
    ):
        say(f"starting {name} on 127.0.0.1:{port}")
        child = supervisor.start(name, [sys.executable, "-m", module], common)
        supervisor.wait_ready(child, f"http://127.0.0.1:{port}/readyz", args.timeout)


def _wait_searchable(
    args: argparse.Namespace, supervisor: Supervisor, settings: CommonSettings, expected: int
) -> None:
    """Searchable means both halves have it: the matcher's index and Elasticsearch."""
    deadline = time.monotonic() + args.timeout
    counts: tuple[int, int] = (0, 0)
    while time.monotonic() < deadline:
        supervisor.supervise()
        try:
            counts = (_matcher_images(args.matcher_port), _es_count(settings))
        except OSError:
            counts = (0, 0)  # a part is restarting
        if min(counts) >= expected:
            say(f"{expected} images are searchable")
            return
        time.sleep(0.3)
    raise StackError(
        f"only {min(counts)} of {expected} sample images became searchable in "
        f"{args.timeout:.0f}s (matcher {counts[0]}, Elasticsearch {counts[1]}); see the ingest log"
    )


def _matcher_images(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/stats", timeout=5) as resp:
        return int(json.load(resp)["images"])


def _es_count(settings: CommonSettings) -> int:
    """Images Elasticsearch holds (deletion markers are not images)."""
    url = f"{settings.es_url.rstrip('/')}/{settings.es_alias}/_count"
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": NOT_DELETED}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return int(json.load(resp)["count"])


def say(message: str) -> None:
    log.info(message)


if __name__ == "__main__":
    sys.exit(main())
