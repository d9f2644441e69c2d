"""POST /v1/search as people and programs use it: every way of giving the image, words,
every filter, the order of the merged answer, pages, facets, and 400s that name the field."""

from __future__ import annotations

import base64
import io
from collections import Counter
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from lookalike_gateway.es_queries import passes_filters
from lookalike_gateway.params import SearchParams
from lookalike_stack.processes import free_port
from tests.fixtures.gateway import IndexedCatalogue, SearchAnswer
from tests.fixtures.images import jpeg_bytes, resized_copy, sample_path
from tests.fixtures.services import start_app

CAT = "img-00003"  # "Chelsea the Cat", 2010, brown/grey/orange, landscape PNG


def _cat_copy(indexed: IndexedCatalogue, scale: float = 0.5) -> bytes:
    return resized_copy(sample_path(indexed.root, CAT), scale)


def _groups(answer: SearchAnswer) -> list[str]:
    """The order of match kinds, each run collapsed: ["duplicate", "similar", "text"]."""
    runs: list[str] = []
    for hit in answer.hits:
        if not runs or runs[-1] != hit["match"]:
            runs.append(hit["match"])
    return runs


# --- the four ways of giving an image -------------------------------------------------------


async def test_uploaded_copy_of_an_artwork_comes_back_first_as_the_same_artwork(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(_cat_copy(indexed_catalogue))

    assert answer.status == 200
    first = answer.hits[0]
    assert (first["image_id"], first["match"], first["rank"]) == (CAT, "duplicate", 1)
    assert first["doc"]["title"] == "Chelsea the Cat"
    assert first["doc"]["thumbnail_url"] == f"/v1/images/{CAT}/thumbnail"
    assert set(first["region"]) == {"x", "y", "w", "h"}
    assert not {"embedding", "colour_bins", "fingerprint", "layout"} & set(first["doc"])
    assert [h["rank"] for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    assert answer.done["warnings"] == []
    # Look-alikes always fill the page: the total counts one more, to say a page follows.
    assert answer.done["total"] > len(answer.hits) == 24


async def test_pasted_image_sent_as_a_data_url_in_json_finds_the_artwork(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    data_url = "data:image/jpeg;base64," + base64.b64encode(_cat_copy(indexed_catalogue)).decode()

    answer = await indexed_catalogue.gateway.search_json({"image": data_url, "limit": 5})

    assert answer.status == 200
    assert answer.hits[0]["image_id"] == CAT
    assert answer.hits[0]["match"] == "duplicate"


async def test_image_url_over_http_follows_redirects_to_an_allowed_host(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    body = _cat_copy(indexed_catalogue, 0.7)

    async def image(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/jpeg")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/cat.jpg")

    app = web.Application()
    app.router.add_get("/cat.jpg", image)
    app.router.add_get("/old/cat.jpg", moved)
    port = free_port()
    runner = await start_app(app, port)
    try:
        # Loopback is refused by default; this gateway trusts it, as one on a catalogue host may.
        async with indexed_catalogue.another_gateway(
            allow_private_networks=True, allowed_hosts=["127.0.0.1"]
        ) as gateway:
            answer = await gateway.search(image_url=f"http://127.0.0.1:{port}/old/cat.jpg")
    finally:
        await runner.cleanup()

    assert answer.status == 200
    assert answer.hits[0]["image_id"] == CAT


async def test_more_like_this_leaves_out_the_image_itself(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    # The two motorcycle photographs are a stereo pair: the same scene, a little shifted.
    answer = await indexed_catalogue.gateway.search(image_id="img-00020")

    assert answer.status == 200
    assert "img-00020" not in answer.ids
    assert answer.hits[0]["image_id"] == "img-00021"
    assert {h["match"] for h in answer.hits} <= {"duplicate", "similar"}


async def test_more_like_this_of_an_unknown_image_is_404(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(image_id="img-99999")

    assert answer.status == 404
    assert answer.error["field"] == "image_id"


async def test_words_alone_find_keyword_hits_ranked_by_relevance(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(q="motorcycle")

    assert sorted(answer.ids) == ["img-00020", "img-00021"]
    assert {h["match"] for h in answer.hits} == {"text"}
    scores = [h["score"] for h in answer.hits]
    assert scores == sorted(scores, reverse=True)


async def test_urlencoded_form_with_repeated_colours_requires_every_colour(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()
    expected = {i for i, d in docs.items() if {"blue", "white"} <= set(d["colors"])}

    answer = await indexed_catalogue.gateway.post(
        data="colors=blue&colors=white&limit=100",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer.status == 200
    assert expected and set(answer.ids) == expected


# --- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "keep"),
    [
        ({"colors": "blue"}, lambda d: "blue" in d["colors"]),
        ({"colors": "grey,white"}, lambda d: {"grey", "white"} <= set(d["colors"])),
        ({"format": "jpeg"}, lambda d: d["format"] == "jpeg"),
        ({"format": "jpeg,gif"}, lambda d: d["format"] in ("jpeg", "gif")),
        ({"orientation": "portrait"}, lambda d: d["orientation"] == "portrait"),
        ({"min_width": 600}, lambda d: d["width"] >= 600),
        ({"min_height": 500, "min_width": 600}, lambda d: d["height"] >= 500 and d["width"] >= 600),
        ({"year_from": 1990, "year_to": 2009}, lambda d: 1990 <= d["year"] <= 2009),
        ({"year_to": 1970}, lambda d: d["year"] <= 1970),
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else "",
)
async def test_filters_alone_list_exactly_the_matching_catalogue_images(
    indexed_catalogue: IndexedCatalogue, fields: dict[str, Any], keep: Any
) -> None:
    docs = await indexed_catalogue.es_docs()
    expected = {i for i, d in docs.items() if keep(d)}

    answer = await indexed_catalogue.gateway.search(limit=100, **fields)

    assert answer.status == 200
    assert expected, "the filter should match some of the sample"
    assert set(answer.ids) == expected
    assert answer.done["total"] == len(expected)
    # Duplicates are filtered in the gateway after a multi-get: the same rules must hold.
    params = SearchParams.model_validate({k: str(v) for k, v in fields.items()})
    assert {i for i, d in docs.items() if passes_filters(d, params)} == expected


async def test_filters_apply_to_the_same_artwork_and_look_alikes_too(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()
    query = _cat_copy(indexed_catalogue)

    kept = await indexed_catalogue.gateway.search(query, colors="brown", year_from=2000)
    dropped = await indexed_catalogue.gateway.search(query, year_to=1999)

    assert kept.hits[0]["image_id"] == CAT
    assert all("brown" in h["doc"]["colors"] and h["doc"]["year"] >= 2000 for h in kept.hits)
    assert CAT not in dropped.ids
    assert all(docs[i]["year"] <= 1999 for i in dropped.ids)


async def test_words_and_filters_combine(indexed_catalogue: IndexedCatalogue) -> None:
    answer = await indexed_catalogue.gateway.search(q="portrait", orientation="square")

    assert sorted(answer.ids) == ["img-00001", "img-00002"]


# --- merging --------------------------------------------------------------------------------


async def _lookalike_scores(indexed: IndexedCatalogue, image_id: str) -> dict[str, float]:
    """The cosine similarity of every catalogue image's embedding to a stored one's (from
    Elasticsearch's kNN score, (1 + cos) / 2), so a test can set the look-alike threshold
    from the data rather than assume its values."""
    es = f"{indexed.settings.es_url}/{indexed.settings.es_alias}"
    async with indexed.http.get(f"{es}/_doc/{image_id}") as resp:
        vector = (await resp.json())["_source"]["embedding"]
    knn = {"field": "embedding", "query_vector": vector, "k": 100, "num_candidates": 100}
    async with indexed.http.post(
        f"{es}/_search", json={"knn": knn, "size": 100, "_source": False}
    ) as resp:
        found = await resp.json()
    return {h["_id"]: 2 * float(h["_score"]) - 1 for h in found["hits"]["hits"]}


async def test_answer_lists_same_artwork_then_look_alikes_then_keyword_hits_each_once(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    scores = await _lookalike_scores(indexed_catalogue, CAT)
    ranked = sorted((s, i) for i, s in scores.items() if i != CAT)
    # The five closest look like it; the query is a resized copy, whose similarities to them
    # are a little lower than the stored image's.
    threshold = ranked[-5][0] - 0.1
    least_alike = ranked[0][1]
    title = indexed_catalogue.entry(least_alike)["title"]

    async with indexed_catalogue.another_gateway(similar_min_score=threshold) as gateway:
        answer = await gateway.search(_cat_copy(indexed_catalogue), q=title)

    assert answer.status == 200
    assert _groups(answer) == ["duplicate", "similar", "text"]
    assert answer.hits[0]["image_id"] == CAT
    assert len(answer.ids) == len(set(answer.ids))
    assert answer.match_of(least_alike) == "text"
    top_alike = ranked[-1][1]
    assert answer.match_of(top_alike) == "similar"  # it may match the words too: listed once
    assert answer.done["totals"]["similar"] >= 5


async def test_words_with_an_image_put_the_matching_look_alikes_first(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    query = _cat_copy(indexed_catalogue)
    about_nasa = set((await indexed_catalogue.gateway.search(q="nasa")).ids)

    # Every image counts as a look-alike here, so the words decide the order.
    async with indexed_catalogue.another_gateway(similar_min_score=0.0) as gateway:
        # One page holds them all, so the words can only reorder, not swap in or out.
        plain = await gateway.search(query, limit=50)
        worded = await gateway.search(query, q="nasa", limit=50)

    similar = [h["image_id"] for h in worded.hits if h["match"] == "similar"]
    assert len(about_nasa) >= 2
    assert set(similar[: len(about_nasa)]) == about_nasa
    plain_order = [h["image_id"] for h in plain.hits if h["match"] == "similar"]
    assert set(similar) == set(plain_order)
    rest = [i for i in similar if i not in about_nasa]
    assert rest == [i for i in plain_order if i not in about_nasa]  # otherwise as alike


# --- pages and facets -----------------------------------------------------------------------


async def test_cursor_pages_through_every_group_without_repeats_or_gaps(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    query = _cat_copy(indexed_catalogue)
    whole = await indexed_catalogue.gateway.search(query, q="nasa", limit=100)

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(20):
        fields: dict[str, Any] = {"q": "nasa", "limit": 4}
        if cursor:
            fields["cursor"] = cursor
        page = await indexed_catalogue.gateway.search(query, **fields)
        assert page.status == 200
        assert len(page.hits) <= 4
        seen.extend(page.hits)
        cursor = page.done["next_cursor"]
        if cursor is None:
            break

    assert [(h["rank"], h["image_id"], h["match"]) for h in seen] == [
        (h["rank"], h["image_id"], h["match"]) for h in whole.hits
    ]


async def test_facets_and_total_count_the_whole_answer_not_just_the_page(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    docs = await indexed_catalogue.es_docs()

    answer = await indexed_catalogue.gateway.search(limit=5)

    assert len(answer.hits) == 5
    assert answer.done["total"] == len(docs)
    assert answer.done["next_cursor"]
    facets = {k: {f["value"]: f["count"] for f in v} for k, v in answer.done["facets"].items()}
    assert facets["format"] == dict(Counter(d["format"] for d in docs.values()))
    assert facets["orientation"] == dict(Counter(d["orientation"] for d in docs.values()))
    assert facets["decade"] == dict(Counter(d["decade"] for d in docs.values()))
    assert facets["colors"] == dict(Counter(c for d in docs.values() for c in d["colors"]))


async def test_facets_of_an_image_search_count_its_hits(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    answer = await indexed_catalogue.gateway.search(_cat_copy(indexed_catalogue), limit=3)

    facets = {k: {f["value"]: f["count"] for f in v} for k, v in answer.done["facets"].items()}
    assert sum(facets["format"].values()) == answer.done["total"] >= len(answer.hits)


# --- requests that are wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"limit": "lots"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"colors": "magenta"}, "colors"),
        ({"format": "pdf"}, "format"),
        ({"orientation": "diagonal"}, "orientation"),
        ({"min_width": "-3"}, "min_width"),
        ({"min_height": "tall"}, "min_height"),
        ({"year_from": "1900", "year_to": "1800"}, "year_to"),
        ({"year_from": "last year"}, "year_from"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"image_id": "../../etc/passwd"}, "image_id"),
        ({"q": "x" * 501}, "q"),
        ({"image_url": "file:///etc/passwd", "image_id": "img-00001"}, "image"),
        ({"q": "cat", "limit": "2", "limit ": "3"}, "limit "),
    ],
)
async def test_malformed_or_unknown_parameter_is_a_400_naming_the_field(
    indexed_catalogue: IndexedCatalogue, fields: dict[str, str], field: str
) -> None:
    answer = await indexed_catalogue.gateway.search(**fields)

    assert answer.status == 400, answer.lines
    assert answer.error["field"] == field
    assert field.strip() in answer.error["message"]


async def test_a_parameter_given_twice_is_a_400(indexed_catalogue: IndexedCatalogue) -> None:
    answer = await indexed_catalogue.gateway.post(
        data="q=cat&q=dog", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert answer.status == 400
    assert answer.error["field"] == "q"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"limit": "ten"}, "limit"), ({"colors": [1, 2]}, "colors"), ({"image": "no"}, "image")],
)
async def test_json_body_is_validated_the_same_way(
    indexed_catalogue: IndexedCatalogue, body: dict[str, Any], field: str
) -> None:
    answer = await indexed_catalogue.gateway.search_json(body)

    assert answer.status == 400
    assert answer.error["field"] == field


async def test_body_that_is_not_json_object_or_form_is_refused(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    not_object = await indexed_catalogue.gateway.search_json([1, 2])  # type: ignore[arg-type]
    broken = await indexed_catalogue.gateway.post(
        data=b"{", headers={"Content-Type": "application/json"}
    )
    wrong_type = await indexed_catalogue.gateway.post(
        data=b"hello", headers={"Content-Type": "text/plain"}
    )

    assert not_object.status == 400
    assert broken.status == 400
    assert wrong_type.status == 415


async def test_an_image_is_sniffed_not_trusted_from_its_name(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    png = io.BytesIO()
    Image.open(sample_path(indexed_catalogue.root, CAT)).save(png, "PNG")

    answer = await indexed_catalogue.gateway.search(
        png.getvalue(), filename="holiday.gif", content_type="application/octet-stream"
    )

    assert answer.status == 200
    assert answer.hits[0]["image_id"] == CAT


async def test_small_jpeg_of_a_flat_colour_gets_look_alikes_and_no_false_artwork(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    # A flat picture has no structure for the hashes or keypoints: nothing in the catalogue
    # is the same artwork, but the look-alikes still answer, a full page of them.
    answer = await indexed_catalogue.gateway.search(jpeg_bytes(Image.new("RGB", (64, 64), "red")))

    assert answer.status == 200
    assert answer.done["warnings"] == []
    assert [h for h in answer.hits if h["match"] == "duplicate"] == []
    assert len([h for h in answer.hits if h["match"] == "similar"]) >= 10
