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

from lookalike_shared.contracts import VERSION_HEADER

from . import metrics
from .retry import Backoff

Ack = asyncio.Future[Any]
Headers = list[tuple[str, bytes]]


class FingerprintPublishes:
    def __init__(self, producer: AIOKafkaProducer, topic: str, backoff: Backoff) -> None:
        self.producer = producer
        self.topic = topic
        self.backoff = backoff
        self._records: list[tuple[bytes, bytes | None, Headers]] = []  # in the order sent
        self._acks: list[Ack] = []

    async def send(self, image_id: str, value: bytes | None, version: int | None = None) -> None:
        """Queue a fingerprint record (None: the tombstone of a deleted image), stamped with
        the version it stands for (none: a tombstone that only takes back a record)."""
        key = image_id.encode()
        headers = [] if version is None else [(VERSION_HEADER, str(version).encode())]
        self._records.append((key, value, headers))
        self._acks.append(await self._send(key, value, headers))

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
                self._acks = [await self._send(*record) for record in self._records]
            first_attempt = False
            for outcome in await asyncio.gather(*self._acks, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise KafkaError(f"fingerprint record not acknowledged: {outcome!r}")

        with metrics.STAGE_SECONDS.labels("publish").time():
            await self.backoff.retry_backend("publish", attempt, events=len(self._records))

    async def _send(self, key: bytes, value: bytes | None, headers: Headers) -> Ack:
        try:
            ack: Ack = await self.producer.send(
                self.topic, key=key, value=value, headers=headers or None
            )
            return ack
        except (KafkaError, OSError, TimeoutError) as exc:
            # Not even queued (buffer full past the timeout, no metadata): it fails like
            # an unacknowledged record, and acknowledged() sends everything again.
            failed: Ack = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed
