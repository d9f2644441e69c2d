"""Ingest's worker pool down is our own backend failing: the event waits for it, retried with
the backoff, and is applied once the pool is back, never dead-lettered. Only an image that
itself kills fresh workers twice is dead-lettered, rather than stall its partition."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from lookalike_ingest import handler as handler_module
from lookalike_ingest.handler import EventHandler
from lookalike_ingest.retry import Backoff, PermanentFailure
from lookalike_ingest.settings import IngestSettings
from lookalike_shared.contracts import CatalogueImage, FingerprintRecord
from lookalike_shared.events import ImageUpserted
from lookalike_shared.fetch import ImageFetcher
from lookalike_shared.pool import CallKillsWorkers, WorkerPool
from tests.fixtures.ingest import outcome_count
from tests.fixtures.services import wait_until


async def test_an_event_waits_for_a_pool_that_cannot_start_and_is_applied_once_it_can(
    sample_catalogue: tuple[Path, list[dict[str, Any]]],
) -> None:
    root, catalogue = sample_catalogue
    settings = IngestSettings(file_root=str(root))
    # No worker can start and warm within a microsecond, as with a stuck fork server.
    pool = WorkerPool(1, start_timeout_seconds=1e-6, heal_cap_seconds=0.2)
    fetcher = ImageFetcher(settings.fetch_policy(settings.max_image_bytes))
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


async def test_an_image_that_kills_fresh_workers_twice_is_dead_lettered_not_retried(
    sample_catalogue: tuple[Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, catalogue = sample_catalogue
    settings = IngestSettings(file_root=str(root))

    async def kills_its_workers(pool: WorkerPool, data: bytes, query: bool = False) -> None:
        # What the pool says when the same call took down two fresh workers (tested in
        # tests/unit/test_pool.py with a call that really kills them).
        raise CallKillsWorkers("the worker processes died running this call twice")

    monkeypatch.setattr(handler_module, "analyse_in_pool", kills_its_workers)
    fetcher = ImageFetcher(settings.fetch_policy(settings.max_image_bytes))
    handler = EventHandler(settings, fetcher, WorkerPool(1), Backoff(0.01, 0.1))
    event = ImageUpserted("ev-2", CatalogueImage.model_validate(catalogue[3]))
    try:
        with pytest.raises(PermanentFailure) as caught:
            await asyncio.wait_for(handler.prepare(event), 30)
    finally:
        await fetcher.close()
    assert caught.value.code == "image_kills_workers"
