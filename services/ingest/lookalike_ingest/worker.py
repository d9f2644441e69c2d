"""The consume loop: at-least-once, in order per image, concurrent across images.

A poll returns a batch; its records are grouped by key (image id), each key's records run
in order, different keys run concurrently (bounded by max_in_flight). Offsets are
committed only when every record of the batch is applied or durably dead-lettered. Before
partitions are revoked in a rebalance, the batch in progress is finished and committed, so
the next owner starts exactly after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from lookalike_shared.events import InvalidEvent, parse_catalogue_record

from . import metrics
from .handler import EventHandler, PermanentFailure

log = logging.getLogger(__name__)


class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.finish_batch()
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


class IngestWorker:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        handler: EventHandler,
        dlq_topic: str,
        max_in_flight: int,
        batch_max_records: int,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.handler = handler
        self.dlq_topic = dlq_topic
        self.batch_max_records = batch_max_records
        self._slots = asyncio.Semaphore(max_in_flight)
        self._batch_done = asyncio.Event()
        self._batch_done.set()
        self._stopping = asyncio.Event()
        self.processed = 0  # records applied or dead-lettered and committed, for tests/logs

    @property
    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _FinishBeforeRevoke(self)

    def stop(self) -> None:
        """Finish the batch in hand, commit it, then return from run()."""
        self._stopping.set()

    async def finish_batch(self) -> None:
        await self._batch_done.wait()

    async def run(self) -> None:
        while not self._stopping.is_set():
            poll = asyncio.ensure_future(
                self.consumer.getmany(timeout_ms=1000, max_records=self.batch_max_records)
            )
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not poll.done():
                poll.cancel()
                break
            batch = poll.result()
            if not batch:
                await self._update_lag()
                continue
            self._batch_done.clear()
            try:
                await self._process_batch(batch)
                await self.consumer.commit(
                    {tp: records[-1].offset + 1 for tp, records in batch.items()}
                )
                self.processed += sum(len(r) for r in batch.values())
            finally:
                self._batch_done.set()
            await self._update_lag()

    async def _process_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        by_key: dict[tuple[int, bytes | None], list[ConsumerRecord]] = defaultdict(list)
        for tp, records in batch.items():
            for record in records:
                # Records without a key cannot be ordered against anything; give each its own lane.
                lane = record.key if record.key is not None else f"@{record.offset}".encode()
                by_key[(tp.partition, lane)].append(record)
        await asyncio.gather(*(self._process_lane(records) for records in by_key.values()))

    async def _process_lane(self, records: list[ConsumerRecord]) -> None:
        async with self._slots:
            for record in records:
                await self._process_record(record)

    async def _process_record(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        metrics.IN_FLIGHT.inc()
        try:
            event = parse_catalogue_record(record.key, record.value, record.headers)
            if event is None:
                metrics.EVENTS.labels("skipped").inc()
                return
            outcome = await self.handler.apply(event)
            metrics.EVENTS.labels(outcome).inc()
            log.debug("applied", extra={"image_id": event.image_id, "outcome": outcome})
        except InvalidEvent as exc:
            await self._dead_letter(record, exc.code, str(exc))
        except PermanentFailure as exc:
            await self._dead_letter(record, exc.code, str(exc))
        finally:
            metrics.IN_FLIGHT.dec()
            metrics.EVENT_SECONDS.observe(time.perf_counter() - started)

    async def _dead_letter(self, record: ConsumerRecord, code: str, message: str) -> None:
        headers = [
            *(record.headers or ()),
            ("lookalike.error.topic", record.topic.encode()),
            ("lookalike.error.partition", str(record.partition).encode()),
            ("lookalike.error.offset", str(record.offset).encode()),
            ("lookalike.error.class", code.encode()),
            ("lookalike.error.message", message[:2000].encode()),
            ("lookalike.error.time", datetime.now(UTC).isoformat().encode()),
        ]
        await self.handler.retry_backend(
            "dlq",
            lambda: self.producer.send_and_wait(
                self.dlq_topic, key=record.key, value=record.value, headers=headers
            ),
        )
        metrics.EVENTS.labels("dlq").inc()
        metrics.DLQ.labels(code).inc()
        log.warning(
            "event dead-lettered",
            extra={
                "reason": code,
                "error": message,
                "partition": record.partition,
                "offset": record.offset,
            },
        )

    async def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                position = await self.consumer.position(tp)
                metrics.LAG.labels(str(tp.partition)).set(max(0, highwater - position))
