"""python -m lookalike_matcher: the fingerprint index and its HTTP API."""

from __future__ import annotations

from aiohttp import web

from lookalike_shared.service import parse_command_line, run_service

from .allocator import fix_mmap_threshold
from .app import init_app
from .settings import MatcherSettings


def _app(settings: MatcherSettings) -> web.Application:
    fix_mmap_threshold()  # before the index grows: see allocator.py
    return init_app(settings)


def main() -> None:
    parse_command_line(
        "python -m lookalike_matcher",
        "Replay the compacted fingerprint topic into an in-memory index and answer "
        "searches over HTTP (/v1/search, /v1/images/{id}, /v1/stats, /readyz, /metrics).",
        MatcherSettings,
    )
    settings = MatcherSettings()
    # If the replay dies, it stops as SIGTERM would, then exits non-zero so that whatever
    # runs the matcher (compose, the local stack) sees the failure and restarts it.
    run_service("matcher", _app, settings, host=settings.bind_host, port=settings.matcher_port)


if __name__ == "__main__":
    main()
