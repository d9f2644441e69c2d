"""Wires the ingest worker: clients, process pool, health server, signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from elasticsearch import AsyncElasticsearch

from lookalike_shared.analysis import load_models
from lookalike_shared.fetch import ImageFetcher
from lookalike_shared.http import add_health_routes, json_errors, secure_headers, start_site
from lookalike_shared.kafka import ensure_topics, make_producer, wait_for_kafka
from lookalike_shared.pool import WorkerPool
from lookalike_shared.profile import (
    CatalogueProfile,
    add_enrichment_mapping,
    check_profile,
    load_profile,
)
from lookalike_shared.search_index import ensure_index, wait_for_elasticsearch

from .batch import BatchApplier
from .dead_letters import DeadLetters
from .handler import EventHandler
from .retry import Backoff
from .search_writes import SearchWrites
from .settings import IngestSettings
from .worker import IngestWorker

log = logging.getLogger(__name__)


def make_ingest_producer(settings: IngestSettings) -> AIOKafkaProducer:
    # Fingerprint records are 10-20 KB: with the default 16 KB batches nearly every record
    # would be a produce request of its own. 256 KB stays well under the 1 MB request and
    # broker message limits.
    return make_producer(settings, max_batch_size=256 * 1024)


def make_batch_applier(
    settings: IngestSettings,
    es: AsyncElasticsearch,
    producer: AIOKafkaProducer,
    fetcher: ImageFetcher,
    pool: WorkerPool,
    profile: CatalogueProfile | None = None,
) -> BatchApplier:
    backoff = Backoff(settings.backoff_base_seconds, settings.backoff_cap_seconds)
    return BatchApplier(
        EventHandler(settings, fetcher, pool, backoff, profile),
        SearchWrites(es, settings.es_alias, backoff, profile),
        producer,
        settings.fingerprint_topic,
        DeadLetters(producer, settings.dlq_topic, backoff),
        backoff,
        settings.max_in_flight,
    )


async def prepare_index(
    es: AsyncElasticsearch, settings: IngestSettings
) -> CatalogueProfile | None:
    """lookalike's own index, created if need be; or, with a catalogue profile, the
    library's index checked against it (ProfileError before anything is written) and
    lookalike's fields added to its mapping."""
    if settings.catalogue_profile is None:
        await ensure_index(es, settings.es_alias)
        return None
    profile = load_profile(settings.catalogue_profile)
    await check_profile(es, profile)
    await add_enrichment_mapping(es, profile)
    return profile


async def run_ingest(settings: IngestSettings, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or the task is cancelled): drain, commit, return."""
    state = {"reason": "STARTING"}
    pool = WorkerPool(settings.pool_workers or None, warm_up=load_models)
    app = web.Application(middlewares=[json_errors])
    secure_headers(app)
    add_health_routes(app, lambda: state["reason"] or pool.not_ready_reason)
    async with AsyncExitStack() as stack:
        runner = await start_site(app, settings.bind_host, settings.ingest_port)
        stack.push_async_callback(runner.cleanup)

        stack.push_async_callback(pool.close)
        await pool.start()  # one that cannot start: /readyz says POOL-BROKEN, events wait

        state["reason"] = "BACKENDS-UNREACHABLE"
        es = AsyncElasticsearch(settings.es_url, request_timeout=30)
        stack.push_async_callback(es.close)
        await wait_for_elasticsearch(es, timeout=120)
        await wait_for_kafka(settings.kafka_bootstrap, timeout=120)
        await ensure_topics(settings)
        profile = await prepare_index(es, settings)

        producer = make_ingest_producer(settings)
        await producer.start()
        stack.push_async_callback(producer.stop)
        fetcher = ImageFetcher(settings.fetch_policy(settings.max_image_bytes))
        stack.push_async_callback(fetcher.close)

        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=600_000,
        )
        batches = make_batch_applier(settings, es, producer, fetcher, pool, profile)
        worker = IngestWorker(
            consumer, batches, settings.batch_max_records, idle_rest_ms=settings.kafka_idle_rest_ms
        )
        consumer.subscribe([settings.catalogue_topic], listener=worker.rebalance_listener)
        await consumer.start()
        stack.push_async_callback(consumer.stop)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, worker.stop)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread (tests run the worker in-process)
        state["reason"] = ""
        if ready is not None:
            ready.set()
        log.info("ingest worker running", extra={"topic": settings.catalogue_topic})
        try:
            await worker.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("ingest worker stopped", extra={"processed": worker.processed})
