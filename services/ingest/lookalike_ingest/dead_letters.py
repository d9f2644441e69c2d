"""The dead-letter topic: a record that can never be applied goes there, untouched, with
the reason in `lookalike.error.*` headers, and the worker carries on. The same facts go in
the headers Kafka Connect's dead-letter queues use (`__connect.errors.*`), so existing
Kafka tooling that reads those shows where each record came from and why it failed."""

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
            ("__connect.errors.topic", record.topic.encode()),
            ("__connect.errors.partition", str(record.partition).encode()),
            ("__connect.errors.offset", str(record.offset).encode()),
            ("__connect.errors.exception.class.name", code.encode()),
            ("__connect.errors.exception.message", message[:2000].encode()),
            # A verdict on the event, not a crash: there is no stack to show, only the reason.
            ("__connect.errors.exception.stacktrace", f"{code}: {message}"[:2000].encode()),
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
