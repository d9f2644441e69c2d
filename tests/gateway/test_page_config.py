"""GET /v1/page-config tells the search page what the gateway decides (its page size, the
facets it counts, its limits), and the page's modules are served so a browser runs them."""

from __future__ import annotations

import re

from lookalike_gateway.app import STATIC
from lookalike_gateway.catalogue_fields import OWN_FACETS
from lookalike_gateway.palette_param import MAX_COLOURS
from lookalike_gateway.params import MAX_PAGE_SIZE, SearchParams
from tests.fixtures.gateway import IndexedCatalogue

# A module's static imports: `import ... from "./x.js"` and `export ... from "./x.js"`.
IMPORTED = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']\./([\w.-]+)["']""", re.M)


async def test_page_config_is_the_gateways_own_page_size_facets_and_limits(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway

    async with gateway.http.get(f"{gateway.url}/v1/page-config") as resp:
        assert resp.status == 200
        config = await resp.json()

    assert config == {
        "page_size": SearchParams.model_fields["limit"].default,
        "max_page_size": MAX_PAGE_SIZE,
        "facets": list(OWN_FACETS),
        "max_palette_colours": MAX_COLOURS,
        "filters": [],  # a catalogue profile's own; none without one
    }
    answer = await gateway.search(q="portrait")
    assert set(answer.done["facets"]) == set(config["facets"])


async def test_a_gateways_page_size_is_what_it_tells_the_page_and_what_a_search_gets(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    async with indexed_catalogue.another_gateway(page_size=3) as gateway:
        async with gateway.http.get(f"{gateway.url}/v1/page-config") as resp:
            config = await resp.json()
        answer = await gateway.search(image_id="img-00020")  # more look-alikes than 3

    assert config["page_size"] == 3
    assert len(answer.hits) == 3  # no `limit` in the request: the gateway's page size
    assert answer.done["next_cursor"]


async def test_every_module_of_the_page_is_served_as_javascript_and_revalidated(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    gateway = indexed_catalogue.gateway
    async with gateway.http.get(gateway.url) as resp:
        page = await resp.text()
    entry = re.search(r'<script type="module" src="/static/([\w.-]+)"></script>', page)
    assert entry, "the page loads its script as a module"

    # Walk the import graph from the entry, as the browser does.
    seen: set[str] = set()
    waiting = [entry.group(1)]
    while waiting:
        name = waiting.pop()
        if name in seen:
            continue
        seen.add(name)
        async with gateway.http.get(f"{gateway.url}/static/{name}") as resp:
            assert resp.status == 200, name
            # Browsers refuse a module served with any other type.
            assert resp.content_type in ("text/javascript", "application/javascript"), name
            assert resp.headers["Cache-Control"] == "no-cache", name
            waiting.extend(IMPORTED.findall(await resp.text()))

    # Every module in the package is part of the page: none is left behind, unused.
    assert seen == {p.name for p in STATIC.glob("*.js")}
