"""python -m lookalike_matcher: the fingerprint index and its HTTP API."""

from __future__ import annotations

import argparse

from aiohttp import web

from lookalike_shared.config import env_help
from lookalike_shared.logs import configure_logging

from .allocator import fix_mmap_threshold
from .app import init_app
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
    web.run_app(
        init_app(settings),
        host=settings.bind_host,
        port=settings.matcher_port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
