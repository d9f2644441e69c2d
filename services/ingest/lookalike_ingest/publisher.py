"""A batch's records for the compacted fingerprint topic (the matchers' registrations).

Each record is handed to the producer as soon as its event is prepared, without waiting
for the broker: the producer groups what arrives within `linger_ms` into one request per
partition, so a batch costs a few round trips instead of one per event. The batch waits
for every acknowledgement at once, before its search writes and its offset commit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from . import metrics
from .retry import Backoff

Ack = asyncio.Future[Any]


class FingerprintPublishes:
    def __init__(self, producer: AIOKafkaProducer, topic: str, backoff: Backoff) -> None:
        self.producer = producer
        self.topic = topic
        self.backoff = backoff
        self._records: list[tuple[bytes, bytes | None]] = []  # in the order sent
        self._acks: list[Ack] = []

    async def send(self, image_id: str, value: bytes | None) -> None:
        """Queue a fingerprint record (None: the tombstone of a deleted image)."""
        key = image_id.encode()
        self._records.append((key, value))
        self._acks.append(await self._send(key, value))

    async def acknowledged(self) -> None:
        """Return once the broker acknowledged every record. If one was not, all of them
        are sent again, in the original order: resending only the failed one could put an
        older version of an image after a newer one that got through, and compaction keeps
        the last record of a key. The extra copies are harmless (same key, same value)."""
        if not self._records:
            return
        first_attempt = True

        async def attempt() -> None:
            nonlocal first_attempt
            if not first_attempt:
                self._acks = [await self._send(key, value) for key, value in self._records]
            first_attempt = False
            for outcome in await asyncio.gather(*self._acks, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise KafkaError(f"fingerprint record not acknowledged: {outcome!r}")

        with metrics.STAGE_SECONDS.labels("publish").time():
            await self.backoff.retry_backend("publish", attempt, events=len(self._records))

    async def _send(self, key: bytes, value: bytes | None) -> Ack:
        try:
            ack: Ack = await self.producer.send(self.topic, key=key, value=value)
            return ack
        except (KafkaError, OSError, TimeoutError) as exc:
            # Not even queued (buffer full past the timeout, no metadata): it fails like
            # an unacknowledged record, and acknowledged() sends everything again.
            failed: Ack = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
