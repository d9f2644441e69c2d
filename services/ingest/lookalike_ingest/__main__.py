"""python -m lookalike_ingest: the catalogue ingest worker.

Configuration is by LOOKALIKE_* environment variables (see --help)."""

from __future__ import annotations

from lookalike_shared.embedding import require_model_files
from lookalike_shared.service import parse_command_line, run_service

from .service import init_app
from .settings import IngestSettings


def main() -> None:
    parse_command_line(
        "python -m lookalike_ingest",
        "Consume catalogue events, fingerprint images, publish fingerprint "
        "records and upsert search documents. Stops cleanly on SIGTERM/Ctrl-C.",
        IngestSettings,
    )
    require_model_files("lookalike_ingest")
    settings = IngestSettings()
    run_service("ingest", init_app, settings, host=settings.bind_host, port=settings.ingest_port)


if __name__ == "__main__":
    main()
