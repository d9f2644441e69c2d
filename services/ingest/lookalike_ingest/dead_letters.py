"""The dead-letter topic: a record that can never be applied goes there, untouched, with
the reason in `lookalike.error.*` headers, and the worker carries on."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from . import metrics
from .retry import Backoff

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, topic: str, backoff: Backoff) -> None:
        self.producer = producer
        self.topic = topic
        self.backoff = backoff

    async def send(self, record: ConsumerRecord, code: str, message: str) -> None:
        """Returns once the dead letter is durable (its offset may then be committed)."""
        headers = [
            *(record.headers or ()),
            ("lookalike.error.topic", record.topic.encode()),
            ("lookalike.error.partition", str(record.partition).encode()),
            ("lookalike.error.offset", str(record.offset).encode()),
            ("lookalike.error.class", code.encode()),
            ("lookalike.error.message", message[:2000].encode()),
            ("lookalike.error.time", datetime.now(UTC).isoformat().encode()),
        ]
        await self.backoff.retry_backend(
            "dlq",
            lambda: self.producer.send_and_wait(
                self.topic, key=record.key, value=record.value, headers=headers
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
