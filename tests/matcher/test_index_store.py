"""The index's own bookkeeping: ids in arrays, slots reused, RAM that grows with images."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike_matcher import ids as ids_module
from lookalike_matcher import index as index_module
from lookalike_matcher import state as state_module
from lookalike_matcher.ids import ImageIds
from lookalike_matcher.index import FingerprintIndex
from lookalike_shared.contracts import Box, Fingerprint, RegionHash
from lookalike_shared.fingerprint import REGION_WINDOWS
from tests.fixtures.matcher import SAMPLE_IDS


def check_ids(names: ImageIds, expected: dict[str, int], gone: set[str]) -> None:
    assert len(names) == len(expected)
    for image_id, slot in expected.items():
        assert names.slot_of(image_id) == slot
        assert names.id_of(slot) == image_id
    for image_id in gone:
        assert names.slot_of(image_id) is None


@pytest.mark.parametrize("collide", [False, True], ids=["python-hash", "every-hash-equal"])
def test_image_ids_bind_unbind_rebind_and_reload(
    monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    monkeypatch.setattr(ids_module, "RECENT_LIMIT", 50)  # merges and compactions happen
    if collide:  # ids with equal hashes are told apart by their bytes
        monkeypatch.setattr(ids_module, "_hash", lambda image_id: 7)
    names = ImageIds()
    count = 300 if collide else 3000
    expected = {f"img-{k:05d}": k for k in range(count)}
    items = list(expected.items())
    names.bind_many([i for i, _ in items[:1000]], np.array([s for _, s in items[:1000]]))
    for image_id, slot in items[1000:]:
        names.bind(image_id, slot)
    check_ids(names, expected, set())
    gone = set()
    for image_id, slot in items[::3]:  # unbind a third, rebind some slots to new ids
        names.unbind(image_id, slot)
        del expected[image_id]
        gone.add(image_id)
        if slot % 2:
            names.bind(f"new:{image_id}", slot)
            expected[f"new:{image_id}"] = slot
    check_ids(names, expected, gone)
    assert names.id_of(items[0][1]) is None  # a free slot names nothing
    names.compact()
    check_ids(names, expected, gone)
    loaded = ImageIds.from_arrays(names.arrays(count))
    check_ids(loaded, expected, gone)


def test_image_ids_take_a_few_dozen_bytes_an_image() -> None:
    names = ImageIds()
    n = 100_000
    names.bind_many([f"img-{k:07d}" for k in range(n)], np.arange(n))
    assert names.nbytes() / n < 40  # 11 bytes of id, 8 start, 1 length, 12 lookup


def synthetic(index: FingerprintIndex, first: int, count: int, rng: np.random.Generator) -> None:
    """`count` images of random hashes (no keypoints, no thumbnail), added as the replay adds."""

    def code() -> str:
        return f"{int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2)):016x}"

    for k in range(first, first + count):
        phash = code()
        fingerprint = Fingerprint(
            phash=phash,
            dhash=code(),
            phash_dihedral=[phash, *(code() for _ in range(7))],
            regions=[
                RegionHash(box=Box(x=x, y=y, w=w, h=h), phash=code())
                for x, y, w, h in REGION_WINDOWS
            ],
            trim=Box(x=0, y=0, w=1, h=1),
            width=640,
            height=480,
            megapixels=0.307,
            orientation="landscape",
            format="jpeg",
            palette=[],
            colors=[],
            layout=[],
        )
        index.upsert(f"s{k}", 1, fingerprint)


def test_index_ram_grows_with_images_not_in_fixed_steps() -> None:
    # The old tables jumped by 32 MiB of fixed-size buckets at 65,536 codes (~2,850 images).
    rng = np.random.default_rng(1)
    index = FingerprintIndex()
    synthetic(index, 0, 2000, rng)
    small = index.nbytes() / len(index)
    synthetic(index, 2000, 8000, rng)
    assert index.nbytes() / len(index) < 1.2 * small
    assert index.nbytes() / len(index) < 1024


def test_deleted_and_updated_images_free_slots_that_new_images_reuse(
    monkeypatch: pytest.MonkeyPatch, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    monkeypatch.setattr(index_module, "COMPACT_FROM", 8)
    index = FingerprintIndex()
    fingerprints = list(sample_fingerprints.values())
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    codes_per_image = index.entries / len(index)
    for version in (2, 3, 4):  # each update leaves a dead slot behind
        for image_id, fingerprint in sample_fingerprints.items():
            index.upsert(image_id, version, fingerprint)
    for image_id in SAMPLE_IDS[:13]:
        assert index.delete(image_id)
    # without reuse: a slot per upsert, 27 * 4; compaction freed slots that updates took
    assert index.state.slot_count < 27 * 4
    for k in range(40):  # new images take freed slots too
        index.upsert(f"new-{k}", 1, fingerprints[k % len(fingerprints)])
    assert index.state.slot_count < 27 * 4  # not 27 * 4 + 40
    assert len(index) == 14 + 40
    assert index.entries == pytest.approx(codes_per_image * len(index), rel=0.2)
    for image_id, fingerprint in list(sample_fingerprints.items())[13:]:
        found = {m.image_id for m in index.search(fingerprint, limit=50) if m.match == "duplicate"}
        assert image_id in found
        image = index.get(image_id)
        assert image is not None and image.version == 4
    for image_id in SAMPLE_IDS[:13]:
        assert index.get(image_id) is None
        found = {m.image_id for m in index.search(sample_fingerprints[image_id], limit=50)}
        assert image_id not in found


def test_replaying_a_backlog_defers_merges_and_catching_up_merges_them(
    monkeypatch: pytest.MonkeyPatch, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    monkeypatch.setattr(state_module, "CONTENT_DELTA", 4)
    index = FingerprintIndex()
    rng = np.random.default_rng(2)
    synthetic(index, 0, 100, rng)  # merged: 100 content codes in the layouts
    index.catching_up(True)
    for image_id, fingerprint in sample_fingerprints.items():
        index.upsert(image_id, 1, fingerprint)
    assert index.state.content.unmerged > 4  # up to a quarter of the table waits
    assert index.search(sample_fingerprints["img-00003"])[0].image_id == "img-00003"
    index.catching_up(False)
    assert all(table.unmerged == 0 for table in index.state.tables.values())
    assert index.search(sample_fingerprints["img-00003"])[0].image_id == "img-00003"
