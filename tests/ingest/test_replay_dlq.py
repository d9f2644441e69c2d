from __future__ import annotations

from pathlib import Path
from typing import Any

from lookalike_ingest.replay_dlq import replay
from lookalike_stack.catalogue import publish
from tests.fixtures.ingest import es_ids, read_topic
from tests.fixtures.services import Pipeline, wait_until


async def test_dead_lettered_event_is_indexed_once_its_cause_is_fixed(
    pipeline: Pipeline, sample_catalogue: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    root, catalogue = sample_catalogue
    settings = pipeline.settings
    late = root / "arrives-late.png"
    late.unlink(missing_ok=True)
    event = {**catalogue[3], "image_id": "late-1", "image_url": late.as_uri()}
    await publish(settings, [event])

    async def dead_lettered() -> bool:
        return len(await read_topic(settings.kafka_bootstrap, settings.dlq_topic)) == 1

    await wait_until(dead_lettered, what="the event with a missing file in the DLQ")

    late.write_bytes(next(root.glob("img-00004.*")).read_bytes())  # the file is restored
    assert await replay(settings, {"url_forbidden"}) == {}  # other reasons are left alone
    sent = len(await read_topic(settings.kafka_bootstrap, settings.catalogue_topic))
    assert await replay(settings, {"fetch_not_found"}, dry_run=True) == {"fetch_not_found": 1}
    assert len(await read_topic(settings.kafka_bootstrap, settings.catalogue_topic)) == sent
    assert await replay(settings, {"fetch_not_found"}) == {"fetch_not_found": 1}

    async def indexed() -> bool:
        return "late-1" in es_ids(settings)

    await wait_until(indexed, what="the replayed event to be indexed")
    replayed = [r for r in await read_topic(settings.kafka_bootstrap, settings.catalogue_topic)][-1]
    reasons = ("lookalike.error.", "__connect.errors.")
    assert not [k for k, _ in replayed.headers if k.startswith(reasons)]
