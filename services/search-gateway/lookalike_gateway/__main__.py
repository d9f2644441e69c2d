"""python -m lookalike_gateway: the search API and page."""

from __future__ import annotations

from lookalike_shared.embedding import require_model_files
from lookalike_shared.service import parse_command_line, run_service

from .app import init_app
from .settings import GatewaySettings


def main() -> None:
    parse_command_line(
        "python -m lookalike_gateway",
        "Serve POST /v1/search (streamed NDJSON) and the drag-and-drop search page.",
        GatewaySettings,
    )
    require_model_files("lookalike_gateway")
    settings = GatewaySettings()
    run_service(
        "gateway",
        init_app,
        settings,
        host=settings.bind_host,
        port=settings.gateway_port,
        # Cancel a search's handler when its client disconnects, so its backend calls stop.
        handler_cancellation=True,
    )


if __name__ == "__main__":
    main()
