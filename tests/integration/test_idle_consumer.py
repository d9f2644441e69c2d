"""An idle consumer rests between empty polls (kafka_idle_rest_ms): on the stand-in, which
answers an empty fetch at once, that is what keeps the local stack's idle services off the
CPU, and a record published during a rest is still read, once, on the next poll."""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from lookalike_shared.config import CommonSettings
from lookalike_shared.kafka import ensure_topics, make_producer, poll
from lookalike_stack.embedded import Backends

PARTITIONS = 3


async def _assigned_consumer(settings: CommonSettings) -> AIOKafkaConsumer:
    await ensure_topics(settings, partitions=PARTITIONS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    consumer.assign([TopicPartition(settings.catalogue_topic, p) for p in range(PARTITIONS)])
    return consumer


async def test_records_published_during_a_rest_are_read_once(
    lookalike_settings: CommonSettings,
) -> None:
    settings = lookalike_settings
    consumer = await _assigned_consumer(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        resting = asyncio.create_task(poll(consumer, 1000, None, idle_rest_ms=400))
        assert await resting == {}  # nothing yet: it polled, found nothing, and rested
        sent = {f"event-{i}".encode() for i in range(30)}
        resting = asyncio.create_task(poll(consumer, 1000, None, idle_rest_ms=400))
        for i, value in enumerate(sorted(sent)):
            await producer.send_and_wait(settings.catalogue_topic, value, partition=i % 3)
        read: list[bytes] = []
        batch = await resting
        async with asyncio.timeout(30):
            while len(read) < len(sent):
                read += [r.value for records in batch.values() for r in records if r.value]
                batch = await poll(consumer, 1000, None, idle_rest_ms=400)
        assert sorted(read) == sorted(sent)  # every one, none twice, from every partition
        assert consumer.paused() == set()  # a rest never leaves a partition paused
    finally:
        await producer.stop()
        await consumer.stop()


async def _cpu_of_idle_polling(settings: CommonSettings, rest_ms: int, seconds: float) -> float:
    """CPU seconds of a process of its own polling the empty topic for `seconds`."""
    argv = [sys.executable, "-m", "tests.fixtures.idle_poll", settings.kafka_bootstrap]
    argv += [settings.catalogue_topic, str(PARTITIONS), str(rest_ms), str(seconds)]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return float(out)


async def test_an_idle_consumer_that_rests_leaves_the_cpu_alone(
    backends: Backends, lookalike_settings: CommonSettings
) -> None:
    """The stack's setting for its broker, against none, on the same empty topic: with
    rests the idle consumer uses a small share of the CPU time it uses without them (on the
    stand-in about 0.08 s against 0.8 s a second; Kafka itself waits, so there both are low)."""
    settings = lookalike_settings  # topics of its own, still empty
    await ensure_topics(settings, partitions=PARTITIONS)
    without = await _cpu_of_idle_polling(settings, 0, 2.0)
    with_rests = await _cpu_of_idle_polling(settings, backends.idle_rest_ms or 500, 2.0)
    if not backends.kafka_waits_on_empty_fetch:
        assert with_rests < without / 3, (with_rests, without)
    assert with_rests < 0.5, with_rests  # of 2 s: never near a busy core
