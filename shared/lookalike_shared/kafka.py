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


async def poll(
    consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int | None, idle_rest_ms: int
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """consumer.getmany, and after an empty answer, with idle_rest_ms, no fetching for that
    long (the assigned partitions paused, then resumed: nothing is skipped). A broker that
    answers an empty fetch at once, without waiting as Kafka does, otherwise makes aiokafka's
    fetcher ask again and again while there is nothing to read."""
    if idle_rest_ms:
        timeout_ms = min(timeout_ms, _RESTING_POLL_MS)
    batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
        timeout_ms=timeout_ms, max_records=max_records
    )
    if not idle_rest_ms:
        return batch
    if not batch:
        consumer.pause(*consumer.assignment())
        try:
            await asyncio.sleep(idle_rest_ms / 1000)
        finally:
            # Only what is still ours: a rebalance during the rest may have moved partitions.
            consumer.resume(*consumer.paused())
    return batch
