"""python -m lookalike_ingest.replay_dlq: send dead-lettered events back to the catalogue topic.

After fixing what made events fail (an image host back up, a file restored, a catalogue
bug fixed), replay them: each record is produced again to its original topic with its
original key, value and headers (the lookalike.error.* and __connect.errors.* headers
removed). Filter by reason with --reason. The DLQ itself is left as it is, so a replay can
be repeated; versions make a repeated event harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition

from lookalike_shared.config import CommonSettings
from lookalike_shared.kafka import make_producer

# The reasons dead_letters.py adds, ours and Kafka Connect's: a replayed event goes back
# as the catalogue sent it.
ERROR_HEADER_PREFIXES = ("lookalike.error.", "__connect.errors.")


async def replay(
    settings: CommonSettings, reasons: set[str] | None = None, dry_run: bool = False
) -> Counter[str]:
    """Returns how many records were replayed per reason."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    replayed: Counter[str] = Counter()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(settings.dlq_topic) or set()
        tps = [TopicPartition(settings.dlq_topic, p) for p in sorted(partitions)]
        if not tps:
            return replayed
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    headers = dict((k, v) for k, v in record.headers)
                    reason = headers.get("lookalike.error.class", b"unknown").decode()
                    topic = headers.get(
                        "lookalike.error.topic", settings.catalogue_topic.encode()
                    ).decode()
                    if reasons and reason not in reasons:
                        continue
                    replayed[reason] += 1
                    if not dry_run:
                        await producer.send_and_wait(
                            topic,
                            key=record.key,
                            value=record.value,
                            headers=[
                                (k, v)
                                for k, v in record.headers
                                if not k.startswith(ERROR_HEADER_PREFIXES)
                            ],
                        )
    finally:
        await producer.stop()
        await consumer.stop()
    return replayed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lookalike_ingest.replay_dlq",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Kafka and topics come from LOOKALIKE_KAFKA_BOOTSTRAP and "
        "LOOKALIKE_CATALOGUE_TOPIC (the DLQ is <topic>.dlq).",
    )
    parser.add_argument(
        "--reason", action="append", help="only this error class (repeatable), e.g. fetch_gave_up"
    )
    parser.add_argument("--dry-run", action="store_true", help="count, do not produce")
    args = parser.parse_args(argv)
    counts = asyncio.run(replay(CommonSettings(), set(args.reason or []) or None, args.dry_run))
    verb = "would replay" if args.dry_run else "replayed"
    total = sum(counts.values())
    detail = ", ".join(f"{reason}: {n}" for reason, n in counts.most_common()) or "nothing"
    print(f"{verb} {total} dead-lettered events ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
