"""A consumer rests each partition it has read to the end (kafka_idle_rest_ms): on the
stand-in, which answers an empty fetch at once, that is what keeps the local stack's idle
services off the CPU, and a busy one's CPU on its work rather than on fetching partitions
that hold nothing; a record published during a rest is still read, once, after it."""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition

from lookalike_shared.config import CommonSettings
from lookalike_shared.kafka import Poller, ensure_topics, make_producer
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
    poller = Poller(consumer, idle_rest_ms=400)
    producer = make_producer(settings)
    await producer.start()

    async def read_all(count: int) -> list[bytes]:
        read: list[bytes] = []
        async with asyncio.timeout(30):
            while len(read) < count:
                batch = await poller.poll(1000, None)
                read += [r.value for records in batch.values() for r in records if r.value]
        return read

    try:
        async with asyncio.timeout(10):
            while len(consumer.paused()) < PARTITIONS:  # each read to its (empty) end: resting
                assert await poller.poll(1000, None) == {}
        sent = [f"event-{i}".encode() for i in range(30)]
        for i, value in enumerate(sent):
            await producer.send_and_wait(settings.catalogue_topic, value, partition=i % 3)
        assert sorted(await read_all(len(sent))) == sorted(sent)  # all, once, every partition
        # And again: no rest leaves a partition paused for good.
        later = [f"later-{p}".encode() for p in range(PARTITIONS)]
        for p, value in enumerate(later):
            await producer.send_and_wait(settings.catalogue_topic, value, partition=p)
        assert sorted(await read_all(len(later))) == sorted(later)
    finally:
        await producer.stop()
        await consumer.stop()


async def _cpu_of_polling(
    settings: CommonSettings, rest_ms: int, seconds: float, work_ms: int = 0
) -> float:
    """CPU seconds of a process of its own polling the topic for `seconds`."""
    argv = [sys.executable, "-m", "tests.fixtures.idle_poll", settings.kafka_bootstrap]
    argv += [settings.catalogue_topic, str(PARTITIONS), str(rest_ms), str(seconds), str(work_ms)]
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
    without = await _cpu_of_polling(settings, 0, 2.0)
    with_rests = await _cpu_of_polling(settings, backends.idle_rest_ms or 500, 2.0)
    if not backends.kafka_waits_on_empty_fetch:
        assert with_rests < without / 3, (with_rests, without)
    assert with_rests < 0.5, with_rests  # of 2 s: never near a busy core


async def test_a_consumer_busy_with_one_partition_does_not_spin_on_the_others(
    backends: Backends, lookalike_settings: CommonSettings
) -> None:
    """A backlog in one partition, read a record at a time with 20 ms of work each, while
    the other partitions are empty: with rests, the consumer's CPU goes on its records, not
    on asking again and again for the empty partitions (ingest working through a backlog)."""
    settings = lookalike_settings
    await ensure_topics(settings, partitions=PARTITIONS)
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(300):  # more than either 2 s run gets through
            await producer.send(settings.catalogue_topic, b"x%d" % i, partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    without = await _cpu_of_polling(settings, 0, 2.0, work_ms=20)
    with_rests = await _cpu_of_polling(settings, backends.idle_rest_ms or 500, 2.0, work_ms=20)
    if not backends.kafka_waits_on_empty_fetch:
        assert with_rests < without / 3, (with_rests, without)
    assert with_rests < 0.5, with_rests
