"""python -m lookalike_ingest: the catalogue ingest worker.

Configuration is by LOOKALIKE_* environment variables (see --help)."""

from __future__ import annotations

import argparse
import asyncio

from lookalike_shared.config import env_help
from lookalike_shared.embedding import require_model_files
from lookalike_shared.logs import configure_logging

from .service import run_ingest
from .settings import IngestSettings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_ingest",
        description="Consume catalogue events, fingerprint images, publish fingerprint "
        "records and upsert search documents. Stops cleanly on SIGTERM/Ctrl-C.",
        epilog=env_help(IngestSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()
    require_model_files("lookalike_ingest")
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    asyncio.run(run_ingest(settings))


if __name__ == "__main__":
    main()
