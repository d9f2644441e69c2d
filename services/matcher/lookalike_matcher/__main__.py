"""python -m lookalike_matcher: the fingerprint index and its HTTP API."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from aiohttp import web

from lookalike_shared.config import env_help
from lookalike_shared.logs import configure_logging

from .allocator import fix_mmap_threshold
from .app import REPLAY, init_app
from .settings import MatcherSettings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_matcher",
        description="Replay the compacted fingerprint topic into an in-memory index and answer "
        "searches over HTTP (/v1/search, /v1/images/{id}, /v1/stats, /readyz, /metrics).",
        epilog=env_help(MatcherSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()
    settings = MatcherSettings()
    configure_logging("matcher", settings.log_level)
    fix_mmap_threshold()  # before the index grows: see allocator.py
    # If the replay dies, shut down as SIGTERM would, then exit non-zero so that whatever
    # runs the matcher (compose, the local stack) sees the failure and restarts it.
    app = init_app(settings, on_replay_failed=lambda: os.kill(os.getpid(), signal.SIGTERM))
    web.run_app(
        app,
        host=settings.bind_host,
        port=settings.matcher_port,
        access_log=None,
        print=None,
    )
    if app[REPLAY].failed:
        sys.exit(f"matcher stopped: the replay failed ({app[REPLAY].failed})")


if __name__ == "__main__":
    main()
