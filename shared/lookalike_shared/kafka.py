"""Kafka helpers: topic set-up and producer/consumer construction with our defaults."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from .config import CommonSettings

log = logging.getLogger(__name__)


async def wait_for_kafka(bootstrap: str, timeout: float = 60.0) -> None:
    """Block until the cluster answers metadata, or raise TimeoutError naming it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} did not answer in {timeout}s") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def ensure_topics(
    settings: CommonSettings, partitions: int = 6, replication_factor: int = 1
) -> None:
    """Create the catalogue, dead-letter and compacted fingerprint topics if missing."""
    topics = [
        NewTopic(settings.catalogue_topic, partitions, replication_factor),
        NewTopic(settings.dlq_topic, 1, replication_factor),
        NewTopic(
            settings.fingerprint_topic,
            partitions,
            replication_factor,
            # Compaction keeps the newest record per image and drops deleted ones, so a
            # matcher replaying from the beginning rebuilds exactly the current index.
            topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it between list and create
            log.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


def make_producer(settings: CommonSettings, **overrides: object) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas: a send that returns is
    durable, which is what at-least-once offset commits rely on. (Without idempotence a
    retried send may be written twice; versions make the second copy change nothing.)"""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "linger_ms": 5,
        "request_timeout_ms": 30000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


# How long a poll waits for records while idle rests are on: the stand-in answers at once.
_RESTING_POLL_MS = 50

Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Poller:
    """consumer.getmany for a broker that may answer an empty fetch at once, where Kafka
    holds it open (fetch.max.wait.ms). Against such a broker aiokafka's fetcher asks again
    and again for every partition it has read to the end: while the consumer is idle, and
    as much while it works through a backlog of other partitions' records (the local stack's
    ingest spent more CPU on those fetches than on its own work). With `idle_rest_ms`, each
    partition read to its end rests that long: paused, resumed by the next poll after the
    rest (nothing is skipped); when every partition rests, a poll waits for the first to
    wake. Without it (Kafka), a plain getmany."""

    def __init__(self, consumer: AIOKafkaConsumer, idle_rest_ms: int = 0) -> None:
        self.consumer = consumer
        self.rest_seconds = idle_rest_ms / 1000
        self._wakes: dict[TopicPartition, float] = {}  # resting partition -> when it wakes

    async def poll(self, timeout_ms: int, max_records: int | None) -> Batch:
        if not self.rest_seconds:
            batch: Batch = await self.consumer.getmany(
                timeout_ms=timeout_ms, max_records=max_records
            )
            return batch
        loop = asyncio.get_running_loop()
        self._wake(loop.time())
        assigned = self.consumer.assignment()
        if assigned and self._wakes and assigned <= self._wakes.keys():
            await asyncio.sleep(max(0.0, min(self._wakes.values()) - loop.time()))
            self._wake(loop.time())
        batch = await self.consumer.getmany(
            timeout_ms=min(timeout_ms, _RESTING_POLL_MS), max_records=max_records
        )
        await self._rest_those_read_to_the_end(loop.time())
        return batch

    def _wake(self, now: float) -> None:
        due = {tp for tp, at in self._wakes.items() if at <= now}
        for tp in due:
            del self._wakes[tp]
        # Only what is still ours and paused: a rebalance may have moved partitions.
        self.consumer.resume(*(due & self.consumer.paused()))

    async def _rest_those_read_to_the_end(self, now: float) -> None:
        ended = []
        for tp in self.consumer.assignment() - self._wakes.keys():
            end = self.consumer.highwater(tp)  # as of the last fetch; None before the first
            if end is not None and await self.consumer.position(tp) >= end:
                ended.append(tp)
        if ended:
            self.consumer.pause(*ended)
            self._wakes.update(dict.fromkeys(ended, now + self.rest_seconds))
