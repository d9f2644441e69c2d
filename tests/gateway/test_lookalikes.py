"""Look-alikes, subject words and colour search through POST /v1/search, on the sample
catalogue in real Kafka, Elasticsearch and matcher."""

from __future__ import annotations

from typing import Any

import pytest

from lookalike_shared.colour_bins import hex_to_rgb, image_bins
from lookalike_shared.fingerprint import color_name
from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import outside_photograph, resized_copy, sample_path

CAT = "img-00003"
COFFEE = "img-00004"
PRESENT = "img-00027"  # "Blue Present": mostly one blue


def _blue_of(doc: dict[str, Any]) -> str:
    """The hex of the most covered blue of a document's palette."""
    for colour in doc["palette"]:
        r, g, b = hex_to_rgb(colour["hex"])
        if color_name(r, g, b) == "blue":
            return str(colour["hex"]).lstrip("#")
    raise AssertionError(f"no blue in {doc['palette']}")


async def test_an_outside_photograph_gets_ten_look_alikes_and_no_same_artwork(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(outside_photograph(), limit=12)

    assert answer.status == 200
    assert [h["match"] for h in answer.hits] == ["similar"] * 12
    scores = [h["score"] for h in answer.hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 100 for s in scores)
    assert answer.done["warnings"] == []


async def test_more_like_this_fills_a_page_with_look_alikes_of_the_image(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(image_id=CAT, limit=20)

    assert answer.status == 200
    assert len(answer.hits) == 20 and CAT not in answer.ids
    assert sum(h["match"] == "similar" for h in answer.hits) >= 10
    assert answer.done["next_cursor"] is not None


async def test_a_copy_ranks_its_original_first_and_no_look_alike_reads_as_the_artwork(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    copy = resized_copy(sample_path(indexed_catalogue.root, COFFEE), 0.5)
    answer = await indexed_catalogue.gateway.search(copy, limit=15)

    duplicates = [h["image_id"] for h in answer.hits if h["match"] == "duplicate"]
    assert duplicates == [COFFEE]
    assert sum(h["match"] == "similar" for h in answer.hits) >= 10


async def test_words_find_what_the_model_sees_in_the_picture(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    # No title, creator or tag of the coffee photograph says "espresso"; its subject words do.
    docs = await indexed_catalogue.es_docs()
    assert "espresso" in docs[COFFEE]["subjects"]
    assert not any("espresso" in str(v).lower() for v in indexed_catalogue.entry(COFFEE).values())

    answer = await indexed_catalogue.gateway.search(q="espresso")

    assert answer.ids[0] == COFFEE
    subjects = {f["value"] for f in answer.done["facets"]["subjects"]}
    assert "espresso" in subjects


async def test_colour_search_ranks_by_how_much_of_the_colours_an_image_holds(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()
    blue = _blue_of(docs[PRESENT])

    answer = await indexed_catalogue.gateway.search(palette=f"{blue}:100")

    assert answer.status == 200
    assert answer.ids[0] == PRESENT
    scores = [h["score"] for h in answer.hits]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] <= 100
    # Every image listed holds some of the colour: its stored colour cells say so.
    for hit in answer.hits:
        assert image_bins((p["hex"], p["weight"]) for p in docs[hit["image_id"]]["palette"])


async def test_an_images_palette_is_given_on_request_and_searches_back_to_it(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway
    async with indexed_catalogue.http.get(f"{gateway.url}/v1/images/{PRESENT}/colors") as resp:
        assert resp.status == 200
        body = await resp.json()
    weights = [p["weight"] for p in body["palette"]]
    assert 1 <= len(weights) <= 5 and 0 < sum(weights) <= 1.0001
    assert "blue" in body["colors"]

    answer = await gateway.search(palette=body["query"])
    assert answer.ids[0] == PRESENT

    async with indexed_catalogue.http.get(f"{gateway.url}/v1/images/img-99999/colors") as resp:
        assert resp.status == 404


async def test_named_colour_filter_still_narrows_a_colour_search(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()
    blue = _blue_of(docs[PRESENT])
    answer = await indexed_catalogue.gateway.search(palette=f"{blue}:100", colors="orange")
    assert answer.status == 200
    assert all("orange" in docs[i]["colors"] for i in answer.ids)


@pytest.mark.parametrize(
    "palette",
    ["1f4e7:60", "1f4e79:120", "1f4e79:-5", "1f4e79:many", ",".join(["1f4e79:10"] * 6)],
)
async def test_a_bad_palette_is_a_400_naming_the_field(
    indexed_catalogue: IndexedCatalogue, palette: str
) -> None:
    answer = await indexed_catalogue.gateway.search(palette=palette)
    assert answer.status == 400
    assert answer.error["field"] == "palette"


async def test_filters_inside_the_knn_still_fill_the_page_when_enough_images_pass(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()
    landscape = {i for i, d in docs.items() if d["orientation"] == "landscape"}
    assert len(landscape) > 10

    answer = await indexed_catalogue.gateway.search(
        outside_photograph(), orientation="landscape", limit=10
    )

    assert len(answer.hits) == 10
    assert set(answer.ids) <= landscape
