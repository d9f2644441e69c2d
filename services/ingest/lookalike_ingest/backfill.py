"""python -m lookalike_ingest.backfill: put an existing catalogue in.

Reads a catalogue export (JSON Lines or CSV of the event `data` fields) or a directory of
images, and publishes one `catalogue.image.upserted` CloudEvent per image to the catalogue
topic, where the ingest workers take them like any other change. A small SQLite file
remembers what was published (image id -> digest of its data), so an interrupted run
resumes where it stopped and a second run publishes only what changed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import UPSERTED, CatalogueImage
from lookalike_shared.events import CLOUDEVENT_HEADERS, cloudevent_json
from lookalike_shared.kafka import make_producer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp", ".bmp"}
COMMIT_EVERY = 500  # records between durable checkpoints of the state file


@dataclass(frozen=True)
class Row:
    where: str  # "line 12" / a file path, for error messages
    data: dict[str, Any]


@dataclass
class Summary:
    published: int = 0
    unchanged: int = 0
    invalid: int = 0


def read_source(source: Path) -> Iterator[Row]:
    if source.is_dir():
        yield from _from_directory(source)
    elif source.suffix.lower() == ".csv":
        yield from _from_csv(source)
    else:
        yield from _from_jsonl(source)


def _from_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield Row(f"line {number}", json.loads(line))
                except json.JSONDecodeError as exc:
                    yield Row(f"line {number}", {"_error": f"not JSON: {exc}"})


def _from_csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", newline="") as handle:
        for number, record in enumerate(csv.DictReader(handle), 2):
            data: dict[str, Any] = {k: v for k, v in record.items() if k and v not in (None, "")}
            if "tags" in data:
                data["tags"] = [t.strip() for t in data["tags"].split(";") if t.strip()]
            yield Row(f"line {number}", data)


def _from_directory(root: Path) -> Iterator[Row]:
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        relative = path.relative_to(root).with_suffix("")
        image_id = "-".join(relative.parts).replace(" ", "_")[:200]
        yield Row(
            str(path),
            {
                "image_id": image_id,
                # The file's modification time grows when the file is replaced.
                "version": int(path.stat().st_mtime),
                "image_url": path.resolve().as_uri(),
                "title": path.stem.replace("_", " "),
            },
        )


class PublishedState:
    """image id -> digest of the data last published, in SQLite (durable, resumable)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS published (image_id TEXT PRIMARY KEY, digest TEXT)"
        )

    def unchanged(self, image_id: str, digest: str) -> bool:
        row = self.db.execute(
            "SELECT digest FROM published WHERE image_id = ?", (image_id,)
        ).fetchone()
        return row is not None and row[0] == digest

    def record(self, image_id: str, digest: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO published VALUES (?, ?)", (image_id, digest))

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def digest_of(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


async def backfill(
    settings: CommonSettings,
    source: Path,
    state_path: Path,
    rate: float = 0.0,
    progress: bool = True,
    errors: Any = sys.stderr,
) -> Summary:
    summary = Summary()
    state = PublishedState(state_path)
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    started = time.monotonic()
    pending: list[tuple[asyncio.Future[Any], str, str]] = []
    bar = tqdm(read_source(source), unit=" images", disable=not progress, file=sys.stderr)
    try:
        for row in bar:
            try:
                image = CatalogueImage.model_validate(row.data)
            except ValidationError as exc:
                summary.invalid += 1
                first = exc.errors()[0]
                print(f"{row.where}: skipped: {first['loc']}: {first['msg']}", file=errors)
                continue
            data = image.model_dump(mode="json", exclude_none=True)
            digest = digest_of(data)
            if state.unchanged(image.image_id, digest):
                summary.unchanged += 1
                continue
            if rate > 0:
                # Keep to the rate over the whole run, not per burst.
                ahead = summary.published / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            future = await producer.send(
                settings.catalogue_topic,
                key=image.image_id.encode(),
                value=cloudevent_json(UPSERTED, data, str(uuid.uuid4()), "/lookalike/backfill"),
                headers=CLOUDEVENT_HEADERS,
            )
            pending.append((future, image.image_id, digest))
            summary.published += 1
            if len(pending) >= COMMIT_EVERY:
                await _checkpoint(pending, state)
            bar.set_postfix(published=summary.published, unchanged=summary.unchanged)
        await _checkpoint(pending, state)
    finally:
        bar.close()
        await producer.stop()
        state.close()
    return summary


async def _checkpoint(
    pending: list[tuple[asyncio.Future[Any], str, str]], state: PublishedState
) -> None:
    """Record as published only what the broker acknowledged."""
    await asyncio.gather(*(future for future, _, _ in pending))
    for _, image_id, digest in pending:
        state.record(image_id, digest)
    state.commit()
    pending.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_ingest.backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Kafka and the topic come from LOOKALIKE_KAFKA_BOOTSTRAP and "
        "LOOKALIKE_CATALOGUE_TOPIC. CSV columns: image_id, version, image_url, title, "
        "creator, year, medium, tags (separated by ';'), license.",
    )
    parser.add_argument(
        "source", type=Path, help="a .jsonl / .csv export, or a directory of images"
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="progress file (default: <source>.backfill.sqlite beside the source)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: no limit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.source.exists():
        parser.error(f"{args.source} does not exist")
    state = args.state or args.source.with_name(args.source.name + ".backfill.sqlite")
    summary = asyncio.run(
        backfill(CommonSettings(), args.source, state, args.rate, not args.no_progress)
    )
    print(
        f"published {summary.published}, unchanged {summary.unchanged}, "
        f"invalid {summary.invalid} (state in {state})"
    )
    return 1 if summary.invalid else 0


if __name__ == "__main__":
    sys.exit(main())
