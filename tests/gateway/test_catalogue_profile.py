"""The gateway on a library's own index, through a catalogue profile: search by image, by
words and by the library's own filters, its own fields in every result, its filters and
facets in the page config; a profile that does not fit refuses to start."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from lookalike_gateway.app import init_app
from lookalike_gateway.settings import GatewaySettings
from lookalike_shared.profile import ProfileError
from lookalike_stack.catalogue import publish
from lookalike_stack.library import profile_text
from lookalike_stack.processes import free_port
from tests.fixtures.images import resized_copy, sample_path
from tests.fixtures.library import Library
from tests.fixtures.services import Pipeline, start_app, wait_until

NAMESPACE = "lookalike"


def _hits(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("type") == "hit"]


async def test_an_image_finds_the_librarys_own_document_with_its_fields(
    library_pipeline: Pipeline, library: Library
) -> None:
    image_id = "img-00003"
    query = resized_copy(sample_path(library_pipeline.file_root, image_id), 0.5)

    status, lines = await library_pipeline.search(query)

    assert status == 200, lines
    hits = _hits(lines)
    assert (hits[0]["image_id"], hits[0]["match"]) == (image_id, "duplicate")
    doc, written = hits[0]["doc"], library.documents[image_id]
    for name in ("name", "artist", "created", "license_type", "collection", "price_eur"):
        assert doc[name] == written[name]  # the library's own fields, as it wrote them
    assert doc["title"] == written["name"] and doc["creator"] == written["artist"]["display_name"]
    assert doc["thumbnail_url"] == written["thumbnail_href"]
    assert doc["palette"] and doc["palette"][0]["hex"].startswith("#")
    assert NAMESPACE not in doc and "embedding" not in doc
    similar = [h for h in hits if h["match"] == "similar"]
    assert len(similar) == len(library.documents) - 1  # every other image, ranked
    assert lines[-1]["warnings"] == []


async def test_words_search_the_profiles_text_fields_and_extra_filters_apply(
    library_pipeline: Pipeline, library: Library
) -> None:
    image_id, written = next(iter(library.documents.items()))
    word = written["artist"]["display_name"].split()[-1]

    status, lines = await library_pipeline.search(q=word)
    assert status == 200, lines
    assert image_id in [h["image_id"] for h in _hits(lines)]

    wanted = "rights-managed"
    expected = {i for i, d in library.documents.items() if d["license_type"] == wanted}
    status, lines = await library_pipeline.search(license_type=wanted)
    assert status == 200, lines
    assert {h["image_id"] for h in _hits(lines)} == expected
    facets = {f["value"]: f["count"] for f in lines[-1]["facets"]["license_type"]}
    assert facets == {wanted: len(expected)}

    # The library's filters hold for image searches too, duplicates and look-alikes alike.
    query = resized_copy(sample_path(library_pipeline.file_root, image_id), 0.5)
    status, lines = await library_pipeline.search(query, license_type=wanted)
    assert status == 200, lines
    assert {h["image_id"] for h in _hits(lines)} <= expected
    status, lines = await library_pipeline.search(q=word, license_type="no-such-licence")
    assert (status, _hits(lines)) == (200, [])


async def test_the_page_config_lists_the_profiles_filters_and_facets(
    library_pipeline: Pipeline,
) -> None:
    async with library_pipeline.http.get(f"{library_pipeline.gateway_url}/v1/page-config") as resp:
        config = await resp.json()

    assert config["facets"] == ["license_type", "collection", "colors"]
    assert config["filters"] == [
        {"name": "license_type", "label": "Licence", "kind": "term"},
        {"name": "collection", "label": "Collection", "kind": "term"},
    ]
    status, lines = await library_pipeline.search(q="cat")
    assert status == 200
    assert set(lines[-1]["facets"]) == set(config["facets"])


async def test_a_profile_that_does_not_fit_the_index_stops_the_gateway(
    library: Library,
) -> None:
    text = profile_text(library.alias).replace('"artist.display_name" = 2', '"artist.bio" = 2')
    settings = GatewaySettings(
        **library.settings.model_dump(exclude={"catalogue_profile"}),
        catalogue_profile=str(library.write_profile(text, "bad.toml")),
        bind_host="127.0.0.1",
        pool_workers=1,
    )
    with pytest.raises(ProfileError, match=r"'artist\.bio'"):
        await start_app(init_app(settings), free_port())
    broken = library.write_profile("[index]\nalias = 3\n", "broken.toml")
    with pytest.raises(ProfileError, match=r"index\.alias"):
        init_app(settings.model_copy(update={"catalogue_profile": str(broken)}))


async def test_a_deleted_image_leaves_the_librarys_document_findable_by_words_only(
    library_pipeline: Pipeline, library: Library
) -> None:
    image_id = "img-00003"
    written = library.documents[image_id]
    query = resized_copy(sample_path(library_pipeline.file_root, image_id), 0.5)
    await publish(library_pipeline.settings, deletes=[{"image_id": image_id, "version": 2}])

    async def forgotten() -> bool:
        return (await library_pipeline.matcher_stats())["images"] == len(library.documents) - 1

    async def removed() -> bool:
        async with AsyncElasticsearch(library.settings.es_url) as es:
            await es.indices.refresh(index=library.alias)
            doc = await es.get(index=library.alias, id=image_id)
        return bool(doc["_source"]["lookalike"].get("deleted"))

    await wait_until(forgotten, 60, "the matcher to forget the deleted image")
    await wait_until(removed, 60, "lookalike's fields to be removed")
    status, lines = await library_pipeline.search(query)
    assert status == 200
    assert image_id not in [h["image_id"] for h in _hits(lines) if h["match"] == "duplicate"]
    # Its look-alike vector went with lookalike's fields: it is no look-alike either.
    assert image_id not in [h["image_id"] for h in _hits(lines)]
    # The document is the library's: its words still find it, with its own fields.
    status, lines = await library_pipeline.search(q=written["name"])
    found = {h["image_id"]: h["doc"] for h in _hits(lines)}
    assert found[image_id]["name"] == written["name"]
    assert found[image_id]["license_type"] == written["license_type"]
