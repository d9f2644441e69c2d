"""The matcher service on the real (embedded) broker: snapshot and replay, shards, API."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from lookalike_gateway.matcher_client import MatcherClient
from lookalike_matcher.app import init_app
from lookalike_matcher.settings import MatcherSettings
from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import Fingerprint, MatcherSearchRequest
from tests.fixtures.images import jpeg_bytes, resized_copy, sample_path
from tests.fixtures.matcher import (
    SAMPLE_IDS,
    make_topics,
    publish_fingerprints,
    running_matcher,
)
from tests.fixtures.services import wait_until


async def search(
    http: aiohttp.ClientSession, url: str, fingerprint: Fingerprint
) -> list[dict[str, Any]]:
    body = MatcherSearchRequest(fingerprint=fingerprint, limit=50).model_dump_json()
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{url}/v1/search", data=body, headers=headers) as resp:
        assert resp.status == 200
        return list((await resp.json())["matches"])


async def test_restart_loads_the_snapshot_and_replays_only_the_tail(
    lookalike_settings: CommonSettings,
    sample_fingerprints: dict[str, Fingerprint],
    tmp_path: Path,
) -> None:
    await make_topics(lookalike_settings, partitions=2)
    first, tail = SAMPLE_IDS[:20], SAMPLE_IDS[20:]
    await publish_fingerprints(lookalike_settings, {i: sample_fingerprints[i] for i in first})
    data_dir = str(tmp_path / "matcher")
    query = sample_fingerprints["img-00003"]
    async with running_matcher(lookalike_settings, matcher_data_dir=data_dir) as (
        url,
        replay,
        http,
    ):
        assert replay.applied == 20 and replay.loaded_from_snapshot == 0
        before = await search(http, url, query)
    # stopped: the snapshot was written on shutdown. More changes arrive meanwhile.
    assert (tmp_path / "matcher" / "manifest.json").exists()
    changes: dict[str, Fingerprint | None] = {i: sample_fingerprints[i] for i in tail}
    changes["img-00001"] = None  # a delete in the tail
    await publish_fingerprints(lookalike_settings, changes)

    async with running_matcher(lookalike_settings, matcher_data_dir=data_dir) as (
        url,
        replay,
        http,
    ):
        assert replay.loaded_from_snapshot == 20
        assert replay.applied == len(changes)  # only the tail was replayed
        async with http.get(f"{url}/v1/stats") as resp:
            stats = await resp.json()
        assert stats["images"] == 26 and stats["ready"] and stats["from_snapshot"] == 20
        after = await search(http, url, query)
        assert [m["image_id"] for m in after] == [m["image_id"] for m in before]
        assert after[0]["score"] == before[0]["score"]
        gone = await search(http, url, sample_fingerprints["img-00001"])
        assert "img-00001" not in [m["image_id"] for m in gone]
        tail_hit = await search(http, url, sample_fingerprints["img-00027"])
        assert tail_hit[0]["image_id"] == "img-00027"


async def test_two_shards_merged_answer_equals_one_matcher(
    lookalike_settings: CommonSettings,
    sample_fingerprints: dict[str, Fingerprint],
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=2)
    # Spread the images over both partitions (by a stable hash of the id).
    await publish_fingerprints(
        lookalike_settings,
        dict(sample_fingerprints.items()),
        partition=lambda image_id: zlib.crc32(image_id.encode()) % 2,
    )
    from lookalike_shared.fingerprint import fingerprint_bytes

    queries = [fingerprint_bytes(resized_copy(sample_path(root, i), 0.5)) for i in SAMPLE_IDS[::3]]
    async with (
        running_matcher(lookalike_settings) as (whole_url, whole, http),
        running_matcher(lookalike_settings, matcher_partitions=[0]) as (shard0, replay0, _),
        running_matcher(lookalike_settings, matcher_partitions=[1]) as (shard1, replay1, _),
    ):
        assert replay0.partitions == [0] and replay1.partitions == [1]
        sizes = [len(replay0.index), len(replay1.index)]
        assert sum(sizes) == len(whole.index) == 27 and min(sizes) > 0
        client = MatcherClient(http, [shard0, shard1], timeout=10)
        single = MatcherClient(http, [whole_url], timeout=10)
        for query in queries:
            merged, warnings = await client.search(query, 20)
            alone, _ = await single.search(query, 20)
            assert warnings == []
            assert [m.model_dump() for m in merged] == [m.model_dump() for m in alone]


async def test_every_served_route_is_in_the_openapi_document_and_back(
    lookalike_settings: CommonSettings,
) -> None:
    app = init_app(MatcherSettings(**lookalike_settings.model_dump()))
    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource else ""
        served.add((route.method.lower(), path))
    async with running_matcher(lookalike_settings, ready=False) as (url, _, http):
        async with http.get(f"{url}/openapi.json") as resp:
            document = await resp.json()
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert served == documented


async def test_bad_requests_get_a_clear_4xx(
    lookalike_settings: CommonSettings, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    async with running_matcher(lookalike_settings, max_request_bytes=200_000) as (url, _, http):
        cases: list[tuple[dict[str, Any], int, str]] = [
            (
                {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
                400,
                "invalid_request",
            ),
            ({"json": {"fingerprint": {"phash": "zz"}}}, 400, "invalid_request"),
            (
                {"data": b"hello", "headers": {"Content-Type": "text/plain"}},
                415,
                "unsupported_media_type",
            ),
        ]
        for kwargs, status, code in cases:
            async with http.post(f"{url}/v1/search", **kwargs) as resp:
                assert resp.status == status
                assert (await resp.json())["error"]["code"] == code
        form = aiohttp.FormData()
        form.add_field("image", b"GIF89a-not-really", filename="x.gif")
        async with http.post(f"{url}/v1/search", data=form) as resp:
            assert resp.status == 422
        big = aiohttp.FormData()
        too_big = io.BytesIO(sample_path(root, "img-00006").read_bytes() * 2)
        big.add_field("image", too_big, filename="b.jpg")
        async with http.post(f"{url}/v1/search", data=big) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "request_too_large"
        upload = aiohttp.FormData()
        upload.add_field("image", jpeg_bytes_of(root), filename="q.jpg")
        async with http.post(f"{url}/v1/search", data=upload) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert (answer["matches"], answer["images"]) == ([], 0)  # an empty index: no match
        async with http.get(f"{url}/v1/images/no-such-image") as resp:
            assert resp.status == 404


def jpeg_bytes_of(root: Path) -> bytes:
    from PIL import Image

    with Image.open(sample_path(root, "img-00003")) as img:
        return jpeg_bytes(img.convert("RGB").resize((200, 133)))


async def test_readyz_says_why_until_the_topic_exists(lookalike_settings: CommonSettings) -> None:
    async with running_matcher(lookalike_settings, ready=False) as (url, replay, http):

        async def reason_is_topic_missing() -> bool:
            return replay.readiness.reason("replay") == "TOPIC-MISSING"

        await wait_until(reason_is_topic_missing, 30, "TOPIC-MISSING")
        async with http.get(f"{url}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["reason"] == "TOPIC-MISSING"
        await make_topics(lookalike_settings, partitions=1)

        async def ready() -> bool:
            async with http.get(f"{url}/readyz") as resp:
                return resp.status == 200

        await wait_until(ready, 30, "ready once the topic exists")


# --- whatever a caller sends: a 4xx in the JSON error shape, and the matcher keeps serving --


def _packed(width: int, height: int, keypoints: int, extra: bytes = b"") -> str:
    header = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return base64.b64encode(header + b"\x01" * 36 * keypoints + extra).decode()


BAD_FINGERPRINT_FIELDS: list[tuple[str, Any]] = [
    ("keypoints", "QUFBQUFB"),  # six bytes: a header and a sixth of a keypoint (was a 500)
    ("keypoints", "!!!"),
    ("keypoints", "AAAA"),  # a header and no keypoint
    ("keypoints", _packed(100, 100, 3, b"\x00")),  # a byte over whole keypoints
    ("keypoints", _packed(0, 100, 3)),
    ("thumb", "QUFB"),
    ("thumb", "Q"),
    ("thumb", base64.b64encode(b"\x00" * 255).decode()),
    # Lists past their caps (the body stays within the JSON shape check's values).
    ("regions", [{"box": {"x": 0, "y": 0, "w": 1, "h": 1}, "phash": "0" * 16}] * 65),
    ("palette", [{"hex": "#000000", "weight": 1}] * 17),
    ("colors", ["red"] * 13),
    ("layout", [0.5] * 257),
    ("phash_probes", ["0" * 16] * 65),
    ("megapixels", -1),
]


async def test_a_fingerprint_that_is_not_one_we_make_is_a_400(
    lookalike_settings: CommonSettings, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    await publish_fingerprints(lookalike_settings, {"img-00003": sample_fingerprints["img-00003"]})
    good = json.loads(sample_fingerprints["img-00003"].model_dump_json())
    async with running_matcher(lookalike_settings) as (url, _, http):
        for name, value in BAD_FINGERPRINT_FIELDS:
            body = {"fingerprint": {**good, name: value}}
            async with http.post(f"{url}/v1/search", json=body) as resp:
                status, answer = resp.status, await resp.json()
            assert status == 400, (name, str(value)[:40], answer)
            assert answer["error"]["field"] == f"fingerprint.{name}", answer
        # NaN and Infinity are JSON to Python's parsers, but never a fingerprint's numbers.
        for raw in (b'"trim": {"x": NaN, "y": 0, "w": 1, "h": 1}', b'"layout": [Infinity]'):
            text = json.dumps({"fingerprint": good}).encode()
            key = raw.split(b":")[0]
            start = text.index(key)
            end = text.index(b"}" if key == b'"trim"' else b"]", start) + 1
            async with http.post(
                f"{url}/v1/search",
                data=text[:start] + raw + text[end:],
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 400, raw
        assert (await search(http, url, sample_fingerprints["img-00003"]))[0]["image_id"] == (
            "img-00003"
        )


async def test_requests_shaped_to_cost_the_matcher_are_a_4xx(
    lookalike_settings: CommonSettings,
) -> None:
    await make_topics(lookalike_settings, partitions=1)
    nested = "[" * 5000 + "]" * 5000
    async with running_matcher(lookalike_settings, body_timeout_seconds=0.5) as (url, _, http):
        wide = json.dumps({"fingerprint": {"regions": [{"box": {}}] * 5000}})
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"data": nested, "headers": JSON}, 400, "invalid_request"),
            ({"data": wide, "headers": JSON}, 400, "invalid_request"),
            ({"data": '{"fingerprint": ' + nested + "}", "headers": JSON}, 400, "invalid_request"),
            ({"data": _form([("limit", b"5")] * 20), "headers": FORM}, 413, "too_many_fields"),
            ({"data": _form([("limit", "²".encode())]), "headers": FORM}, 400, "invalid_request"),
            ({"data": _form([("limit", b"1" * 5000)]), "headers": FORM}, 400, "invalid_request"),
            (
                {"data": _form([("image", b"x")], filename="a" * 100_000), "headers": FORM},
                400,
                "invalid_body",
            ),
        ]
        for malformed in (  # the gateway's cases: tests/gateway/test_unsafe_inputs.py
            b"--b0undary\r\nNone--b0undary--\r\n",
            b"--b0undary\r\n\r\n",
            b"--elsewhere\r\n\r\nx\r\n--elsewhere--\r\n",
            b"--b0undary\r\n" + b"X-Header: 1\r\n" * 200 + b"\r\nx\r\n--b0undary--\r\n",
        ):
            cases.append(({"data": malformed, "headers": FORM}, 400, "invalid_body"))
        for kwargs, status, code in cases:
            async with http.post(f"{url}/v1/search", **kwargs) as resp:
                assert resp.status == status, (kwargs["data"][:60], await resp.text())
                assert (await resp.json())["error"]["code"] == code
        for raw_id, status in [("%2E%2E", 400), ("a%2Fb", 400), ("x" * 201, 400), ("nope", 404)]:
            async with http.get(URL(f"{url}/v1/images/{raw_id}", encoded=True)) as resp:
                assert resp.status == status, raw_id
                assert resp.content_type == "application/json"
        trickle = await _trickled_request(url)
        async with http.get(f"{url}/v1/stats") as resp:
            assert resp.status == 200

    assert trickle[0] == 408 and b"request_timeout" in trickle[1]


async def test_every_matcher_answer_carries_the_security_headers_and_no_version(
    lookalike_settings: CommonSettings,
) -> None:
    async with running_matcher(lookalike_settings, ready=False) as (url, _, http):
        for path in ("/v1/stats", "/readyz", "/openapi.json", "/v1/images/nope", "/nowhere"):
            async with http.get(f"{url}{path}") as resp:
                assert resp.headers["Server"] == "lookalike", path
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                assert resp.headers["X-Frame-Options"] == "DENY"


async def test_a_matcher_whose_pool_cannot_start_is_not_ready_and_refuses_uploads_with_503(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, Any],
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=1)
    await publish_fingerprints(lookalike_settings, {"img-00003": sample_fingerprints["img-00003"]})
    # No worker starts and warms within a microsecond: as with a stuck fork server.
    async with running_matcher(
        lookalike_settings, ready=False, pool_start_timeout_seconds=1e-6
    ) as (url, replay, http):

        async def replayed() -> bool:
            return replay.readiness.reason("replay") is None

        await wait_until(replayed, 30, "the index to be loaded")
        async with http.get(f"{url}/readyz") as resp:
            ready = resp.status, await resp.json()
        upload = aiohttp.FormData()
        upload.add_field("image", jpeg_bytes_of(root), filename="q.jpg")
        async with http.post(f"{url}/v1/search", data=upload) as resp:
            refused = resp.status, (await resp.json())["error"]["code"]
        by_fingerprint = await search(http, url, sample_fingerprints["img-00003"])

    assert ready == (
        503,
        {"status": "not-ready", "reason": "POOL-BROKEN", "reasons": ["POOL-BROKEN"]},
    )
    assert refused == (503, "backend_unavailable")
    assert by_fingerprint[0]["image_id"] == "img-00003"  # needs no worker: still served


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def _form(fields: list[tuple[str, bytes]], filename: str | None = None) -> bytes:
    out = b""
    for name, value in fields:
        disposition = f'name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--b0undary\r\nContent-Disposition: form-data; {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + b"--b0undary--\r\n"


async def _trickled_request(url: str) -> tuple[int, bytes]:
    """Headers promising 10,000 bytes, then 10 and silence: (status, body) of the answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n" + b'{"fingerp'
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after it
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]
