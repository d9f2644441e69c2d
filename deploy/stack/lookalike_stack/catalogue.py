"""Create topics and index, and publish catalogue events (the sample, or any list)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from elasticsearch import AsyncElasticsearch

from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import DELETED, UPSERTED
from lookalike_shared.events import CLOUDEVENT_HEADERS, cloudevent_json
from lookalike_shared.kafka import ensure_topics, make_producer, wait_for_kafka
from lookalike_shared.search_index import ensure_index, wait_for_elasticsearch


async def set_up(
    settings: CommonSettings, partitions: int = 6, replication_factor: int = 1, timeout: float = 120
) -> None:
    await wait_for_kafka(settings.kafka_bootstrap, timeout)
    await ensure_topics(settings, partitions, replication_factor)
    async with AsyncElasticsearch(settings.es_url) as es:
        await wait_for_elasticsearch(es, timeout)
        await ensure_index(es, settings.es_alias)


async def publish(
    settings: CommonSettings,
    upserts: Iterable[dict[str, Any]] = (),
    deletes: Iterable[dict[str, Any]] = (),
) -> int:
    """Publish CloudEvents (structured mode) keyed by image id; returns how many."""
    producer = make_producer(settings)
    await producer.start()
    sent = 0
    try:
        pending = []
        for event_type, items in ((UPSERTED, upserts), (DELETED, deletes)):
            for data in items:
                value = cloudevent_json(event_type, data, str(uuid.uuid4()), "/lookalike/sample")
                pending.append(
                    await producer.send(
                        settings.catalogue_topic,
                        key=data["image_id"].encode(),
                        value=value,
                        headers=CLOUDEVENT_HEADERS,
                    )
                )
                sent += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
