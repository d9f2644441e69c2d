"""How every service starts, runs and stops: one aiohttp app, run by `run_service`.

    run_service --JSON logs--> app_factory(settings) --startup (cleanup contexts)--> serving
        SIGTERM / SIGINT --> stop serving, cleanup contexts in reverse --> exit 0
        an essential task dies --> FAILURE set --> the same clean stop --> exit 1, saying why

An app keeps its readiness in app[READINESS] (for /readyz) and its failure in app[FAILURE];
a part it cannot do without (the matcher's replay, ingest's consumer) runs as an
`essential` task, whose death stops the service rather than leave it half working.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic_settings import BaseSettings

from .config import CommonSettings, env_help
from .http import start_site
from .logs import configure_logging
from .pool import WorkerPool
from .readiness import Readiness

log = logging.getLogger(__name__)
S = TypeVar("S", bound=CommonSettings)

READINESS = web.AppKey("readiness", Readiness)


class Failure:
    """Why the service must stop, once a part it cannot do without has died."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._failed = asyncio.Event()

    def set(self, reason: str) -> None:
        if self.reason is None:  # the first failure is the one to report
            self.reason = reason
            self._failed.set()

    async def wait(self) -> str:
        await self._failed.wait()
        assert self.reason is not None
        return self.reason


FAILURE = web.AppKey("failure", Failure)


def service_app(readiness: Readiness | None = None, **kwargs: Any) -> web.Application:
    """A web.Application (kwargs as for it) with its READINESS and FAILURE in place."""
    app = web.Application(**kwargs)
    app[READINESS] = readiness if readiness is not None else Readiness()
    app[FAILURE] = Failure()
    return app


def essential(app: web.Application, task: asyncio.Task[Any], what: str) -> None:
    """`task` is one the service cannot do without: should it end with an exception, the
    service stops and exits non-zero, saying "`what` failed (the exception)"."""

    def ended(done: asyncio.Task[Any]) -> None:
        if not done.cancelled() and (exc := done.exception()) is not None:
            app[FAILURE].set(f"{what} failed ({type(exc).__name__}: {exc})")

    task.add_done_callback(ended)


def pool_context(
    key: web.AppKey[WorkerPool],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context of the app's process pool: started (and warmed) before the app
    serves, closed after everything that uses it. A pool that cannot start does not stop
    the service: its readiness says POOL-BROKEN and it keeps trying."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        await app[key].start()
        yield
        await app[key].close()

    return context


def parse_command_line(prog: str, description: str, settings_class: type[BaseSettings]) -> None:
    """A service's command line: no arguments, --help lists its environment variables."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=env_help(settings_class),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()


def run_service(
    service: str,
    app_factory: Callable[[S], web.Application],
    settings: S,
    *,
    host: str,
    port: int,
    **runner_options: Any,
) -> None:
    """Log JSON as `service`, serve app_factory(settings) on host:port until SIGTERM or
    SIGINT (exit 0) or until an essential task dies (exit 1, the reason on stderr and in
    the log). `runner_options` go to web.AppRunner (handler_cancellation, ...)."""
    configure_logging(service, settings.log_level)
    app = app_factory(settings)
    reason = asyncio.run(serve(app, host, port, **runner_options))
    if reason is not None:
        sys.exit(f"{service} stopped: {reason}")


async def serve(app: web.Application, host: str, port: int, **runner_options: Any) -> str | None:
    """Serve `app` until SIGTERM/SIGINT or its FAILURE; then stop it cleanly. Returns the
    failure's reason, None for a stop that was asked for."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    failure = app[FAILURE]
    runner = await start_site(app, host, port, **runner_options)
    log.info("serving", extra={"addresses": [f"{h}:{p}" for h, p, *_ in runner.addresses]})
    try:
        asked = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(failure.wait())
        await asyncio.wait({asked, failed}, return_when=asyncio.FIRST_COMPLETED)
        asked.cancel()
        failed.cancel()
        if failure.reason is not None:
            log.error("stopping: an essential part failed", extra={"reason": failure.reason})
        else:
            log.info("stopping: asked to")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return failure.reason
