"""The search page in a real browser (Debian's Chromium driven by Playwright): drop an image,
watch cards stream in, filter by colour, see errors in plain words, on desktop and phone."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.fixtures.gateway import IndexedCatalogue
from tests.fixtures.images import outside_photograph, resized_copy, sample_path
from tests.fixtures.library import Library
from tests.fixtures.services import Pipeline

CHROMIUM = Path(os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Screenshots for a person to look at (the tests assert what they would check, in the
# DOM): taken only when LOOKALIKE_SCREENSHOTS names a folder.
SHOTS = os.environ.get("LOOKALIKE_SCREENSHOTS")


async def _screenshot(page: Page, name: str) -> None:
    if SHOTS:
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


CAT = "img-00003"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before anything runs
        pytest.fail(
            f"the browser test needs Debian's Chromium at {CHROMIUM}: "
            "run `apt-get install -y chromium` (or set LOOKALIKE_CHROMIUM)"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


# Collects what the page's Content-Security-Policy blocked (the browser fires an event per
# blocked script, style, image or connection); installed before any of the page's code.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


async def csp_violations(page: Page) -> list[str]:
    return list(await page.evaluate("window.__cspViolations"))


async def _open(browser: Browser, url: str, **context: Any) -> Page:
    ctx = await browser.new_context(**context)
    await ctx.add_init_script(CSP_WATCH)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    # A module that fails to load (a 404, a wrong MIME type) is a console error, not a
    # page error: the rest of the page simply never runs.
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.console_errors = console_errors  # type: ignore[attr-defined]
    await page.goto(url)
    return page


async def _drop_file(page: Page, data: bytes, name: str, mime: str) -> None:
    """What a person's drag and drop does: dragenter, dragover and drop with a File."""
    transfer = await page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    for event in ("dragenter", "dragover", "drop"):
        await page.dispatch_event("#dropzone", event, {"dataTransfer": transfer})


async def _card_ids(page: Page) -> list[str]:
    ids = await page.locator("#results .card").evaluate_all(
        "(cards) => cards.map((c) => c.dataset.imageId)"
    )
    return [str(i) for i in ids]


async def _wait_done(page: Page) -> None:
    await page.wait_for_selector("#results[data-state=done]", state="attached", timeout=15_000)


async def test_dropping_an_image_streams_cards_and_a_colour_filter_changes_them(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(
        browser, indexed_catalogue.gateway.url, viewport={"width": 1280, "height": 900}
    )
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.6)

    await page.fill("#q", "portrait")
    await _drop_file(page, query, "chelsea.jpg", "image/jpeg")
    await page.wait_for_selector("#results .card", timeout=15_000)
    await _wait_done(page)

    first = page.locator("#results .card").first
    assert await first.get_attribute("data-image-id") == CAT
    assert await first.get_attribute("data-match") == "duplicate"
    assert "Chelsea the Cat" in await first.inner_text()
    assert await first.locator(".region").count() == 1  # the matched area outlined
    assert await page.locator("#query-preview").is_visible()
    before = await _card_ids(page)
    # Thumbnails load through the gateway's thumbnail route.
    await page.wait_for_function(
        "() => { const img = document.querySelector('#results .card img');"
        " return img && img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )
    await _screenshot(page, "dropped-image")

    await page.click(".color-filter[data-color=black]")
    await page.wait_for_function(
        "(before) => { const r = document.getElementById('results');"
        " const ids = [...r.querySelectorAll('.card')].map((c) => c.dataset.imageId).join();"
        " return r.dataset.state === 'done' && ids !== before; }",
        arg=",".join(before),
        timeout=15_000,
    )

    after = await _card_ids(page)
    docs = await indexed_catalogue.es_docs()
    assert after != before
    assert CAT not in after  # the cat has no black in it
    assert after and all("black" in docs[i]["colors"] for i in after)
    assert await page.get_attribute(".color-filter[data-color=black]", "aria-pressed") == "true"
    assert page.errors == []  # type: ignore[attr-defined]
    # Previews, thumbnails, outlines and palettes all work within the strict policy.
    assert await csp_violations(page) == []


async def test_the_page_loads_its_modules_with_no_console_errors_and_answers_keys(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(browser, indexed_catalogue.gateway.url)

    await page.keyboard.press("/")  # handled only once every module has loaded and run

    assert await page.evaluate("document.activeElement.id") == "q"
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]
    assert await csp_violations(page) == []


async def test_the_page_shows_the_gateways_page_size_and_facet_groups(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    async with indexed_catalogue.another_gateway(page_size=5) as gateway:
        async with gateway.http.get(f"{gateway.url}/v1/page-config") as resp:
            config = await resp.json()
        counted = (await gateway.search(image_id="img-00020", limit=1)).done["facets"]
        page = await _open(browser, f"{gateway.url}/?image_id=img-00020")
        await _wait_done(page)
        first_page = await page.locator("#results .card").count()
        await page.click("#more")
        await page.wait_for_function(
            "() => document.querySelectorAll('#results .card').length > 5", timeout=15_000
        )
        await _wait_done(page)
        two_pages = await page.locator("#results .card").count()
        groups = await page.locator("#facets .facet-group").evaluate_all(
            "(groups) => groups.map((g) => g.dataset.facet)"
        )

    assert config["page_size"] == 5
    assert first_page == 5
    assert two_pages == 10
    # The groups the server counts, in its order, each one that has counts.
    assert groups == [key for key in config["facets"] if counted.get(key)]
    assert len(groups) >= 3
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_page_is_served_with_a_strict_policy_that_blocks_inline_script(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(browser, indexed_catalogue.gateway.url)
    response = await page.request.get(indexed_catalogue.gateway.url)
    policy = response.headers["content-security-policy"]

    # What an injected <script> would do: the policy refuses it.
    ran = await page.evaluate(
        """() => { window.injected = false; const s = document.createElement("script");
        s.textContent = "window.injected = true"; document.body.append(s);
        return window.injected; }"""
    )

    assert ran is False
    assert any(v.startswith("script-src") for v in await csp_violations(page))
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    assert response.headers["x-frame-options"] == "DENY"


async def test_more_like_this_on_a_card_searches_by_that_image(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(browser, f"{indexed_catalogue.gateway.url}/?q=motorcycle")
    await _wait_done(page)
    card = page.locator("#results .card[data-image-id=img-00020]")

    await card.locator("button.more-like").click()
    await page.wait_for_function(
        "() => new URLSearchParams(location.search).get('image_id') === 'img-00020'"
    )
    await _wait_done(page)

    ids = await _card_ids(page)
    assert "img-00020" not in ids  # the image itself is left out
    assert len(ids) >= 10  # a full grid of look-alikes, not an empty page
    badge = await page.locator("#results .card[data-match=similar] .badge").first.inner_text()
    assert badge.startswith("Looks like") and badge.endswith("%")


async def test_an_outside_photograph_brings_look_alike_cards_with_a_readable_score(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(
        browser, indexed_catalogue.gateway.url, viewport={"width": 1280, "height": 900}
    )
    await _drop_file(page, outside_photograph(), "face.jpg", "image/jpeg")
    await _wait_done(page)

    cards = page.locator("#results .card")
    assert await cards.count() >= 10
    assert await page.locator("#results .card[data-match=duplicate]").count() == 0
    badges = await page.locator("#results .card .badge").all_inner_texts()
    assert all(b.startswith("Looks like · ") and b.endswith("%") for b in badges)
    await _screenshot(page, "outside-photograph")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_colour_from_the_picker_or_a_cards_palette_searches_by_colour(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(
        browser, indexed_catalogue.gateway.url, viewport={"width": 1280, "height": 900}
    )
    await page.fill("#palette-picker", "#0596fd")  # the blue of the "Blue Present"
    await page.click("#palette-add")
    await page.wait_for_function(
        "() => new URLSearchParams(location.search).get('palette') === '0596fd:100'"
    )
    await _wait_done(page)
    ids = await _card_ids(page)
    assert ids[0] == "img-00027"
    badge = await page.locator("#results .card .badge").first.inner_text()
    assert badge.startswith("Keyword · ") and badge.endswith("%")

    # The first card's palette, clicked, searches by its colours and shares.
    await page.locator("#results .card").first.locator("button.palette").click()
    await page.wait_for_function(
        "() => (new URLSearchParams(location.search).get('palette') || '').split(',').length > 1"
    )
    await _wait_done(page)
    assert (await _card_ids(page))[0] == "img-00027"
    assert await page.locator("#palette-chosen .palette-pick").count() > 1
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_file_that_is_not_an_image_gets_a_clear_message_and_keyboard_works(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(browser, indexed_catalogue.gateway.url)

    await _drop_file(page, b"%PDF-1.4 not a picture", "scan.jpg", "image/jpeg")
    await page.wait_for_selector("#results[data-state=error]", state="attached", timeout=15_000)
    message = await page.inner_text("#error")
    assert "not a recognised image" in message

    await page.keyboard.press("Escape")  # clears the refused image
    await page.wait_for_selector("#query-preview", state="hidden")
    await page.keyboard.press("/")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.keyboard.type("portrait")
    await page.keyboard.press("Enter")
    await _wait_done(page)
    assert set(await _card_ids(page)) >= {"img-00001", "img-00026"}
    assert await page.inner_text("#error") == ""


async def test_page_fits_a_phone_screen_with_results(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(
        browser,
        indexed_catalogue.gateway.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.6)

    await page.set_input_files(
        "#file-input", files=[{"name": "cat.jpg", "mimeType": "image/jpeg", "buffer": query}]
    )
    await _wait_done(page)

    assert (await _card_ids(page))[0] == CAT
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, "the page scrolls sideways on a phone"
    await page.wait_for_function(
        "() => { const img = document.querySelector('#results .card img');"
        " return img && img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )
    await _screenshot(page, "phone")
    assert await csp_violations(page) == []


async def test_compare_on_a_duplicate_card_shows_the_evidence(
    browser: Browser, indexed_catalogue: IndexedCatalogue
) -> None:
    page = await _open(
        browser, indexed_catalogue.gateway.url, viewport={"width": 1280, "height": 900}
    )
    query = resized_copy(sample_path(indexed_catalogue.root, CAT), 0.6)
    await _drop_file(page, query, "chelsea.jpg", "image/jpeg")
    await _wait_done(page)
    first = page.locator("#results .card").first
    assert await first.get_attribute("data-match") == "duplicate"
    # Only the same artwork has evidence to show.
    assert await page.locator("#results .card[data-match=similar] .compare-open").count() == 0

    await first.locator(".compare-open").click()
    dialog = page.locator("#compare")
    await page.wait_for_function(
        "() => { const img = document.getElementById('compare-overlay');"
        " return !img.hidden && img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )
    assert await dialog.is_visible()
    assert (await page.inner_text("#compare-status")).startswith("Same artwork · ")
    assert "points matched" in await page.inner_text("#compare-facts")
    assert "Chelsea the Cat" in await page.inner_text("#compare-title")
    await _screenshot(page, "compare")

    await page.click("#compare-close")
    assert not await dialog.is_visible()
    assert page.errors == []  # type: ignore[attr-defined]
    assert page.console_errors == []  # type: ignore[attr-defined]
    assert await csp_violations(page) == []


async def test_with_a_catalogue_profile_the_page_offers_the_librarys_own_filters(
    browser: Browser, library_pipeline: Pipeline, library: Library
) -> None:
    page = await _open(
        browser, library_pipeline.gateway_url, viewport={"width": 1280, "height": 900}
    )
    # The library's filters, drawn from the profile the gateway serves.
    licence = page.get_by_label("Licence", exact=True)
    assert await licence.is_visible()
    assert await page.get_by_label("Collection", exact=True).is_visible()

    # An image: every catalogue image comes back (the same artwork, then look-alikes).
    query = resized_copy(sample_path(library_pipeline.file_root, CAT), 0.6)
    await _drop_file(page, query, "chelsea.jpg", "image/jpeg")
    await _wait_done(page)
    # Its facet group, under its own label; a click filters by it.
    group = page.locator('.facet-group[data-facet="license_type"]')
    assert (await group.locator(".facet-title").text_content()) == "Licence"
    before = await _card_ids(page)
    await group.locator('.facet[data-value="rights-managed"]').click()
    await page.wait_for_function(
        "(before) => { const r = document.getElementById('results');"
        " const ids = [...r.querySelectorAll('.card')].map((c) => c.dataset.imageId).join();"
        " return r.dataset.state === 'done' && ids !== before; }",
        arg=",".join(before),
        timeout=15_000,
    )
    assert await licence.input_value() == "rights-managed"
    shown = await _card_ids(page)
    expected = {i for i, d in library.documents.items() if d["license_type"] == "rights-managed"}
    assert shown and set(shown) <= expected
    # Cards show the library's own title; its thumbnail host does not resolve here, so
    # each card falls back to the gateway's thumbnail of the picture ingest read.
    first = page.locator("#results .card").first
    assert library.documents[shown[0]]["name"] in await first.inner_text()
    await page.wait_for_function(
        "() => { const img = document.querySelector('#results .card img');"
        " return img && img.complete && img.naturalWidth > 0"
        " && img.src.includes('/v1/images/'); }",
        timeout=15_000,
    )
    assert page.errors == []  # type: ignore[attr-defined]
    unexpected = [
        e
        for e in page.console_errors  # type: ignore[attr-defined]
        if "ERR_NAME_NOT_RESOLVED" not in e
    ]
    assert unexpected == []
