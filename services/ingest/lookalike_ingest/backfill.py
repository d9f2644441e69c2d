"""python -m lookalike_ingest.backfill: put an existing catalogue in, and see it through.

Reads the catalogue from its database (--db URL --query SQL), from an export (JSON Lines or
CSV of the event `data` fields) or from a directory of images (their title, creator, year,
keywords and rights from the files' own XMP, IPTC or EXIF metadata, the file name as the
fallback title), and publishes one `catalogue.image.upserted` CloudEvent per image to the
catalogue topic, where the ingest workers take them like any other change. It counts the
source first, so the progress bar has a total and an ETA.

Then it follows the pipeline until every event it published is indexed or dead-lettered
(from the ingest group's committed offsets, the dead-letter topic and Elasticsearch, and
the matcher's count with --matcher), with a second bar, and ends with a summary: indexed,
unchanged, dead-lettered by reason with example ids and the command that replays them.

A small SQLite file remembers what was published (image id -> digest of its data, where it
landed, what became of it), so an interrupted run resumes where it stopped (a database
query after the last id published, without reading the rows before it again) and a second
run publishes only what changed. Ctrl-C stops publishing or following and keeps all that.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import Field, ValidationError
from tqdm import tqdm

from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import UPSERTED, CatalogueImage
from lookalike_shared.events import CLOUDEVENT_HEADERS, cloudevent_json
from lookalike_shared.kafka import make_producer

from .backfill_db import DatabaseSource
from .backfill_follow import FollowReport, PipelineFollower
from .backfill_report import report
from .backfill_sources import ColumnMap, Row, Source, SourceError, file_source
from .backfill_state import PublishedState, Run

COMMIT_EVERY = 500  # acknowledged records between durable checkpoints of the state file
READ_EVERY = 5000  # rows read between checkpoints when few are published (a resumed run)
ROWS_PER_READ = 200  # rows taken from the source per trip to its reading thread


class BackfillSettings(CommonSettings):
    group_id: str = Field(
        "lookalike-ingest", description="Consumer group of the ingest workers, to follow."
    )


@dataclass
class BackfillOptions:
    rate: float = 0.0  # events per second, 0: no limit
    progress: bool = True
    follow: bool = False  # the command line follows unless --no-follow
    group: str = "lookalike-ingest"
    matcher_url: str | None = None
    follow_timeout: float = 0.0  # seconds, 0: until every event is settled
    errors: IO[str] | None = None  # where row messages go (stderr)
    bar_file: IO[str] | None = None  # where the bars go (stderr)
    stop: asyncio.Event | None = None  # set by Ctrl-C: stop, keep the resume point


@dataclass
class Summary:
    total: int = 0  # rows the source counted (after the resume point)
    published: int = 0
    unchanged: int = 0
    invalid: int = 0
    resumed_after: Any = None
    interrupted: bool = False
    timed_out: bool = False
    error: str | None = None  # the source or the broker failed midway
    publish_seconds: float = 0.0
    follow: FollowReport | None = None


@dataclass
class _Sent:
    future: asyncio.Future[Any]
    image_id: str
    digest: str
    version: int


@dataclass
class _Publisher:
    """Sends events and records them as published once the broker acknowledged them."""

    settings: CommonSettings
    state: PublishedState
    run: Run
    producer: AIOKafkaProducer
    source: str
    pending: list[_Sent] = field(default_factory=list)
    read_since_checkpoint: int = 0

    async def send(self, image: CatalogueImage, data: dict[str, Any], digest: str) -> None:
        future = await self.producer.send(
            self.settings.catalogue_topic,
            key=image.image_id.encode(),
            value=cloudevent_json(UPSERTED, data, str(uuid.uuid4()), "/lookalike/backfill"),
            headers=CLOUDEVENT_HEADERS,
        )
        self.pending.append(_Sent(future, image.image_id, digest, image.version))

    def due(self) -> bool:
        return len(self.pending) >= COMMIT_EVERY or self.read_since_checkpoint >= READ_EVERY

    async def checkpoint(self, resume_after: Any = None) -> None:
        """Wait for the acknowledgements, record them, and move the resume point past the
        rows read so far, only if every one of their events is durable."""
        await asyncio.gather(*(sent.future for sent in self.pending), return_exceptions=True)
        failed = self.record_acknowledged()
        if failed is not None:
            raise failed
        if resume_after is not None:
            self.state.set_resume_point(self.source, resume_after)
        self.state.commit()
        self.read_since_checkpoint = 0

    def record_acknowledged(self) -> BaseException | None:
        """Record the sends the broker acknowledged; returns the first failure, if any."""
        failed: BaseException | None = None
        for sent in self.pending:
            if not sent.future.done() or sent.future.cancelled():
                continue
            if sent.future.exception() is not None:
                failed = failed or sent.future.exception()
                continue
            meta = sent.future.result()
            self.state.record(
                sent.image_id, sent.digest, sent.version, meta.partition, meta.offset, self.run.run
            )
        self.pending.clear()
        self.state.commit()
        return failed


def digest_of(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def as_source(source: Source | Path, columns: ColumnMap | None = None) -> Source:
    return file_source(source, columns or ColumnMap()) if isinstance(source, Path) else source


async def backfill(
    settings: CommonSettings,
    source: Source | Path,
    state_path: Path,
    options: BackfillOptions | None = None,
) -> Summary:
    """Publish the source's rows and, with options.follow, see them through."""
    options = options or BackfillOptions()
    source = as_source(source)
    summary = Summary()
    state = PublishedState(state_path)
    follower = None
    try:
        run = state.begin_run(settings.catalogue_topic)
        if source.resumable:
            summary.resumed_after = state.resume_point(source.name)
        summary.total = await asyncio.to_thread(source.count, summary.resumed_after)
        if options.follow:
            follower = PipelineFollower(
                settings, state, options.group, options.matcher_url,
                options.progress, options.bar_file,
            )  # fmt: skip
            run = await follower.start(run)
            follower.expect(summary.total)
        job = _Job(settings, source, state, run, options, options.stop or asyncio.Event())
        await job.publish_and_follow(summary, follower)
    finally:
        if follower is not None:
            await follower.close()
        state.close()
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return summary


@dataclass
class _Job:
    settings: CommonSettings
    source: Source
    state: PublishedState
    run: Run
    options: BackfillOptions
    stop: asyncio.Event

    async def publish_and_follow(self, summary: Summary, follower: PipelineFollower | None) -> None:
        published = asyncio.Event()
        following = None
        if follower is not None:
            following = asyncio.create_task(follower.follow(published, self.stop))
        try:
            await self.publish(summary, follower)
        except BaseException:
            if following is not None:
                following.cancel()  # its clients close next
            raise
        finally:
            published.set()
            if summary.error or summary.interrupted:
                self.stop.set()  # publishing did not finish: report what is known, and stop
        if following is None:
            return
        done, _ = await asyncio.wait({following}, timeout=self.options.follow_timeout or None)
        if not done:
            summary.timed_out = True
            self.stop.set()
        summary.follow = await following
        if self.stop.is_set() and not summary.follow.finished and not summary.timed_out:
            summary.interrupted = True

    async def publish(self, summary: Summary, follower: PipelineFollower | None) -> None:
        producer = make_producer(self.settings, linger_ms=20)
        await producer.start()
        publisher = _Publisher(self.settings, self.state, self.run, producer, self.source.name)
        bar = tqdm(
            total=summary.total,
            desc="published",
            unit=" images",
            position=0,
            disable=not self.options.progress,
            file=self.options.bar_file,
            dynamic_ncols=True,
        )
        started = time.monotonic()
        last_key: Any = None
        try:
            async for row in _rows(self.source, summary.resumed_after):
                if self.stop.is_set():
                    summary.interrupted = True
                    break
                outcome = await self.handle(row, publisher, summary, started)
                if follower is not None and outcome != "published":
                    follower.expect(-1)  # not to follow: unchanged or invalid
                last_key = row.key if row.key is not None else last_key
                publisher.read_since_checkpoint += 1
                bar.update(1)
                bar.set_postfix(unchanged=summary.unchanged, invalid=summary.invalid, refresh=False)
                if publisher.due():
                    await publisher.checkpoint(last_key)
            else:
                await publisher.checkpoint(last_key)
                self.state.clear_resume_point(self.source.name)  # next time, read all again
                self.state.commit()
                last_key = None
        except (SourceError, KafkaError, OSError) as exc:
            summary.error = str(exc) or repr(exc)
        finally:
            summary.publish_seconds = time.monotonic() - started
            bar.close()
            await producer.stop()  # sends what is buffered; the acknowledged are recorded
            if publisher.record_acknowledged() is None and last_key is not None:
                # Stopped early, every row read so far is published: resume after them.
                self.state.set_resume_point(self.source.name, last_key)
                self.state.commit()

    async def handle(
        self, row: Row, publisher: _Publisher, summary: Summary, started: float
    ) -> str:
        """Publish one row unless it is invalid or unchanged; returns which it was."""
        if "_error" in row.data:
            summary.invalid += 1
            _say(f"{row.where}: skipped: {row.data['_error']}", self.options)
            return "invalid"
        try:
            image = CatalogueImage.model_validate(row.data)
        except ValidationError as exc:
            summary.invalid += 1
            _say(f"{row.where}: skipped: {_first_error(exc)}", self.options)
            return "invalid"
        data = image.model_dump(mode="json", exclude_none=True)
        digest = digest_of(data)
        if self.state.unchanged(image.image_id, digest):
            summary.unchanged += 1
            return "unchanged"
        if self.options.rate > 0:
            # Keep to the rate over the whole run, not per burst.
            ahead = summary.published / self.options.rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await publisher.send(image, data, digest)
        summary.published += 1
        return "published"


def _first_error(exc: ValidationError) -> str:
    """`column: what is wrong (got 'value')`, for the first problem of a row."""
    first = exc.errors()[0]
    column = ".".join(str(part) for part in first["loc"]) or "(row)"
    got = "" if first["type"] == "missing" else f" (got {str(first.get('input'))[:80]!r})"
    return f"{column}: {first['msg']}{got}"


async def _rows(source: Source, after: Any) -> AsyncIterator[Row]:
    """The source's rows, read in a thread a few hundred at a time (files and database
    cursors block), the next few hundred read while these are published."""
    rows: Iterator[Row] = source.rows(after)

    def take() -> list[Row]:
        return list(itertools.islice(rows, ROWS_PER_READ))

    reading = asyncio.ensure_future(asyncio.to_thread(take))
    try:
        while chunk := await reading:
            reading = asyncio.ensure_future(asyncio.to_thread(take))
            for row in chunk:
                yield row
    finally:
        if not reading.done():
            await asyncio.wait({reading})  # the thread must let go of the reader first
        close = getattr(rows, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


def _say(message: str, options: BackfillOptions) -> None:
    tqdm.write(message, file=options.errors or sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_ingest.backfill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument(
        "source", type=Path, nargs="?", help="a .jsonl / .csv export, or a directory of images"
    )
    parser.add_argument("--db", metavar="URL", help="the catalogue database (SQLAlchemy URL)")
    parser.add_argument("--query", metavar="SQL", help="with --db: the SELECT giving the rows")
    parser.add_argument(
        "--map",
        metavar="FIELD=COLUMN,...",
        action="append",
        default=[],
        help="take an event field from a differently named column, e.g. "
        "--map image_id=id,title=name,creator=artist_name (repeatable)",
    )
    parser.add_argument(
        "--state",
        type=Path,
        help="progress file (default: <source>.backfill.sqlite beside an export or folder; "
        "backfill-<hash>.sqlite here for a database)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="events per second (0: no limit)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="stop once everything is published, as before (do not wait for the pipeline)",
    )
    parser.add_argument(
        "--group",
        help="the ingest workers' consumer group to follow "
        "(default: LOOKALIKE_GROUP_ID or lookalike-ingest)",
    )
    parser.add_argument(
        "--matcher",
        metavar="URL",
        help="also wait until this matcher holds every indexed image (its /v1/stats)",
    )
    parser.add_argument(
        "--follow-timeout",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop following after this long (0: until every event is settled)",
    )
    return parser


EPILOG = """\
column mapping:
  Columns named like the event's data fields are taken as they are: image_id, version,
  image_url, title, creator, year, medium, tags, license (any other column is kept in the
  document). --map FIELD=COLUMN takes a field from a differently named column. A database
  integer id becomes text, a timestamp version its Unix seconds, a date year its year, and
  tags in one text column (or CSV cell) are separated by ';'.

examples:
  python -m lookalike_ingest.backfill --db 'mysql+pymysql://reader:pw@db/catalogue' \\
      --query 'SELECT id, name, artist_name, made, updated_at, url FROM artworks' \\
      --map image_id=id,title=name,creator=artist_name,year=made,version=updated_at,image_url=url
  python -m lookalike_ingest.backfill export.jsonl --rate 500
  python -m lookalike_ingest.backfill /srv/photos --matcher http://matcher:8081

Kafka, Elasticsearch and the topic come from LOOKALIKE_KAFKA_BOOTSTRAP, LOOKALIKE_ES_URL,
LOOKALIKE_ES_ALIAS and LOOKALIKE_CATALOGUE_TOPIC (dead letters: <topic>.dlq). Exit status:
0 all in, 1 some rows invalid or events dead-lettered, 2 the source cannot be read, 130
stopped by Ctrl-C (run the same command again to resume)."""


def _source_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Source, Path]:
    try:
        columns = ColumnMap.parse(args.map)
    except ValueError as exc:
        parser.error(f"--map: {exc}")
    if args.db or args.query:
        if not (args.db and args.query) or args.source is not None:
            parser.error("a database needs both --db URL and --query SQL, and no source path")
        source: Source = DatabaseSource(args.db, args.query, columns)
        digest = hashlib.sha256(source.name.encode()).hexdigest()[:10]
        return source, args.state or Path(f"backfill-{digest}.sqlite")
    if args.source is None:
        parser.error("give an export or a folder, or --db URL --query SQL")
    if not args.source.exists():
        parser.error(f"{args.source} does not exist")
    try:
        source = file_source(args.source, columns)
    except SourceError as exc:
        parser.error(str(exc))
    state = args.state or args.source.with_name(args.source.name + ".backfill.sqlite")
    return source, state


async def _run_stoppable(
    settings: BackfillSettings, source: Source, state: Path, options: BackfillOptions
) -> Summary:
    """The backfill with Ctrl-C (and SIGTERM) setting its stop event; a second Ctrl-C
    interrupts at once."""
    loop = asyncio.get_running_loop()
    stop = options.stop = asyncio.Event()

    def on_signal() -> None:
        stop.set()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await backfill(settings, source, state, options)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    source, state = _source_from(args, parser)
    settings = BackfillSettings()
    options = BackfillOptions(
        rate=args.rate,
        progress=not args.no_progress,
        follow=not args.no_follow,
        group=args.group or settings.group_id,
        matcher_url=args.matcher,
        follow_timeout=args.follow_timeout,
    )
    try:
        summary = asyncio.run(_run_stoppable(settings, source, state, options))
    except SourceError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, OSError) as exc:
        print(f"backfill: cannot reach Kafka at {settings.kafka_bootstrap}: {exc}", file=sys.stderr)
        return 2
    print(report(summary, state))
    if summary.interrupted or summary.timed_out:
        return 130 if summary.interrupted else 1
    if summary.error:
        return 2
    follow = summary.follow
    bad = summary.invalid + (sum(follow.dead.values()) + follow.missing if follow else 0)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
