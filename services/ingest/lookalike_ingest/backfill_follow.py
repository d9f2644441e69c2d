"""See a backfill through: follow the events it published until each is indexed or
dead-lettered, from what the pipeline itself records, never from an estimate.

    every poll (half a second):
      the ingest group's committed offsets      an event below its partition's commit is
                                                done: indexed, stale, or dead-lettered
      the dead-letter topic, from where it      each record names the event's partition
        ended when the run began                and offset: that event is dead-lettered
      Elasticsearch, for the other done events  its version and indexed_at say indexed
                                                (by this run) or unchanged (it held this
                                                version or a newer one already)
    once none is pending: the matcher's /v1/stats, until it holds as many images as
      Elasticsearch then has documents (a fingerprint record is durable before its
      document is written, so every document's fingerprint is on its way to the matcher)

The worker writes a dead letter before it commits past its event, so the dead-letter
topic, read to its end after the commits were read, names every dead-lettered one. Outcomes
are kept in the state file: a follow-through stopped with Ctrl-C resumes with the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from elasticsearch import AsyncElasticsearch, NotFoundError, TransportError
from elasticsearch import ConnectionError as ESConnectionError
from tqdm import tqdm

from lookalike_shared.config import CommonSettings
from lookalike_shared.profile import load_profile
from lookalike_shared.search_index import NOT_DELETED

from .backfill_state import PendingEvent, PublishedState, Run

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
MGET_IDS = 500  # ids per Elasticsearch lookup
EXAMPLES = 2  # example ids shown per dead-letter reason
QUIET_HINT_SECONDS = 15.0  # how long without a commit before saying what we wait for


@dataclass
class FollowReport:
    indexed: int = 0
    unchanged: int = 0
    missing: int = 0  # done, not dead-lettered, not in Elasticsearch: deleted since
    dead: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)  # reason -> first message
    matcher_images: int | None = None
    es_images: int | None = None
    finished: bool = False  # False: stopped (Ctrl-C, timeout) with events still pending
    pending: int = 0
    seconds: float = 0.0

    @property
    def settled(self) -> int:
        return self.indexed + self.unchanged + self.missing + sum(self.dead.values())


class PipelineFollower:
    def __init__(
        self,
        settings: CommonSettings,
        state: PublishedState,
        group: str,
        matcher_url: str | None = None,
        progress: bool = True,
        bar_file: IO[str] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.group = group
        self.matcher_url = matcher_url.rstrip("/") if matcher_url else None
        self.report = FollowReport()
        self.runs: list[Run] = []
        self.expected = 0  # events to follow: pending from earlier runs plus this run's
        self.bar = tqdm(
            total=0,
            desc="indexed",
            unit=" images",
            position=1,
            disable=not progress,
            file=bar_file,
            dynamic_ncols=True,
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        self.dlq = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )
        self.es = AsyncElasticsearch(settings.es_url, request_timeout=30)
        # With a catalogue profile, lookalike's state of each image is under the namespace
        # of the library's documents (profile.py), not in documents of its own.
        self.profile = (
            load_profile(settings.catalogue_profile) if settings.catalogue_profile else None
        )
        self.index = self.profile.alias if self.profile else settings.es_alias
        self.http: aiohttp.ClientSession | None = None
        self._dlq_tps: list[TopicPartition] = []
        self._last_commit_change = time.monotonic()
        self._last_committed: dict[int, int] = {}
        self._hinted: set[str] = set()

    async def start(self, run: Run) -> Run:
        """Open the clients and note where the dead-letter topic ends now: this run's dead
        letters come after it. Earlier runs' pending events are followed too."""
        await self.admin.start()
        await self.dlq.start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        earlier = self.state.runs_with_pending(self.settings.catalogue_topic)
        ends = await self._dlq_ends()
        run = self.state.set_dlq_start(run, {tp.partition: o for tp, o in ends.items()})
        self.runs = [*earlier, run]
        self.expected = self.state.pending_count([r.run for r in earlier])
        self._update_bar()
        if self._dlq_tps:
            self._seek_dlq()
        return run

    def expect(self, more: int) -> None:
        """More events will be published (or were): the indexed bar's total grows."""
        self.expected += more
        self._update_bar()

    async def follow(self, publishing_done: asyncio.Event, stop: asyncio.Event) -> FollowReport:
        """Poll until publishing is done and every event is settled and searchable, or
        until `stop` is set; either way the outcomes so far are kept in the state."""
        started = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await self.poll()
                except (KafkaError, ESConnectionError, TransportError, OSError) as exc:
                    # A backend away for a moment: the next poll asks again.
                    self._say_once(f"following paused, a backend did not answer: {exc}", "poll")
                if publishing_done.is_set() and self.report.pending == 0:
                    if await self._matcher_caught_up():
                        self.report.finished = True
                        break
                self._hint_if_quiet()
                try:
                    await asyncio.wait_for(stop.wait(), POLL_SECONDS)
                except TimeoutError:
                    pass
        finally:
            self.state.commit()
            self.report.pending = self.state.pending_count([r.run for r in self.runs])
            self.report.seconds = time.monotonic() - started
        return self.report

    async def poll(self) -> None:
        run_ids = [r.run for r in self.runs]
        committed = await self._committed()
        await self._read_dead_letters(run_ids)
        for partition, offset in committed.items():
            while batch := self.state.pending_below(run_ids, partition, offset, MGET_IDS):
                await self._settle(batch)
                if len(batch) < MGET_IDS:
                    break
        self.state.commit()
        self.report.pending = self.state.pending_count(run_ids)
        self._update_bar()

    async def _committed(self) -> dict[int, int]:
        offsets = await self.admin.list_consumer_group_offsets(self.group)
        committed = {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if tp.topic == self.settings.catalogue_topic and meta.offset >= 0
        }
        if committed != self._last_committed:
            self._last_committed = committed
            self._last_commit_change = time.monotonic()
        return committed

    async def _dlq_ends(self) -> dict[TopicPartition, int]:
        topic = self.settings.dlq_topic
        if not self._dlq_tps and topic in await self.admin.list_topics():
            # From the admin client: a consumer's metadata would miss a topic created
            # after it started, as the dead-letter topic may be.
            described = await self.admin.describe_topics([topic])
            partitions = [p["partition"] for t in described for p in t.get("partitions", [])]
            self._dlq_tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if self._dlq_tps:
                self.dlq.assign(self._dlq_tps)
        return await self.dlq.end_offsets(self._dlq_tps) if self._dlq_tps else {}

    def _seek_dlq(self) -> None:
        for tp in self._dlq_tps:
            starts = [r.dlq_start.get(tp.partition, 0) for r in self.runs]
            self.dlq.seek(tp, min(starts, default=0))

    async def _read_dead_letters(self, run_ids: list[int]) -> None:
        had_topic = bool(self._dlq_tps)
        ends = await self._dlq_ends()
        if not had_topic and self._dlq_tps:
            self._seek_dlq()  # created after the run began: every dead letter is new
        while [tp for tp, end in ends.items() if await self.dlq.position(tp) < end]:
            batch = await self.dlq.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                for record in records:
                    self._dead_letter(run_ids, record.key, dict(record.headers or ()))

    def _dead_letter(self, run_ids: list[int], key: bytes | None, headers: dict[str, Any]) -> None:
        def text(name: str) -> str:
            raw = headers.get(f"lookalike.error.{name}")
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""

        if text("topic") != self.settings.catalogue_topic:
            return
        try:
            partition, offset = int(text("partition")), int(text("offset"))
        except ValueError:
            return
        reason = text("class") or "unknown"
        if self.state.settle_dead(run_ids, partition, offset, reason):
            self.report.dead[reason] += 1
            examples = self.report.examples.setdefault(reason, [])
            if len(examples) < EXAMPLES:
                examples.append(key.decode("utf-8", "replace") if key else f"@{offset}")
            self.report.messages.setdefault(reason, text("message"))

    async def _settle(self, events: list[PendingEvent]) -> None:
        """Indexed, unchanged or missing, from what Elasticsearch holds for each."""
        started = {r.run: r.started for r in self.runs}
        try:
            response = await self.es.mget(
                index=self.index,
                ids=[e.image_id for e in events],
                source_includes=[self._ours("indexed_at"), self._ours("version")],
            )
            docs = {doc["_id"]: doc for doc in response["docs"] if doc.get("found")}
        except NotFoundError:
            docs = {}  # no index behind the alias: nothing was indexed
        for event in events:
            doc = docs.get(event.image_id)
            if doc is None:
                outcome = "missing"
                self.report.missing += 1
            elif self._version(doc) == event.version and self._indexed_since(
                doc, started[event.run]
            ):
                outcome = "indexed"
                self.report.indexed += 1
            else:
                outcome = "unchanged"  # it held this version, or a newer one, already
                self.report.unchanged += 1
            self.state.settle(event.image_id, outcome)

    def _ours(self, name: str) -> str:
        return self.profile.ours(name) if self.profile else name

    def _own(self, doc: dict[str, Any]) -> dict[str, Any]:
        source = doc.get("_source") or {}
        return dict(source.get(self.profile.index.namespace) or {}) if self.profile else source

    def _version(self, doc: dict[str, Any]) -> int:
        if self.profile is None:
            return int(doc["_version"])
        return int(self._own(doc).get("version", -1))

    def _indexed_since(self, doc: dict[str, Any], started: float) -> bool:
        return _indexed_since(self._own(doc).get("indexed_at"), started)

    def _images_query(self) -> dict[str, Any]:
        """The documents that are images the matcher holds: lookalike's own, or those of
        the library's that lookalike has enriched and not deleted."""
        if self.profile is None:
            return NOT_DELETED
        return {
            "bool": {
                "filter": [{"exists": {"field": self._ours("embedding")}}],
                "must_not": [{"term": {self._ours("deleted"): True}}],
            }
        }

    async def _matcher_caught_up(self) -> bool:
        """True without a matcher URL; else once the matcher holds as many images as
        Elasticsearch had documents when the last event settled (counted once: a count
        scans the index)."""
        if self.matcher_url is None or self.http is None:
            return True
        try:
            if self.report.es_images is None:
                # Refreshed first: a count reads only what the last refresh made searchable.
                await self.es.indices.refresh(index=self.index)
                count = await self.es.count(index=self.index, query=self._images_query())
                self.report.es_images = int(count["count"])
            async with self.http.get(f"{self.matcher_url}/v1/stats") as resp:
                stats = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ESConnectionError, NotFoundError) as exc:
            self._say_once(f"cannot ask the matcher or Elasticsearch yet: {exc}", "matcher")
            return False
        self.report.matcher_images = int(stats.get("images", 0))
        self.bar.set_postfix_str(
            f"matcher {self.report.matcher_images}/{self.report.es_images}", refresh=True
        )
        return bool(stats.get("ready")) and self.report.matcher_images >= self.report.es_images

    def _update_bar(self) -> None:
        report = self.report
        self.bar.total = max(self.expected - sum(report.dead.values()), 0)
        self.bar.n = report.indexed + report.unchanged + report.missing
        details = [f"unchanged={report.unchanged}"]
        if report.dead:
            details.append(f"dead-lettered={sum(report.dead.values())}")
        self.bar.set_postfix_str(", ".join(details), refresh=True)

    def _hint_if_quiet(self) -> None:
        quiet = time.monotonic() - self._last_commit_change
        if self.report.pending and quiet > QUIET_HINT_SECONDS:
            self._say_once(
                f"no commit from the ingest group {self.group!r} on "
                f"{self.settings.catalogue_topic} for {quiet:.0f}s: is an ingest worker "
                f"running with LOOKALIKE_GROUP_ID={self.group}? (Ctrl-C stops following; "
                "the next run follows these events again)",
                "quiet",
            )

    def _say_once(self, message: str, kind: str | None = None) -> None:
        kind = kind or message.split(":")[0]
        if kind not in self._hinted:
            self._hinted.add(kind)
            tqdm.write(message, file=self.bar.fp)

    async def close(self) -> None:
        self.bar.close()
        if self.http is not None:
            await self.http.close()
        await self.es.close()
        await self.dlq.stop()
        await self.admin.close()


def _indexed_since(indexed_at: Any, started: float) -> bool:
    """Written after the run began (by one of its events) rather than before it."""
    if not isinstance(indexed_at, str):
        return True  # no stamp to tell by: the version matches, call it indexed
    try:
        return datetime.fromisoformat(indexed_at).timestamp() >= started
    except ValueError:
        return True
