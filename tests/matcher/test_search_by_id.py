"""Search by a catalogue image id ("more like this"): the matcher's own entry is the query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from lookalike_gateway.matcher_client import MatcherClient
from lookalike_matcher.by_id import query_of
from lookalike_matcher.index import FingerprintIndex
from lookalike_shared.config import CommonSettings
from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fingerprint import fingerprint_bytes
from tests.fixtures.images import jpeg_bytes, resized_copy, sample_path
from tests.fixtures.matcher import SAMPLE_IDS, make_topics, publish_fingerprints, running_matcher

CAT = "img-00003"


def _index_with_copies(root: Path, sample_fingerprints: dict[str, Fingerprint]) -> FingerprintIndex:
    """The sample catalogue plus two more catalogue entries of the cat: a smaller JPEG and
    a framed, mirrored one."""
    index = FingerprintIndex()
    for version, (image_id, fingerprint) in enumerate(sample_fingerprints.items(), start=1):
        index.upsert(image_id, version, fingerprint)
    cat = sample_path(root, CAT)
    index.upsert("cat-small", 1, fingerprint_bytes(resized_copy(cat, 0.4, quality=60)))
    with Image.open(cat) as img:
        framed = ImageOps.expand(
            ImageOps.mirror(img.convert("RGB")), border=30, fill=(250, 250, 245)
        )
    index.upsert("cat-framed-mirrored", 1, fingerprint_bytes(jpeg_bytes(framed)))
    return index


def test_searching_by_a_catalogue_id_finds_its_other_copies_as_the_same_artwork(
    sample_catalogue: tuple[Path, Any], sample_fingerprints: dict[str, Fingerprint]
) -> None:
    root, _ = sample_catalogue
    index = _index_with_copies(root, sample_fingerprints)
    query = query_of(index, CAT)
    assert query is not None
    duplicates = {m.image_id for m in index.search(query, limit=50) if m.match == "duplicate"}
    assert {CAT, "cat-small", "cat-framed-mirrored"} <= duplicates
    assert duplicates <= {CAT, "cat-small", "cat-framed-mirrored"}  # nothing else is the cat


def test_searching_by_id_agrees_with_searching_by_the_image_itself(
    sample_catalogue: tuple[Path, Any], sample_fingerprints: dict[str, Fingerprint]
) -> None:
    root, _ = sample_catalogue
    index = _index_with_copies(root, sample_fingerprints)
    for image_id in SAMPLE_IDS:
        by_image = index.search(sample_fingerprints[image_id], limit=50)
        by_id_query = query_of(index, image_id)
        assert by_id_query is not None
        by_id = index.search(by_id_query, limit=50)
        same = lambda ms: {m.image_id for m in ms if m.match == "duplicate"}  # noqa: E731
        assert same(by_id) == same(by_image), image_id


def test_an_id_the_index_does_not_hold_has_no_query(
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    index = FingerprintIndex()
    index.upsert(CAT, 1, sample_fingerprints[CAT])
    assert query_of(index, "img-99999") is None
    index.delete(CAT)
    assert query_of(index, CAT) is None


async def test_the_api_searches_by_id_and_names_an_unknown_id_404(
    lookalike_settings: CommonSettings, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    await make_topics(lookalike_settings, partitions=2)
    await publish_fingerprints(lookalike_settings, sample_fingerprints)
    async with running_matcher(lookalike_settings) as (url, _, http):
        async with http.post(f"{url}/v1/search", json={"image_id": CAT, "limit": 5}) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["matches"][0]["image_id"] == CAT
        assert body["query"]["phash"] == sample_fingerprints[CAT].phash
        async with http.post(f"{url}/v1/search", json={"image_id": "img-99999"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["field"] == "image_id"
        async with http.post(
            f"{url}/v1/search",
            json={"image_id": CAT, "fingerprint": sample_fingerprints[CAT].model_dump()},
        ) as resp:
            assert resp.status == 400


async def test_shards_that_do_not_hold_the_image_are_searched_with_the_holders_query(
    lookalike_settings: CommonSettings,
    sample_catalogue: tuple[Path, Any],
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    # Two shards, the cat on one and its smaller copy on the other: the copy is found.
    root, _ = sample_catalogue
    await make_topics(lookalike_settings, partitions=2)
    copy = fingerprint_bytes(resized_copy(sample_path(root, CAT), 0.4, quality=60))
    await publish_fingerprints(
        lookalike_settings,
        {**sample_fingerprints, "cat-small": copy},
        partition=lambda image_id: int(image_id == "cat-small"),  # the copy alone on 1
    )
    async with (
        running_matcher(lookalike_settings, matcher_partitions=[0]) as (first, _, http),
        running_matcher(lookalike_settings, matcher_partitions=[1]) as (second, _, _),
    ):
        client = MatcherClient(http, [first, second], timeout=5.0)
        matches, warnings = await client.search_by_id(CAT, 20)
    assert warnings == []
    duplicates = {m.image_id for m in matches if m.match == "duplicate"}
    assert {CAT, "cat-small"} <= duplicates
