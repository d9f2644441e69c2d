"""GET /v1/images/{id} on the matcher: what it holds of a catalogue image, as an operator
checks it (is this image in, at which version, with which parts of its fingerprint)."""

from __future__ import annotations

from tests.fixtures.gateway import IndexedCatalogue

PHOTOGRAPHS = ("img-00003", "img-00004", "img-00008")  # textured: ORB finds keypoints


async def test_every_catalogue_image_is_described_at_the_version_published(
    indexed_catalogue: IndexedCatalogue,
) -> None:
    url = f"{indexed_catalogue.matcher_url}/v1/images"
    for entry in indexed_catalogue.catalogue:
        async with indexed_catalogue.http.get(f"{url}/{entry['image_id']}") as resp:
            assert resp.status == 200, entry["image_id"]
            held = await resp.json()
        assert held["image_id"] == entry["image_id"]
        assert held["version"] == entry["version"]
        trim = held["trim"]  # the picture inside any border, in fractions of the image
        assert 0 <= trim["x"] and 0 <= trim["y"] and 0 < trim["w"] and 0 < trim["h"]
        assert trim["x"] + trim["w"] <= 1 + 1e-6 and trim["y"] + trim["h"] <= 1 + 1e-6
        assert held["regions"] >= 1
        if entry["image_id"] in PHOTOGRAPHS:
            assert held["keypoints"] is True


async def test_an_image_never_published_is_not_found(indexed_catalogue: IndexedCatalogue) -> None:
    url = f"{indexed_catalogue.matcher_url}/v1/images/img-99999"
    async with indexed_catalogue.http.get(url) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
