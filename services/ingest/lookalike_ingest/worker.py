"""The consume loop: at-least-once, in order per image, concurrent across images.

A poll returns a batch; batch.py applies it (each key's records in order, different keys
concurrently). Offsets are committed only when every record of the batch is applied or
durably dead-lettered. Before partitions are revoked in a rebalance, the batch in progress
is finished and committed, so the next owner starts exactly after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError

from lookalike_shared import kafka

from . import metrics
from .batch import BatchApplier

log = logging.getLogger(__name__)


class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.finish_batch()
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)}
        )


class IngestWorker:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        batches: BatchApplier,
        batch_max_records: int,
        revoke_grace_seconds: float = 5.0,
        idle_rest_ms: int = 0,
    ) -> None:
        self.consumer = consumer
        self.poller = kafka.Poller(consumer, idle_rest_ms)
        self.batches = batches
        self.batch_max_records = batch_max_records
        self._batch_task: asyncio.Future[None] | None = None
        self.revoke_grace_seconds = revoke_grace_seconds
        self._stopping = asyncio.Event()
        self._pending: dict[TopicPartition, int] = {}  # applied but not yet committed
        self._commit_lock = asyncio.Lock()
        self._consumed: dict[TopicPartition, int] = {}
        self.processed = 0  # records applied or dead-lettered and committed, for tests/logs

    @property
    def rebalance_listener(self) -> ConsumerRebalanceListener:
        return _FinishBeforeRevoke(self)

    def stop(self) -> None:
        """Finish the batch in hand, commit it, then return from run()."""
        self._stopping.set()

    async def finish_batch(self) -> None:
        """Called before partitions are revoked: give the batch in hand `revoke_grace_seconds`
        to finish, else drop it (the grace stays under the session timeout so the rebalance
        is not held up), then commit what is done while we still own the partitions. What
        was not committed goes to the next owner; applying it twice changes nothing."""
        task = self._batch_task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.revoke_grace_seconds)
            if not done:
                task.cancel()
                log.warning("rebalance: dropped the unfinished batch; it will be redelivered")
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._commit_pending()

    async def run(self) -> None:
        while not self._stopping.is_set():
            poll = asyncio.ensure_future(self.poller.poll(1000, self.batch_max_records))
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not poll.done():
                poll.cancel()
                break
            batch = poll.result()
            if batch:
                self._batch_task = asyncio.ensure_future(self.batches.apply(batch))
                try:
                    await self._batch_task
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # we are being shut down, not just the batch dropped
                    continue
                finally:
                    self._batch_task = None
                for tp, records in batch.items():
                    self._pending[tp] = records[-1].offset + 1
                self.processed += sum(len(r) for r in batch.values())
                await self._commit_pending()
            self._update_lag(batch)
        await self._commit_pending()

    async def _commit_pending(self) -> None:
        async with self._commit_lock:
            if not self._pending:
                return
            offsets, self._pending = self._pending, {}
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The partitions moved to another worker before this commit: it will get
                # these records again. Applying them twice changes nothing (versions decide).
                log.warning("commit refused after a rebalance", extra={"error": str(exc)})

    def _update_lag(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        # From what the fetcher already knows: no broker round trip, nothing that could wait
        # on a rebalance in progress.
        for tp, records in batch.items():
            self._consumed[tp] = records[-1].offset + 1
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None and tp in self._consumed:
                metrics.LAG.labels(str(tp.partition)).set(max(0, highwater - self._consumed[tp]))
