"""python -m lookalike_ingest.prune_deletions: remove old deletion markers from Elasticsearch.

A deleted image leaves a marker (its id, the version it was deleted at, when) so that an
older upsert arriving late cannot bring it back (search_index.py). Once no event older than
the delete can still arrive (the catalogue topic's retention, a replay of the dead-letter
topic), the marker has done its job: this removes markers older than --older-than-days.
Matchers forget their copy of a delete after LOOKALIKE_DELETION_RETENTION_DAYS likewise;
run this with the same number of days, from cron or a scheduled job.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch

from lookalike_shared.config import CommonSettings, env_help


def old_markers(before: datetime) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"deleted": True}},
                {"range": {"deleted_at": {"lt": before.isoformat()}}},
            ]
        }
    }


async def prune(settings: CommonSettings, older_than_days: float, dry_run: bool = False) -> int:
    """Remove (or, dry, count) the markers older than the given age; returns how many."""
    before = datetime.now(UTC) - timedelta(days=older_than_days)
    async with AsyncElasticsearch(settings.es_url, request_timeout=120) as es:
        query = old_markers(before)
        if dry_run:
            return int((await es.count(index=settings.es_alias, query=query))["count"])
        # conflicts=proceed: a marker an upsert replaced meanwhile is not a marker any more.
        answer = await es.delete_by_query(
            index=settings.es_alias, query=query, conflicts="proceed", refresh=True
        )
        return int(answer.get("deleted", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_ingest.prune_deletions",
        description=__doc__,
        epilog=env_help(CommonSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--older-than-days",
        type=float,
        default=30.0,
        help="remove markers of deletes older than this [30]",
    )
    parser.add_argument("--dry-run", action="store_true", help="only count them")
    args = parser.parse_args(argv)
    if args.older_than_days < 0:
        parser.error("--older-than-days must not be negative")
    count = asyncio.run(prune(CommonSettings(), args.older_than_days, args.dry_run))
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {count} deletion markers older than {args.older_than_days:g} days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
