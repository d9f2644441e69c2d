"""Keeps the index equal to the compacted fingerprint topic.

On start it reads its partitions from the beginning; it is ready once it has applied every
record that existed when it started (the end offsets it saw then). It keeps consuming
afterwards, so new and deleted images show up within a poll.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from lookalike_shared.contracts import FingerprintRecord

from . import metrics
from .index import FingerprintIndex
from .settings import MatcherSettings

log = logging.getLogger(__name__)


class FingerprintReplay:
    def __init__(self, settings: MatcherSettings, index: FingerprintIndex) -> None:
        self.settings = settings
        self.index = index
        self.not_ready_reason: str | None = "INDEX-NOT-LOADED"
        self.partitions: list[int] = []
        self.applied = 0

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._start(consumer)
        try:
            tps = await self._assign(consumer)
            targets = await consumer.end_offsets(tps)
            self.not_ready_reason = "INDEX-CATCHING-UP"
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                if self.not_ready_reason is not None and await self._caught_up(consumer, targets):
                    self.not_ready_reason = None
                    metrics.READY.set(1)
                    log.info("index loaded", extra={"images": len(self.index)})
                await self._report_lag(consumer, tps, batch)
        finally:
            await consumer.stop()

    async def _start(self, consumer: AIOKafkaConsumer) -> None:
        self.not_ready_reason = "KAFKA-UNREACHABLE"
        while True:
            try:
                await consumer.start()
                return
            except Exception as exc:
                log.warning("kafka not reachable, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(1)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self.settings.fingerprint_topic
        self.not_ready_reason = "TOPIC-MISSING"
        while True:
            await consumer.topics()  # refreshes metadata
            available = consumer.partitions_for_topic(topic)
            if available:
                break
            await asyncio.sleep(1)
        wanted = self.settings.matcher_partitions or sorted(available)
        unknown = set(wanted) - set(available)
        if unknown:
            raise ValueError(f"partitions {sorted(unknown)} do not exist in {topic}")
        self.partitions = sorted(wanted)
        tps = [TopicPartition(topic, p) for p in self.partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return tps

    def _apply(self, record: ConsumerRecord) -> None:
        image_id = record.key.decode() if record.key else None
        if record.value is None:
            if image_id is not None:
                self.index.delete(image_id)
        else:
            try:
                parsed = FingerprintRecord.model_validate_json(record.value)
            except ValidationError as exc:
                # Written by our own ingest, so this is a bug or a newer schema: skip loudly.
                log.error(
                    "unreadable fingerprint record",
                    extra={
                        "partition": record.partition,
                        "offset": record.offset,
                        "error": str(exc),
                    },
                )
                return
            self.index.upsert(parsed.image_id, parsed.version, parsed.fingerprint)
        self.applied += 1
        metrics.INDEX_IMAGES.set(len(self.index))

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
        newest = max((r.timestamp for rs in batch.values() for r in rs), default=None)
        if behind == 0:
            metrics.REPLAY_LAG_SECONDS.set(0)
        elif newest is not None:
            metrics.REPLAY_LAG_SECONDS.set(max(0.0, time.time() - newest / 1000))
