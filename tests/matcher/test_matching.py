"""The matcher finds the artwork behind transformed real images, and says where it sits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lookalike_matcher import index as index_module
from lookalike_matcher.candidates import NO_HASH_PAIR
from lookalike_matcher.compare import compare
from lookalike_matcher.index import FingerprintIndex
from lookalike_matcher.postings import descriptor_keys
from lookalike_matcher.snapshot import empty_state, keypoint_store, load_snapshot, save_snapshot
from lookalike_matcher.state import IndexState
from lookalike_matcher.verify import Keypoints, verify_local
from lookalike_shared.contracts import Fingerprint
from lookalike_shared.fingerprint import pack_keypoints
from tests.fixtures.images import sample_path, watermarked
from tests.fixtures.matcher import (
    SAMPLE_IDS,
    png_fingerprint,
    quarter_crop,
    stored_keypoints,
    transformed_fingerprint,
    upper_right_quarter,
)


@pytest.fixture(scope="module")
def catalogue_index(sample_fingerprints: dict[str, Fingerprint]) -> FingerprintIndex:
    index = FingerprintIndex()
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    return index


def best(index: FingerprintIndex, query: Fingerprint) -> Any:
    matches = index.search(query, limit=5)
    assert matches, "nothing found"
    return matches[0]


def test_crop_is_found_as_a_duplicate_with_the_region_it_came_from(
    catalogue_index: FingerprintIndex, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    # the lower right of the coffee photograph: 68% of its width, 70% of its height
    query = transformed_fingerprint(
        root,
        "img-00004",
        lambda im: im.crop((int(im.width * 0.32), int(im.height * 0.3), im.width, im.height)),
    )
    match = best(catalogue_index, query)
    assert (match.image_id, match.match) == ("img-00004", "duplicate")
    region = match.region  # from the keypoints' homography, not from the hashed window
    assert region.x == pytest.approx(0.32, abs=0.04) and region.y == pytest.approx(0.3, abs=0.04)
    assert region.w == pytest.approx(0.68, abs=0.04) and region.h == pytest.approx(0.7, abs=0.04)
    assert match.overlap.target == pytest.approx(0.68 * 0.7, abs=0.06)
    assert match.overlap.query > 0.9


def test_quarter_crop_no_hash_window_meets_is_found_through_its_keypoints(
    catalogue_index: FingerprintIndex, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    query = quarter_crop(root, "img-00020")  # of the motorcycle photograph
    match = best(catalogue_index, query)
    assert (match.image_id, match.match) == ("img-00020", "duplicate")
    assert match.distance == NO_HASH_PAIR  # brought by shared descriptor keys alone
    region = match.region
    assert region.x == pytest.approx(0.45, abs=0.03) and region.y == pytest.approx(0.1, abs=0.03)
    assert region.w == pytest.approx(0.5, abs=0.03) and region.h == pytest.approx(0.5, abs=0.03)
    assert match.overlap.target == pytest.approx(0.25, abs=0.03)


def with_agreeing_keypoints(query: Fingerprint, original: Fingerprint, count: int) -> Fingerprint:
    """The query with only `count` of its keypoints, all of them ones its match with the
    original agrees on, spread over the inliers in their order."""
    assert query.keypoints
    mine = Keypoints.from_text(query.keypoints)
    match = verify_local(mine, stored_keypoints(original))
    assert match is not None and match.inliers >= 2 * count
    agreeing = match.pairs[:: match.inliers // count][:count, :2] * (mine.width, mine.height)
    chosen = [int(np.argmin(np.hypot(*(mine.xy - point).T))) for point in agreeing]
    packed = pack_keypoints(mine.width, mine.height, mine.xy[chosen], mine.descriptors[chosen])
    return query.model_copy(update={"keypoints": packed})


def test_a_dozen_agreeing_keypoints_are_too_few_for_a_duplicate(
    sample_catalogue: tuple[Path, Any], sample_fingerprints: dict[str, Fingerprint]
) -> None:
    # Two pictures that share only a drawn outline (a road sign's red triangle around
    # different symbols) agree on 11-12 keypoints; copies of one artwork on more.
    root, _ = sample_catalogue
    query = quarter_crop(root, "img-00020")  # only keypoints tie it to its original
    original = sample_fingerprints["img-00020"]

    dozen = compare(with_agreeing_keypoints(query, original, 12), original)
    assert (dozen.evidence, len(dozen.inliers), dozen.duplicate) == ("keypoints", 12, False)

    enough = compare(with_agreeing_keypoints(query, original, 16), original)
    assert (enough.evidence, len(enough.inliers), enough.duplicate) == ("keypoints", 16, True)


def pale(im: Image.Image) -> Image.Image:
    """A faint print: the picture's grey levels squeezed into 240-252, as a pencil sketch or a
    washed-out scan has them. FAST finds next to no corners at its usual contrast."""
    grey = np.asarray(im.convert("L"), dtype=np.float32)
    return Image.fromarray((240 + grey * (12 / 255)).astype(np.uint8)).convert("RGB")


def test_a_crop_of_a_faint_picture_is_found_through_its_keypoints(
    sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    index = FingerprintIndex()
    for image_id, fingerprint in sample_fingerprints.items():
        if image_id != "img-00020":  # the faint print's own original would be found too
            index.upsert(image_id, 1, fingerprint)
    with Image.open(sample_path(root, "img-00020")) as img:
        faint = pale(img.convert("RGB"))
    index.upsert("faint", 1, png_fingerprint(faint))
    query = transformed_fingerprint(root, "img-00020", lambda im: upper_right_quarter(pale(im)))
    match = best(index, query)
    assert (match.image_id, match.match) == ("faint", "duplicate")
    assert match.overlap.target == pytest.approx(0.25, abs=0.05)


def test_framed_copy_is_found_with_the_artwork_filling_the_frame_opening(
    catalogue_index: FingerprintIndex, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue

    def frame(im: Image.Image) -> Image.Image:
        d = im.width // 6
        out = Image.new("RGB", (im.width + 2 * d, im.height + 2 * d), (90, 60, 30))
        draw = ImageDraw.Draw(out)
        for i in range(d // 2):
            shade = 60 + 3 * i
            draw.rectangle((i, i, out.width - 1 - i, out.height - 1 - i), outline=(shade, 40, 20))
        out.paste(im, (d, d))
        return out

    match = best(catalogue_index, transformed_fingerprint(root, "img-00025", frame))
    assert (match.image_id, match.match) == ("img-00025", "duplicate")
    assert match.overlap.target > 0.8  # the whole painting is in the query


@pytest.mark.parametrize(
    ("image_id", "turn", "named"),
    [
        ("img-00003", Image.Transpose.FLIP_LEFT_RIGHT, {"flip_horizontal"}),
        ("img-00008", Image.Transpose.ROTATE_90, {"rotate_90", "rotate_270"}),
        ("img-00001", Image.Transpose.ROTATE_180, {"rotate_180"}),
    ],
)
def test_mirrored_and_turned_copies_are_duplicates_named_by_their_transform(
    catalogue_index: FingerprintIndex,
    sample_catalogue: tuple[Path, Any],
    image_id: str,
    turn: Image.Transpose,
    named: set[str],
) -> None:
    root, _ = sample_catalogue
    match = best(
        catalogue_index, transformed_fingerprint(root, image_id, lambda im: im.transpose(turn))
    )
    assert (match.image_id, match.match) == (image_id, "duplicate")
    assert match.transform in named


@pytest.mark.parametrize(
    ("image_id", "degrees"),
    [
        pytest.param("img-00001", 4, id="4 degrees, local features"),
        pytest.param("img-00012", -6, id="6 degrees, turned centre"),
    ],
)
def test_slightly_turned_copy_is_found_as_a_duplicate(
    catalogue_index: FingerprintIndex,
    sample_catalogue: tuple[Path, Any],
    image_id: str,
    degrees: int,
) -> None:
    root, _ = sample_catalogue
    query = transformed_fingerprint(
        root, image_id, lambda im: im.rotate(degrees, resample=Image.Resampling.BILINEAR)
    )
    match = best(catalogue_index, query)
    assert (match.image_id, match.match) == (image_id, "duplicate")


def test_watermarked_copy_is_found_as_a_duplicate(
    catalogue_index: FingerprintIndex, sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    match = best(catalogue_index, transformed_fingerprint(root, "img-00006", watermarked))
    assert (match.image_id, match.match) == ("img-00006", "duplicate")


def test_smooth_colour_field_without_keypoints_matches_through_the_global_hash() -> None:
    def colour_field(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
        img = Image.new("RGB", (400, 300), (200, 190, 170))
        draw = ImageDraw.Draw(img)
        draw.rectangle((30, 20, 370, 150), fill=top)
        draw.rectangle((30, 165, 370, 280), fill=bottom)
        return img

    painting = colour_field((170, 40, 30), (240, 150, 40))
    other = colour_field((30, 40, 160), (20, 20, 20))
    index = FingerprintIndex()
    index.upsert("field", 1, png_fingerprint(painting))
    index.upsert("other", 1, png_fingerprint(other))
    query = png_fingerprint(painting.resize((200, 150)))
    assert query.keypoints is None or len(query.keypoints) < 2000  # few or no local features
    match = best(index, query)
    assert (match.image_id, match.match) == ("field", "duplicate")


def test_blank_pictures_are_never_duplicates_of_each_other() -> None:
    # Transparent overlays shown on white, gradients that did not render: one colour each,
    # so every hash of theirs is the same rounding noise. None is evidence of an artwork.
    index = FingerprintIndex()
    index.upsert("white", 1, png_fingerprint(Image.new("RGB", (400, 300), (255, 255, 255))))
    index.upsert("grey", 1, png_fingerprint(Image.new("RGB", (300, 300), (128, 128, 128))))
    query = png_fingerprint(Image.new("RGB", (200, 150), (255, 255, 255)))
    assert [m for m in index.search(query) if m.match == "duplicate"] == []
    # A faint picture is no blank one: a small moon on white is still found.
    moon = Image.new("RGB", (400, 300), (255, 255, 255))
    ImageDraw.Draw(moon).ellipse((180, 130, 220, 170), fill=(120, 120, 110))
    index.upsert("moon", 1, png_fingerprint(moon))
    assert labels(index, moon.resize((200, 150)))["moon"] == "duplicate"


def index_of(pictures: dict[str, Image.Image]) -> FingerprintIndex:
    index = FingerprintIndex()
    for image_id, picture in pictures.items():
        index.upsert(image_id, 1, png_fingerprint(picture))
    return index


def labels(index: FingerprintIndex, query: Image.Image) -> dict[str, str]:
    """image id -> "duplicate" or "similar", for what a search with `query` finds."""
    return {m.image_id: m.match for m in index.search(png_fingerprint(query))}


def gradient(start: tuple[int, int, int], end: tuple[int, int, int]) -> Image.Image:
    t = np.linspace(0.0, 1.0, 480)[None, :, None]
    row = np.array(start, dtype=np.float64) * (1 - t) + np.array(end, dtype=np.float64) * t
    return Image.fromarray(np.repeat(row, 320, axis=0).astype(np.uint8))


def test_gradient_is_told_from_one_of_the_same_shape_in_other_colours() -> None:
    # The same left-to-right ramp in other colours: in greyscale, to every hash, one picture.
    dusk = gradient((250, 120, 40), (40, 20, 90))
    sea = gradient((110, 220, 200), (10, 60, 40))
    index = index_of({"dusk": dusk, "sea": sea})
    assert labels(index, dusk.resize((240, 160))) == {"dusk": "duplicate", "sea": "similar"}
    # A greyscale copy has lost their colours but kept its original's grey levels, which
    # the other ramp does not share: it is dusk's, and sea only looks like it.
    grey = dusk.convert("L").convert("RGB")
    assert labels(index, grey) == {"dusk": "duplicate", "sea": "similar"}
    # Brightened, the grey copy keeps the ramp's shape but not its grey levels: colour and
    # grey levels both lost, neither ramp is claimed.
    pale = dusk.convert("L").point(lambda v: min(255, v + 40)).convert("RGB")
    assert labels(index, pale) == {
        "dusk": "similar",
        "sea": "similar",
    }


def test_unrelated_catalogue_images_are_never_duplicates_of_each_other(
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    # img-00020/21 are the left and right views of one stereo pair: the same photograph
    # taken a few centimetres apart, which the matcher rightly calls a duplicate.
    stereo = {"img-00020", "img-00021"}
    for image_id in SAMPLE_IDS:
        index = FingerprintIndex()
        for other, fingerprint in sample_fingerprints.items():
            if other != image_id and not {image_id, other} <= stereo:
                index.upsert(other, 1, fingerprint)
        duplicates = [
            m.image_id
            for m in index.search(sample_fingerprints[image_id])
            if m.match == "duplicate"
        ]
        assert duplicates == [], image_id


def test_updated_image_answers_with_its_new_version_and_deleted_one_is_gone(
    sample_fingerprints: dict[str, Fingerprint],
) -> None:
    index = FingerprintIndex()
    cat, rocket = sample_fingerprints["img-00003"], sample_fingerprints["img-00008"]
    index.upsert("art", 1, cat)
    index.upsert("art", 2, rocket)
    assert [m.image_id for m in index.search(cat) if m.match == "duplicate"] == []
    assert best(index, rocket).version == 2
    assert index.delete("art")
    assert index.search(rocket) == [] and len(index) == 0


def test_snapshot_restores_an_index_that_answers_the_same(
    tmp_path: Path, sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    query = transformed_fingerprint(
        root, "img-00026", lambda im: im.crop((0, 0, im.width // 2, im.height // 2))
    )
    # with a data dir, keypoints go to the file beside the snapshot
    index = FingerprintIndex(IndexState(keypoints=keypoint_store(tmp_path)))
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    index.delete("img-00002")
    save_snapshot(index.state, tmp_path, "topic-a", [0, 1], {0: 10, 1: 17})
    assert load_snapshot(tmp_path, "topic-b", [0, 1]) is None  # another topic: ignored
    assert load_snapshot(tmp_path, "topic-a", [0]) is None  # another partition set: ignored
    loaded = load_snapshot(tmp_path, "topic-a", [1, 0])
    assert loaded is not None and loaded.offsets == {0: 10, 1: 17}
    restored = FingerprintIndex(loaded.state)
    assert len(restored) == len(index) == 26
    assert restored.get("img-00002") is None
    assert restored.search(query) == index.search(query)
    assert restored.search(query)[0].image_id == "img-00026"


def test_snapshot_keeps_descriptor_keys_and_forgets_those_written_after_it(
    tmp_path: Path, sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    query = quarter_crop(root, "img-00001")  # only descriptor keys bring its original
    index = FingerprintIndex(empty_state(tmp_path))
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    save_snapshot(index.state, tmp_path, "topic-a", [0], {0: 27})
    before = sorted(p.name for p in tmp_path.glob("postings-*.npy"))
    assert before
    # after the snapshot: a record that replay will apply again, sealed into its own segment
    index.upsert("img-00001", 2, sample_fingerprints["img-00003"])
    index.postings.seal()
    assert sorted(p.name for p in tmp_path.glob("postings-*.npy")) != before
    loaded = load_snapshot(tmp_path, "topic-a", [0])
    assert loaded is not None
    assert sorted(p.name for p in tmp_path.glob("postings-*.npy")) == before
    match = best(FingerprintIndex(loaded.state), query)  # the restored index
    assert (match.image_id, match.version, match.match) == ("img-00001", 1, "duplicate")
    assert match.distance == NO_HASH_PAIR


def test_compaction_drops_the_descriptor_keys_of_deleted_images(
    monkeypatch: pytest.MonkeyPatch, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    monkeypatch.setattr(index_module, "COMPACT_FROM", 4)
    index = FingerprintIndex()
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    doomed = SAMPLE_IDS[:14]  # the 14th delete leaves more dead images than live: compaction
    for image_id in doomed:
        index.delete(image_id)
    left = [f for i, f in sample_fingerprints.items() if i not in doomed and f.keypoints]
    assert len(index.postings) == sum(
        len(np.unique(descriptor_keys(stored_keypoints(f).descriptors))) for f in left
    )
    for image_id in doomed:
        assert all(m.image_id not in doomed for m in index.search(sample_fingerprints[image_id]))


def three_stop_gradient(
    size: tuple[int, int], stops: tuple[tuple[int, int, int], ...], angle: float
) -> Image.Image:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = ((t - t.min()) / (t.max() - t.min()))[..., None]
    a, b, c = (np.array(stop, dtype=np.float64) for stop in stops)
    ramp = np.where(t < 0.5, a + (b - a) * t * 2, b + (c - b) * (t - 0.5) * 2)
    return Image.fromarray(ramp.astype(np.uint8))


def test_gradient_is_told_from_another_at_the_same_angle() -> None:
    # In grey one diagonal ramp, with colours that point the same way on average; how the
    # colour changes across the canvas tells them apart (without that check the resized
    # copy of one scored 84 against the other).
    dawn = three_stop_gradient((480, 360), ((130, 183, 14), (238, 127, 26), (80, 57, 190)), 0.44)
    sea = three_stop_gradient((480, 360), ((19, 90, 187), (242, 163, 45), (56, 224, 139)), 0.41)
    found = labels(index_of({"dawn": dawn, "sea": sea}), dawn.resize((240, 180)))
    assert found.get("dawn") == "duplicate"
    assert found.get("sea") != "duplicate"


def test_strong_ramp_is_told_from_a_nearly_flat_field_at_the_same_angle() -> None:
    # Contrast removed, the two thumbnails correlate; their contrasts are 5 apart.
    ramp = three_stop_gradient((480, 360), ((210, 209, 32), (33, 154, 35), (92, 20, 48)), 0.54)
    field = three_stop_gradient((480, 360), ((68, 195, 92), (98, 166, 36), (71, 156, 27)), 0.56)
    pictures = {"ramp": ramp, "field": field}
    index = index_of(pictures)
    for name, picture in pictures.items():
        found = labels(index, picture.resize((240, 180)))
        assert found.get(name) == "duplicate"
        assert "duplicate" not in {v for k, v in found.items() if k != name}


def test_slightly_turned_gradient_is_found_despite_its_dark_corners() -> None:
    # Turning a print by 4 degrees leaves four dark corners; in a low-contrast picture they
    # outweigh the rest of the thumbnail, so the inner part is what is compared.
    dusk = gradient((250, 120, 40), (40, 20, 90))
    index = index_of({"dusk": dusk, "sea": gradient((110, 220, 200), (10, 60, 40))})
    found = labels(index, dusk.rotate(4, resample=Image.Resampling.BILINEAR))
    assert found.get("dusk") == "duplicate"
    assert found.get("sea") != "duplicate"
