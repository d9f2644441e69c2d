"""What the batch's shared writes do when part of them fails, with scripted backends (a real
server will not fail one bulk item or one record on demand): nothing is lost, nothing is
reordered, and only a write that can never succeed is given up, alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import BadRequestError

from lookalike_ingest.publisher import FingerprintPublishes
from lookalike_ingest.retry import Backoff, PermanentFailure
from lookalike_ingest.search_writes import SearchWrite, SearchWrites
from tests.fixtures.ingest import outcome_count

NO_WAIT = Backoff(0.0, 0.0)
Answer = list[int] | Exception


class ScriptedElasticsearch:
    """Answers each _bulk with the next scripted item statuses, or raises the next error;
    keeps (action, id, version) of every write it was sent, per request (a deletion marker
    written counts as a delete)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[list[tuple[str, str, int]]] = []

    async def bulk(self, index: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        writes = []
        for operation, document in zip(operations[::2], operations[1::2], strict=True):
            meta = operation["index"]
            action = "delete" if document.get("deleted") else "index"
            writes.append((action, meta["_id"], meta["version"]))
        self.requests.append(writes)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        items = []
        for (_, image_id, _), status in zip(writes, answer, strict=True):
            item: dict[str, Any] = {"_id": image_id, "status": status}
            if status >= 400 and status != 404:
                item["error"] = {"type": "scripted_exception", "reason": f"status {status}"}
            items.append({"index": item})
        return {"errors": True, "items": items}


def bad_request() -> BadRequestError:
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
    return BadRequestError("request body too odd", meta, {"error": "scripted"})


def index(image_id: str, version: int) -> SearchWrite:
    return SearchWrite(image_id, version, {"image_id": image_id, "version": version})


def delete(image_id: str, version: int) -> SearchWrite:
    return SearchWrite(image_id, version, None)


async def test_bulk_items_refused_for_now_go_again_in_order_per_image() -> None:
    es = ScriptedElasticsearch(
        [503, 201, 200, 429],  # a v1 overloaded, so a v2 must go again after it; c v1 too
        [409, 201, 201],
    )
    retried = outcome_count("retried")
    writes = [index("a", 1), index("b", 1), delete("a", 2), index("c", 1)]

    results = await SearchWrites(es, "alias", NO_WAIT).write(writes)  # type: ignore[arg-type]

    assert es.requests == [
        [("index", "a", 1), ("index", "b", 1), ("delete", "a", 2), ("index", "c", 1)],
        [("index", "a", 1), ("delete", "a", 2), ("index", "c", 1)],
    ]
    # a v1 is stale once its delete landed; the delete keeps the result it had first.
    assert results == ["stale", "applied", "applied", "applied"]
    assert outcome_count("retried") - retried == 3


async def test_a_bulk_refused_whole_goes_write_by_write_so_only_the_bad_one_fails() -> None:
    es = ScriptedElasticsearch(bad_request(), [201], [400], [200])
    writes = [index("a", 1), index("b", 1), delete("c", 3)]

    results = await SearchWrites(es, "alias", NO_WAIT).write(writes)  # type: ignore[arg-type]

    assert es.requests == [
        [("index", "a", 1), ("index", "b", 1), ("delete", "c", 3)],
        [("index", "a", 1)],
        [("index", "b", 1)],
        [("delete", "c", 3)],
    ]
    assert results[0] == "applied" and results[2] == "applied"
    assert isinstance(results[1], PermanentFailure)
    assert results[1].code == "elasticsearch_rejected"


class RefusingLookups:
    """_mget refused (400) for more than one id; alone, `refused` is refused and any other
    id is found at version 3."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.requests: list[list[str]] = []

    async def mget(self, index: str, ids: list[str], source: bool) -> dict[str, Any]:
        self.requests.append(ids)
        if len(ids) > 1 or ids == [self.refused]:
            raise bad_request()
        return {"docs": [{"_id": ids[0], "_version": 3, "found": True}]}


async def test_a_version_lookup_refused_whole_is_asked_image_by_image() -> None:
    es = RefusingLookups(refused="b")

    lookups = SearchWrites(es, "alias", NO_WAIT)  # type: ignore[arg-type]
    versions = await lookups.indexed_versions(["c", "a", "b"])

    assert es.requests == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert versions["a"] == 3 and versions["c"] == 3
    assert isinstance(versions["b"], PermanentFailure)  # b's events alone are dead-lettered


class FlakyProducer:
    """Acknowledges every record, except that the `fail_at`-th send fails once: its future
    fails, or, with `refuse=True`, the send itself raises (the record is not even queued)."""

    def __init__(self, fail_at: int, refuse: bool) -> None:
        self.fail_at = fail_at
        self.refuse = refuse
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(
        self, topic: str, key: bytes, value: bytes | None, headers: Any = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self.sent) != self.fail_at:
            ack.set_result(None)
        elif self.refuse:
            raise KafkaTimeoutError()
        else:
            ack.set_exception(KafkaTimeoutError())
        return ack


@pytest.mark.parametrize("refuse", [False, True], ids=["not-acknowledged", "not-queued"])
async def test_fingerprint_records_all_go_again_in_order_when_one_is_lost(refuse: bool) -> None:
    producer = FlakyProducer(fail_at=1, refuse=refuse)
    publishes = FingerprintPublishes(producer, "fingerprints", NO_WAIT)  # type: ignore[arg-type]
    await publishes.send("a", b"a v1")  # lost the first time
    await publishes.send("a", b"a v2")
    await publishes.send("b", None)

    await publishes.acknowledged()

    once = [(b"a", b"a v1"), (b"a", b"a v2"), (b"b", None)]
    # Resending only a v1 would put it after a v2, and compaction keeps the last record.
    assert producer.sent == [("fingerprints", key, value) for key, value in once + once]
