"""python -m lookalike_gateway: the search API and page."""

from __future__ import annotations

import argparse

from aiohttp import web

from lookalike_shared.config import env_help
from lookalike_shared.embedding import require_model_files
from lookalike_shared.logs import configure_logging

from .app import init_app
from .settings import GatewaySettings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_gateway",
        description="Serve POST /v1/search (streamed NDJSON) and the drag-and-drop search page.",
        epilog=env_help(GatewaySettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()
    require_model_files("lookalike_gateway")
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    web.run_app(
        init_app(settings),
        host=settings.bind_host,
        port=settings.gateway_port,
        access_log=None,
        print=None,
        # Cancel a search's handler when its client disconnects, so its backend calls stop.
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
