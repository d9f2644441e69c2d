"""Keeps the index equal to the compacted fingerprint topic.

    start --load the snapshot in the data dir, if it fits this topic and partition set-->
          --seek each partition to the snapshot's next offset (or to the beginning)-->
          --replay; ready once every record that existed at start is applied-->
          --keep consuming: new and deleted images show up within a poll;
            a snapshot every snapshot_interval_seconds while records arrive, and on shutdown

The replay loop is the index's only writer; it applies each batch of records and writes a
snapshot in a thread, one at a time, so writes pause while a snapshot is taken and searches
go on. While the backlog is replayed the index merges its tables rarely (catching_up).

A record that cannot be applied is logged, counted (lookalike_matcher_records_skipped_total)
and skipped: one bad record must not stop the index from following the topic. Should the
loop die all the same, `failed` says why, /readyz turns 503 with REPLAY-FAILED and the
service exits non-zero (app.py), rather than answer from an index that no longer follows.
A tombstone carries the version its image was deleted at (header lookalike.version): the
index remembers it for deletion_retention_days and refuses older upserts meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from lookalike_shared.contracts import VERSION_HEADER, FingerprintRecord
from lookalike_shared.kafka import Poller
from lookalike_shared.readiness import Readiness

from . import metrics
from .allocator import release_free_memory
from .index import FingerprintIndex
from .settings import MatcherSettings
from .snapshot import empty_state, load_snapshot, save_snapshot

log = logging.getLogger(__name__)
PART = "replay"  # its name in the matcher's Readiness


async def _in_thread(work: Callable[..., None], *args: Any) -> None:
    """Run index work in a thread and, if we are cancelled meanwhile, wait for it all the
    same: a thread cannot be stopped half-way, and whoever cancelled us (shutdown) writes a
    snapshot next, which must not see a batch half-applied."""
    done = asyncio.ensure_future(asyncio.to_thread(work, *args))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await done
        raise


def _header_int(headers: list[tuple[str, bytes]] | None, name: str) -> int | None:
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class FingerprintReplay:
    def __init__(
        self, settings: MatcherSettings, index: FingerprintIndex, readiness: Readiness
    ) -> None:
        self.settings = settings
        self.index = index
        self.readiness = readiness
        readiness.set(PART, "INDEX-NOT-LOADED")
        self.partitions: list[int] = []
        self.applied = 0  # records applied since this process started
        self.next_offsets: dict[int, int] = {}
        self.loaded_from_snapshot = 0  # images the snapshot held
        self.failed: str | None = None  # why the replay loop died, if it did
        self._dirty = False
        self._last_snapshot = time.monotonic()
        release_free_memory()  # what the snapshot's table merges freed
        retention = self.settings.deletion_retention_days * 86400
        self.index.forget_deletions(before=time.time() - retention)
        self._newest_timestamp: float | None = None

    @property
    def data_dir(self) -> Path | None:
        folder = self.settings.matcher_data_dir
        return Path(folder) if folder else None

    async def run(self) -> None:
        """Follow the topic until cancelled; if anything else ends the loop, say so and
        re-raise (readiness turns REPLAY-FAILED)."""
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            self.readiness.set(PART, "REPLAY-FAILED")
            metrics.READY.set(0)
            log.exception("the replay stopped; the index no longer follows the topic")
            raise

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        try:
            # Inside the try: a matcher stopped while Kafka is still unreachable stops its
            # consumer too (aiokafka warns of, and leaks, one never stopped).
            await self._start(consumer)
            tps = await self._assign(consumer)
            self.readiness.set(PART, "INDEX-NOT-LOADED")
            await self._load_snapshot(consumer, tps)
            targets = await consumer.end_offsets(tps)
            self.readiness.set(PART, "INDEX-CATCHING-UP")
            self.index.catching_up(True)
            poller = Poller(consumer, self.settings.kafka_idle_rest_ms)
            while True:
                batch = await poller.poll(500, 5000)
                if batch:
                    # In a thread: a table merge takes a while at millions of images, and the
                    # event loop keeps answering searches meanwhile.
                    await _in_thread(self._apply_all, batch)
                behind = self.readiness.reason(PART) is not None
                if behind and await self._caught_up(consumer, targets):
                    await _in_thread(self.index.catching_up, False)
                    self.readiness.clear(PART)
                    metrics.READY.set(1)
                    log.info(
                        "index loaded",
                        extra={"images": len(self.index), "replayed": self.applied},
                    )
                await self._report_lag(consumer, tps, batch)
                if (
                    self._dirty
                    and self.data_dir is not None
                    and time.monotonic() - self._last_snapshot
                    >= self.settings.snapshot_interval_seconds
                ):
                    await _in_thread(self.save_snapshot)
        finally:
            await consumer.stop()

    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        self.readiness.set(PART, "KAFKA-UNREACHABLE")
        while True:
            try:
                await consumer.start()
                return
            except Exception as exc:
                log.warning("kafka not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self.settings.fingerprint_topic
        self.readiness.set(PART, "TOPIC-MISSING")
        while True:
            # The consumer's list of topic names first: asking the broker about one topic by
            # name could have it create the topic (auto.create.topics.enable), uncompacted.
            if topic in await consumer.topics():
                available = await self._partitions_of(topic)
                if available:
                    break
            await asyncio.sleep(1)  # the topic is created by set-up or ingest, in its time
        wanted = self.settings.matcher_partitions or available
        unknown = set(wanted) - set(available)
        if unknown:
            raise ValueError(f"partitions {sorted(unknown)} do not exist in {topic}")
        self.partitions = sorted(wanted)
        tps = [TopicPartition(topic, p) for p in self.partitions]
        consumer.assign(tps)
        return tps

    async def _load_snapshot(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        folder = self.data_dir
        snapshot = None
        if folder is not None:
            snapshot = await asyncio.to_thread(
                load_snapshot, folder, self.settings.fingerprint_topic, self.partitions
            )
        if snapshot is None:
            self.index.adopt(empty_state(folder))
            await consumer.seek_to_beginning(*tps)
            return
        self.index.adopt(snapshot.state)
        self.loaded_from_snapshot = len(snapshot.state.names)
        self.next_offsets = dict(snapshot.offsets)
        for tp in tps:
            offset = snapshot.offsets.get(tp.partition)
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        metrics.INDEX_IMAGES.set(len(self.index))

    def save_snapshot(self) -> None:
        """Write a snapshot of what has been applied (call with the replay loop paused)."""
        if self.data_dir is None or not self.partitions:
            return
        save_snapshot(
            self.index.state,
            self.data_dir,
            self.settings.fingerprint_topic,
            self.partitions,
            self.next_offsets,
        )
        self._dirty = False
        self._last_snapshot = time.monotonic()
        release_free_memory()  # what the snapshot's table merges freed
        retention = self.settings.deletion_retention_days * 86400
        self.index.forget_deletions(before=time.time() - retention)

    def _apply_all(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for records in batch.values():
            for record in records:
                self._apply(record)

    def _apply(self, record: ConsumerRecord) -> None:
        self.next_offsets[record.partition] = record.offset + 1
        self._dirty = True
        self._newest_timestamp = record.timestamp / 1000
        try:
            self._apply_record(record)
        except (ValidationError, UnicodeDecodeError, ValueError) as exc:
            self._skip(record, "unreadable", exc)
            return
        except Exception as exc:
            self._skip(record, "unappliable", exc)
            return
        self.applied += 1
        metrics.INDEX_IMAGES.set(len(self.index))
        metrics.INDEX_ENTRIES.set(self.index.entries)
        metrics.KEYPOINT_POSTINGS.set(len(self.index.postings))
        metrics.REMEMBERED_DELETIONS.set(self.index.remembered_deletions)

    def _apply_record(self, record: ConsumerRecord) -> None:
        image_id = record.key.decode() if record.key else None
        if record.value is None:
            if image_id is not None:
                version = _header_int(record.headers, VERSION_HEADER)
                self.index.delete(image_id, version, at=record.timestamp / 1000)
            return
        parsed = FingerprintRecord.model_validate_json(record.value)
        self.index.upsert(parsed.image_id, parsed.version, parsed.fingerprint)

    @staticmethod
    def _skip(record: ConsumerRecord, reason: str, exc: Exception) -> None:
        # Written by our own ingest, so this is a bug or a newer schema: skip it loudly.
        metrics.RECORDS_SKIPPED.labels(reason).inc()
        log.error(
            "fingerprint record skipped",
            extra={
                "reason": reason,
                "partition": record.partition,
                "offset": record.offset,
                "error": f"{type(exc).__name__}: {str(exc)[:500]}",
            },
        )

    async def _partitions_of(self, topic: str) -> list[int]:
        """The partitions of an existing topic, from fresh metadata."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([topic])  # it exists: nothing is created
        finally:
            await admin.close()
        return sorted(
            int(partition["partition"])
            for found in described
            if found.get("topic") == topic and found.get("error_code") == 0
            for partition in found.get("partitions", [])
        )

    @staticmethod
    async def _caught_up(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
        for tp, end in targets.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _report_lag(
        self,
        consumer: AIOKafkaConsumer,
        tps: list[TopicPartition],
        batch: dict[TopicPartition, list[ConsumerRecord]],
    ) -> None:
        behind = 0
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                behind += max(0, highwater - await consumer.position(tp))
        metrics.REPLAY_LAG_RECORDS.set(behind)
        if behind == 0:
            metrics.REPLAY_LAG_SECONDS.set(0)
        elif self._newest_timestamp is not None:
            # How far behind the newest record applied is, while records wait.
            metrics.REPLAY_LAG_SECONDS.set(max(0.0, time.time() - self._newest_timestamp))
        metrics.MEMORY_BYTES.set(self.index.nbytes())
