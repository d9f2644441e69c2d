"""Ingest's worker pool down is our own backend failing: the event waits for it, retried with
the backoff, and is applied once the pool is back, never dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from lookalike_ingest.handler import EventHandler
from lookalike_ingest.retry import Backoff
from lookalike_ingest.settings import IngestSettings
from lookalike_shared.contracts import CatalogueImage, FingerprintRecord
from lookalike_shared.events import ImageUpserted
from lookalike_shared.fetch import ImageFetcher, policy_from
from lookalike_shared.pool import WorkerPool
from tests.fixtures.ingest import outcome_count
from tests.fixtures.services import wait_until


async def test_an_event_waits_for_a_pool_that_cannot_start_and_is_applied_once_it_can(
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, catalogue = sample_catalogue
    settings = IngestSettings(file_root=str(root))
    # No worker can start and warm within a microsecond, as with a stuck fork server.
    pool = WorkerPool(1, start_timeout_seconds=1e-6, heal_cap_seconds=0.2)
    fetcher = ImageFetcher(policy_from(settings))
    handler = EventHandler(settings, fetcher, pool, Backoff(0.01, 0.1))
    event = ImageUpserted("ev-1", CatalogueImage.model_validate(catalogue[2]))
    retried = outcome_count("retried")
    await pool.start()
    preparing = asyncio.create_task(handler.prepare(event))
    try:

        async def retrying() -> bool:
            return outcome_count("retried") >= retried + 3

        await wait_until(retrying, 30, "the event to be retried")
        assert not preparing.done()  # neither applied nor dead-lettered: it waits

        pool.start_timeout_seconds = 120  # the pool can start again
        prepared = await asyncio.wait_for(preparing, 60)
    finally:
        preparing.cancel()
        with contextlib.suppress(BaseException):
            await preparing
        await pool.close()
        await fetcher.close()

    assert prepared.record_value is not None
    record = FingerprintRecord.model_validate_json(prepared.record_value)
    assert record.image_id == catalogue[2]["image_id"]
