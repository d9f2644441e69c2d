"""A matcher no record can stop: what it cannot apply is skipped and counted, deletes are
remembered against late upserts, and a replay that dies anyway is said and not hidden."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from lookalike_matcher.app import REPLAY, init_app
from lookalike_matcher.index import FingerprintIndex
from lookalike_matcher.settings import MatcherSettings
from lookalike_matcher.snapshot import export_state, restore_state
from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import VERSION_HEADER, Fingerprint, FingerprintRecord
from lookalike_shared.kafka import make_producer
from lookalike_shared.service import FAILURE
from lookalike_stack.processes import free_port
from tests.fixtures.matcher import make_topics, publish_fingerprints, running_matcher
from tests.fixtures.services import start_app, wait_until


def record_json(image_id: str, version: int, fingerprint: Fingerprint) -> dict[str, object]:
    record = FingerprintRecord(
        image_id=image_id, version=1, fingerprint=fingerprint, indexed_at=datetime.now(UTC)
    )
    body: dict[str, object] = json.loads(record.model_dump_json())
    body["version"] = version  # as a buggy or hostile writer might put it
    return body


async def publish_raw(settings: CommonSettings, records: list[tuple[str, bytes | None]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.fingerprint_topic, key=key.encode(), value=value)
    finally:
        await producer.stop()


async def skipped_total(http: object, url: str) -> float:
    async with http.get(f"{url}/metrics") as resp:  # type: ignore[attr-defined]
        text = await resp.text()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("lookalike_matcher_records_skipped_total{")
    )


async def test_records_it_cannot_apply_are_skipped_and_those_after_them_applied(
    lookalike_settings: CommonSettings, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    good = sample_fingerprints["img-00003"]
    garbled = record_json("garbled", 1, good)
    garbled["fingerprint"]["keypoints"] = "QUFBQUFB"  # type: ignore[index]
    await publish_raw(
        lookalike_settings,
        [
            ("not-json", b"{this is not a record"),
            ("huge-version", json.dumps(record_json("huge-version", 2**70, good)).encode()),
            ("garbled", json.dumps(garbled).encode()),
        ],
    )
    await publish_fingerprints(lookalike_settings, {"fine": good})

    async with running_matcher(lookalike_settings) as (url, replay, http):
        assert replay.readiness.reason("replay") is None
        async with http.get(f"{url}/v1/stats") as resp:
            assert (await resp.json())["images"] == 1
        for image_id, status in (("fine", 200), ("huge-version", 404), ("garbled", 404)):
            async with http.get(f"{url}/v1/images/{image_id}") as resp:
                assert resp.status == status, image_id
        skipped = await skipped_total(http, url)
        assert skipped >= 3  # the metric is this process's: other tests may add to it

        # ...and it keeps following the topic after them.
        await publish_raw(lookalike_settings, [("later-bad", b"\x00\x01")])
        await publish_fingerprints(lookalike_settings, {"later": good})

        async def later_applied() -> bool:
            return replay.index.get("later") is not None

        await wait_until(later_applied, 30, "the record after a bad one")
        assert await skipped_total(http, url) >= skipped + 1


def test_a_deleted_version_refuses_older_upserts_until_forgotten(
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    fingerprint = sample_fingerprints["img-00005"]
    index = FingerprintIndex()
    assert index.upsert("gone", 5, fingerprint)
    index.delete("gone", version=6, at=1000.0)

    assert not index.upsert("gone", 3, fingerprint)  # late, from before the delete
    assert not index.upsert("gone", 6, fingerprint)
    assert index.get("gone") is None

    arrays, windows = export_state(index.state)  # a snapshot remembers deletes too
    restored = FingerprintIndex(restore_state(arrays, windows, index.keypoints, index.postings))
    assert not restored.upsert("gone", 4, fingerprint)

    assert restored.forget_deletions(before=2000.0) == 1
    assert restored.upsert("gone", 4, fingerprint)  # past the retention: accepted again
    assert index.upsert("gone", 7, fingerprint)  # newer than the delete: back for real


async def test_a_tombstone_with_its_version_is_remembered_by_the_replay(
    lookalike_settings: CommonSettings, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    fingerprint = sample_fingerprints["img-00007"]
    await publish_fingerprints(lookalike_settings, {"late": fingerprint}, version=5)
    producer = make_producer(lookalike_settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            lookalike_settings.fingerprint_topic,
            key=b"late",
            value=None,
            headers=[(VERSION_HEADER, b"6")],
        )
    finally:
        await producer.stop()
    await publish_fingerprints(lookalike_settings, {"late": fingerprint}, version=3)
    await publish_fingerprints(lookalike_settings, {"marker": fingerprint}, version=1)

    async with running_matcher(lookalike_settings) as (_, replay, _http):

        async def all_applied() -> bool:
            return replay.index.get("marker") is not None

        await wait_until(all_applied, 30, "every record")
        assert replay.index.get("late") is None


async def test_a_replay_that_dies_says_so_in_readyz(lookalike_settings: CommonSettings) -> None:
    await make_topics(lookalike_settings, partitions=1)
    port = free_port()
    settings = MatcherSettings(
        **{**lookalike_settings.model_dump(), "matcher_port": port, "matcher_partitions": [7]}
    )
    app = init_app(settings)
    runner = await start_app(app, port)
    try:
        reason = await asyncio.wait_for(app[FAILURE].wait(), 30)
        assert reason.startswith("the replay failed") and "partitions [7]" in reason
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as resp,
        ):
            assert resp.status == 503
            assert (await resp.json())["reason"] == "REPLAY-FAILED"
        assert app[REPLAY].failed and "partitions [7]" in app[REPLAY].failed
    finally:
        await runner.cleanup()


async def test_the_matcher_process_exits_non_zero_when_its_replay_dies(
    lookalike_settings: CommonSettings,
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    env = {
        **os.environ,
        "LOOKALIKE_KAFKA_BOOTSTRAP": lookalike_settings.kafka_bootstrap,
        "LOOKALIKE_FINGERPRINT_TOPIC": lookalike_settings.fingerprint_topic,
        "LOOKALIKE_MATCHER_PARTITIONS": "7",
        "LOOKALIKE_BIND_HOST": "127.0.0.1",
        "LOOKALIKE_MATCHER_PORT": "0",
        "LOOKALIKE_POOL_WORKERS": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lookalike_matcher",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode not in (0, None)
    assert b"the replay failed" in stderr


class PausingIndex(FingerprintIndex):
    """An index whose upserts wait to be let through: a batch caught half-way in its thread."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def upsert(self, image_id: str, version: int, fingerprint: Fingerprint) -> bool:
        self.entered.set()
        if not self.release.wait(30):
            raise AssertionError("never let through")
        return super().upsert(image_id, version, fingerprint)


async def test_shutdown_snapshot_waits_for_the_batch_being_applied(
    lookalike_settings: CommonSettings,
    sample_fingerprints: dict[str, Fingerprint],
    tmp_path: Path,
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    await publish_fingerprints(lookalike_settings, {"img-00003": sample_fingerprints["img-00003"]})
    index = PausingIndex()
    port = free_port()
    settings = MatcherSettings(
        **{**lookalike_settings.model_dump(), "bind_host": "127.0.0.1", "matcher_port": port},
        matcher_data_dir=str(tmp_path),
    )
    runner = await start_app(init_app(settings, index=index), port)
    assert await asyncio.to_thread(index.entered.wait, 30), "the replay never reached the index"

    # Shut down while the batch is half-applied, and let it finish a while later: long after
    # a shutdown that did not wait for it would have written its snapshot.
    threading.Timer(1.0, index.release.set).start()
    await runner.cleanup()

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["offsets"] == {"0": 1}
    assert manifest["images"] == 1  # the record its offset covers is in it
