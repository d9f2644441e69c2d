"""GET /openapi.json describes the gateway as it really is: its routes, the parameters
POST /v1/search accepts and the lines it streams."""

from __future__ import annotations

from typing import Any

from lookalike_gateway.app import init_app
from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import resized_copy, sample_path

VALID_VALUE = {
    "q": "cat",
    "image_id": "img-00003",
    "image_url": None,  # one image source at a time: image_id stands for them
    "colors": "brown",
    "palette": "6b4f3a:40,c8b8a0:20",
    "format": "png",
    "orientation": "landscape",
    "min_width": "10",
    "min_height": "10",
    "year_from": "1900",
    "year_to": "2020",
    "limit": "5",
    "cursor": None,  # only a cursor the server issued is valid; checked below
}


async def _document(indexed: IndexedCatalogue) -> dict[str, Any]:
    async with indexed.http.get(f"{indexed.gateway.url}/openapi.json") as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def test_openapi_document_lists_exactly_the_routes_the_gateway_serves(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    document = await _document(indexed_catalogue)
    app = init_app(indexed_catalogue.gateway_settings())

    served = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD next to every GET
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if "prefix" in info:  # the static directory
            path = f"{info['prefix']}/{{filename}}"
        served.add((route.method.lower(), path))
    documented = {(method, path) for path, item in document["paths"].items() for method in item}

    assert documented == served


async def test_openapi_search_parameters_are_exactly_what_the_endpoint_accepts(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    document = await _document(indexed_catalogue)
    params = document["components"]["schemas"]["SearchParams"]["properties"]
    assert set(params) == set(VALID_VALUE)
    gateway = indexed_catalogue.gateway

    for name, value in VALID_VALUE.items():
        if value is None:
            continue
        answer = await gateway.search(**{name: value})
        assert answer.status == 200, (name, answer.lines)
    first = await gateway.search(limit=2)
    follow = await gateway.search(limit=2, cursor=first.done["next_cursor"])
    assert follow.status == 200
    undocumented = await gateway.search(sort="newest")
    assert undocumented.status == 400


async def test_streamed_lines_have_the_documented_shape(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    document = await _document(indexed_catalogue)
    schemas = document["components"]["schemas"]
    query = resized_copy(sample_path(indexed_catalogue.root, "img-00003"), 0.5)

    answer = await indexed_catalogue.gateway.search(query, q="nasa")
    error = await indexed_catalogue.gateway.search(limit="x")

    for line in answer.lines:
        schema = schemas["HitLine" if line["type"] == "hit" else "DoneLine"]
        assert set(schema.get("required", [])) <= set(line), line
        assert set(line) <= set(schema["properties"]), line
    assert {h["match"] for h in answer.hits} <= set(
        schemas["HitLine"]["properties"]["match"]["enum"]
    )
    assert set(error.lines[0]) == set(schemas["ErrorBody"]["properties"])
    search = document["paths"]["/v1/search"]["post"]
    assert {"200", "400", "413", "422"} <= set(search["responses"])
    assert "application/x-ndjson" in search["responses"]["200"]["content"]


async def test_openapi_document_states_the_limits_the_gateway_enforces(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    document = await _document(indexed_catalogue)
    params = document["components"]["schemas"]["SearchParams"]["properties"]
    search = document["paths"]["/v1/search"]["post"]
    thumbnail = document["paths"]["/v1/images/{image_id}/thumbnail"]["get"]
    gateway = indexed_catalogue.gateway

    # Each documented cap is accepted at the cap and refused one past it.
    colors = params["colors"]["items"]["enum"]
    formats = params["format"]["items"]["enum"]
    cursor_cap = params["cursor"]["anyOf"][0]["maxLength"]
    id_cap = 200
    answers = {
        "colors": await gateway.search_json({"q": "cat", "colors": colors}),
        "colors+1": await gateway.search_json({"q": "cat", "colors": [*colors, colors[0]]}),
        "format": await gateway.search_json({"q": "cat", "format": formats}),
        "format+1": await gateway.search_json({"q": "cat", "format": [*formats, formats[0]]}),
        "cursor+1": await gateway.search(q="cat", cursor="A" * (cursor_cap + 1)),
    }
    statuses = {name: answer.status for name, answer in answers.items()}
    for image_id in ("x" * id_cap, "x" * (id_cap + 1)):
        async with gateway.http.get(f"{gateway.url}/v1/images/{image_id}/thumbnail") as resp:
            statuses[f"id{len(image_id)}"] = resp.status

    assert len(colors) == params["colors"]["maxItems"]
    assert len(formats) == params["format"]["maxItems"]
    assert statuses == {
        "colors": 200,
        "colors+1": 400,
        "format": 200,
        "format+1": 400,
        "cursor+1": 400,
        "id200": 404,  # a well-formed id the catalogue does not have
        "id201": 400,
    }
    assert thumbnail["parameters"][0]["schema"]["pattern"].endswith("{0,199}$")
    assert {"400", "408", "413", "503"} <= set(search["responses"])
    assert "400" in thumbnail["responses"]
    assert "too_many_fields" in search["description"]
