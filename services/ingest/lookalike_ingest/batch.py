"""Apply one polled batch, sharing the round trips its events have in common:

    records --parse--> events                      (an invalid one is dead-lettered)
    one _mget: the indexed version of every image in the batch
    lanes, one per (partition, key), concurrently; each in offset order:
        stale? (version <= the indexed one, or <= the one this lane just wrote) --> skip
        fetch --> fingerprint (pool) --> fingerprint record handed to the producer
    wait until the broker acknowledged every fingerprint record
    one _bulk of the search writes, each image's in lane order: applied, stale (409),
        or refused (that event alone is dead-lettered)

`apply` returns when every record is applied or durably dead-lettered, and only then may
the worker commit the batch's offsets. Redelivering a batch leaves the same state: its
events are stale against the versions it wrote (a delete's version too: it is kept in a
deletion marker). As when events were applied one by one, a fingerprint record is durable
before its search document is written: Elasticsearch never holds a document the matchers
could miss for good.

An event is applied or dead-lettered, never both. Everything an event's own content can
make fail is found before its fingerprint record is sent (handler.py validates the
document against the mapping). Should Elasticsearch refuse a document all the same, the
record already sent is taken back with a tombstone when the image had no earlier version,
so the matchers do not hold an image the search index does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from lookalike_shared.events import CatalogueEvent, InvalidEvent, parse_catalogue_record

from . import metrics
from .dead_letters import DeadLetters
from .handler import EventHandler
from .publisher import FingerprintPublishes
from .retry import Backoff, PermanentFailure
from .search_writes import NOT_INDEXED, SearchWrite, SearchWrites, WriteResult

log = logging.getLogger(__name__)

Batch: TypeAlias = dict[TopicPartition, list[ConsumerRecord]]
Parsed: TypeAlias = CatalogueEvent | InvalidEvent | None  # None: a tombstone, skipped


@dataclass(frozen=True)
class _Written:
    """An event whose fingerprint record is sent and whose search write is to be made."""

    record: ConsumerRecord
    write: SearchWrite
    started: float


class _EventClock:
    """The in-flight gauge and event duration: an event counts from when its lane takes it
    until its outcome is known, which for most events is when the batch's bulk answers."""

    def __init__(self) -> None:
        self.open = 0

    def start(self) -> float:
        metrics.IN_FLIGHT.inc()
        self.open += 1
        return time.perf_counter()

    def stop(self, started: float) -> None:
        metrics.IN_FLIGHT.dec()
        self.open -= 1
        metrics.EVENT_SECONDS.observe(time.perf_counter() - started)

    def drop_open(self) -> None:
        """The batch was dropped (a rebalance): its events are no longer in flight here."""
        metrics.IN_FLIGHT.dec(self.open)
        self.open = 0


class BatchApplier:
    def __init__(
        self,
        handler: EventHandler,
        search: SearchWrites,
        producer: AIOKafkaProducer,
        fingerprint_topic: str,
        dead_letters: DeadLetters,
        backoff: Backoff,
        max_in_flight: int,
    ) -> None:
        self.handler = handler
        self.search = search
        self.producer = producer
        self.fingerprint_topic = fingerprint_topic
        self.dead_letters = dead_letters
        self.backoff = backoff
        self._slots = asyncio.Semaphore(max_in_flight)

    async def apply(self, batch: Batch) -> None:
        lanes = [[(r, _parse(r)) for r in records] for records in _lanes(batch)]
        indexed = await self.search.indexed_versions(
            event.image_id
            for lane in lanes
            for _, event in lane
            if event is not None and not isinstance(event, InvalidEvent)
        )
        publishes = FingerprintPublishes(self.producer, self.fingerprint_topic, self.backoff)
        clock = _EventClock()
        try:
            prepared = await asyncio.gather(
                *(self._prepare_lane(lane, indexed, publishes, clock) for lane in lanes)
            )
            written = [event for lane in prepared for event in lane]  # each lane in order
            await publishes.acknowledged()
            results = await self._write([event.write for event in written])
            await self._take_back_refused(written, results, indexed)
            for event, result in zip(written, results, strict=True):
                if isinstance(result, PermanentFailure):
                    await self.dead_letters.send(event.record, result.code, str(result))
                else:
                    outcome: str = result  # stale: a newer version landed meanwhile
                    if result == "applied":
                        outcome = "deleted" if event.write.is_delete else "indexed"
                    metrics.EVENTS.labels(outcome).inc()
                    log.debug(
                        "applied", extra={"image_id": event.write.image_id, "outcome": outcome}
                    )
                clock.stop(event.started)
        finally:
            clock.drop_open()

    async def _take_back_refused(
        self,
        written: list[_Written],
        results: list[WriteResult],
        indexed: dict[str, int | PermanentFailure],
    ) -> None:
        """Tombstone the fingerprint records of refused upserts of images that had no earlier
        version here and no other write of this batch applied (see the module docstring)."""
        applied = {
            e.write.image_id for e, r in zip(written, results, strict=True) if r == "applied"
        }
        refused = {
            e.write.image_id
            for e, r in zip(written, results, strict=True)
            if isinstance(r, PermanentFailure) and not e.write.is_delete
        }
        orphans = sorted(
            image_id
            for image_id in refused - applied
            if indexed.get(image_id, NOT_INDEXED) == NOT_INDEXED
        )
        if not orphans:
            return
        take_back = FingerprintPublishes(self.producer, self.fingerprint_topic, self.backoff)
        for image_id in orphans:
            await take_back.send(image_id, None)
        await take_back.acknowledged()
        log.warning("took back fingerprint records of refused documents", extra={"ids": orphans})

    async def _write(self, writes: list[SearchWrite]) -> list[WriteResult]:
        if not writes:
            return []  # every event stale, skipped or dead-lettered: nothing to time
        with metrics.STAGE_SECONDS.labels("elasticsearch").time():
            return await self.search.write(writes)

    async def _prepare_lane(
        self,
        lane: list[tuple[ConsumerRecord, Parsed]],
        indexed: dict[str, int | PermanentFailure],
        publishes: FingerprintPublishes,
        clock: _EventClock,
    ) -> list[_Written]:
        """Take a lane's events in order up to their search writes, which are returned."""
        written: list[_Written] = []
        taken: dict[str, int] = {}  # image id -> version this lane is writing
        async with self._slots:
            for record, event in lane:
                started = clock.start()
                if event is None:
                    metrics.EVENTS.labels("skipped").inc()
                elif isinstance(event, InvalidEvent):
                    await self.dead_letters.send(record, event.code, str(event))
                elif isinstance(
                    known := indexed.get(event.image_id, NOT_INDEXED), PermanentFailure
                ):
                    await self.dead_letters.send(record, known.code, str(known))
                elif event.version <= taken.get(event.image_id, known):
                    metrics.EVENTS.labels("stale").inc()
                else:
                    try:
                        prepared = await self.handler.prepare(event)
                    except PermanentFailure as exc:
                        await self.dead_letters.send(record, exc.code, str(exc))
                    except Exception as exc:
                        # Our code failed on this event's content: a bug to fix, but one
                        # event must not stop its partition for good (nothing was written).
                        log.exception("event could not be prepared", extra={"id": event.image_id})
                        await self.dead_letters.send(
                            record, "unprocessable_event", f"{type(exc).__name__}: {exc}"
                        )
                    else:
                        await publishes.send(event.image_id, prepared.record_value, event.version)
                        taken[event.image_id] = event.version
                        written.append(_Written(record, prepared.write, started))
                        continue  # in flight until the bulk answers
                clock.stop(started)
        return written


def _parse(record: ConsumerRecord) -> Parsed:
    try:
        return parse_catalogue_record(record.key, record.value, record.headers)
    except InvalidEvent as exc:
        return exc
    except Exception as exc:  # a record our parser chokes on is as unusable as an invalid one
        log.exception("event could not be parsed", extra={"offset": record.offset})
        return InvalidEvent(f"the event could not be read ({type(exc).__name__})")


def _lanes(batch: Batch) -> list[list[ConsumerRecord]]:
    """Records grouped by partition and key (the image id), each group in offset order."""
    by_key: dict[tuple[int, bytes], list[ConsumerRecord]] = defaultdict(list)
    for tp, records in batch.items():
        for record in records:
            # Records without a key cannot be ordered against anything; each gets its own lane.
            lane = record.key if record.key is not None else f"@{record.offset}".encode()
            by_key[(tp.partition, lane)].append(record)
    return list(by_key.values())
