"""Descriptor-key postings bring the original of a heavy crop, in RAM, in segments and from
a snapshot's files; and a local match needs more than four spots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lookalike_matcher import postings as postings_module
from lookalike_matcher.postings import KeypointPostings, remove_other_segments
from lookalike_matcher.verify import Keypoints, verify_local
from lookalike_shared.contracts import Fingerprint
from tests.fixtures.matcher import SAMPLE_IDS, quarter_crop, stored_keypoints


def add_samples(
    postings: KeypointPostings, sample_fingerprints: dict[str, Fingerprint], first_slot: int = 0
) -> None:
    """The sample images' postings, SAMPLE_IDS[k] at slot first_slot + k."""
    for k, image_id in enumerate(SAMPLE_IDS):
        if sample_fingerprints[image_id].keypoints:
            descriptors = stored_keypoints(sample_fingerprints[image_id]).descriptors
            postings.add(first_slot + k, descriptors)


def filled(
    sample_fingerprints: dict[str, Fingerprint], folder: Path | None = None
) -> KeypointPostings:
    postings = KeypointPostings(folder)
    add_samples(postings, sample_fingerprints)
    return postings


def votes_of(postings: KeypointPostings, query: Fingerprint) -> dict[int, int]:
    assert query.keypoints
    slots, votes = postings.votes(Keypoints.from_text(query.keypoints).descriptors)
    return dict(zip(slots.tolist(), votes.tolist(), strict=True))


def top_slot(postings: KeypointPostings, query: Fingerprint) -> int:
    votes = votes_of(postings, query)
    return max(votes, key=lambda slot: votes[slot])  # the lowest slot of equal votes


TEXTURED = ["img-00001", "img-00005", "img-00012", "img-00020", "img-00025"]


def test_a_quarter_crop_gives_its_original_the_most_votes(
    sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    postings = filled(sample_fingerprints)
    for image_id in TEXTURED:
        assert top_slot(postings, quarter_crop(root, image_id)) == SAMPLE_IDS.index(image_id)


def test_segments_and_their_merges_vote_as_postings_in_ram_do(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sample_fingerprints: dict[str, Fingerprint],
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    queries = [quarter_crop(root, image_id) for image_id in TEXTURED]
    in_ram = filled(sample_fingerprints)
    monkeypatch.setattr(postings_module, "DELTA_LIMIT", 1024)  # a segment every 2-3 images
    in_segments = filled(sample_fingerprints, tmp_path)
    in_segments.seal()
    segments = len(in_segments.segment_names)
    assert 1 < segments <= math.log2(len(in_segments) / 1024) + 2  # merged as they pile up
    assert len(in_segments) == len(in_ram)
    for query in queries:
        assert votes_of(in_segments, query) == votes_of(in_ram, query)


def test_dropped_slots_get_no_votes_and_the_rest_keep_theirs(
    sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    query = quarter_crop(root, "img-00020")
    postings = filled(sample_fingerprints)
    before = votes_of(postings, query)
    gone = SAMPLE_IDS.index("img-00020")
    postings.drop(np.array([gone]))
    after = votes_of(postings, query)
    assert gone in before and gone not in after
    assert after == {slot: n for slot, n in before.items() if slot != gone}


def test_segment_files_reopen_with_the_same_votes(
    tmp_path: Path, sample_fingerprints: dict[str, Fingerprint], sample_catalogue: tuple[Path, Any]
) -> None:
    root, _ = sample_catalogue
    query = quarter_crop(root, "img-00005")
    on_disk = filled(sample_fingerprints, tmp_path)
    names = on_disk.persist(tmp_path)
    assert names and all((tmp_path / name).exists() for name in names)
    stale = tmp_path / "postings-1.npy"  # e.g. merged away since
    np.save(stale, np.zeros(3, np.uint64))
    remove_other_segments(tmp_path, keep=names)
    assert not stale.exists()
    reopened = KeypointPostings.open(tmp_path, names)
    assert votes_of(reopened, query) == votes_of(on_disk, query)
    # an index kept in memory writes all its postings to the snapshot's folder
    in_memory = filled(sample_fingerprints)
    (written,) = in_memory.persist(tmp_path / "elsewhere")
    copy = KeypointPostings.open(tmp_path / "elsewhere", [written])
    assert votes_of(copy, query) == votes_of(in_memory, query)


def keypoints_at(spots: np.ndarray, descriptors: np.ndarray, side: int = 256) -> Keypoints:
    return Keypoints(side, side, spots.astype(np.float32), descriptors)


@pytest.mark.parametrize(("spots", "matched"), [(4, False), (8, True)])
def test_matches_stacked_on_four_spots_prove_nothing(spots: int, matched: bool) -> None:
    # 16 keypoint pairs with identical descriptors, which a shift and a scale relate exactly;
    # on four spots (a corner found at several pyramid levels) any homography fits them
    rng = np.random.default_rng(3)
    descriptors = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    centres = rng.uniform(40, 200, (spots, 2))
    where = centres[np.arange(16) % spots] + rng.uniform(-1, 1, (16, 2))
    query = keypoints_at(where, descriptors)
    target = keypoints_at(where * 0.8 + 20, descriptors)
    assert (verify_local(query, target) is not None) is matched


@pytest.mark.parametrize("seed", range(6))
def test_segments_merge_a_block_at_a_time_into_one_sorted_run(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(postings_module, "BLOCK", 7)
    rng = np.random.default_rng(seed)
    # keys drawn from few values (runs of equal postings) or many; one side may hold a long
    # stretch between two values of the other
    a = np.sort(rng.integers(0, 40 if seed % 2 else 10**6, rng.integers(0, 60)).astype(np.uint64))
    b = np.sort(rng.integers(0, 40 if seed % 2 else 10**6, rng.integers(0, 60)).astype(np.uint64))
    if seed >= 4:
        b = np.sort(np.r_[b, np.full(30, a[len(a) // 2] if len(a) else 5, np.uint64)])
    blocks = list(postings_module.merged_blocks(a, b))
    assert all(len(block) <= 2 * 7 for block in blocks)
    merged = np.concatenate([np.zeros(0, np.uint64), *blocks])
    assert np.array_equal(merged, np.sort(np.r_[a, b]))


def test_merges_and_drops_on_disk_vote_as_in_ram(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sample_fingerprints: dict[str, Fingerprint],
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    monkeypatch.setattr(postings_module, "DELTA_LIMIT", 1024)
    monkeypatch.setattr(postings_module, "BLOCK", 333)
    in_ram, on_disk = filled(sample_fingerprints), filled(sample_fingerprints, tmp_path)
    gone = np.array([SAMPLE_IDS.index("img-00005"), SAMPLE_IDS.index("img-00012")])
    for postings in (in_ram, on_disk):
        postings.drop(gone)
    assert len(on_disk) == len(in_ram)
    for image_id in TEXTURED:
        query = quarter_crop(root, image_id)
        assert votes_of(on_disk, query) == votes_of(in_ram, query)


def test_merged_away_segment_files_go_unless_the_last_snapshot_names_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sample_fingerprints: dict[str, Fingerprint]
) -> None:
    monkeypatch.setattr(postings_module, "DELTA_LIMIT", 1024)

    def files() -> set[str]:
        return {path.name for path in tmp_path.glob("postings-*.npy")}

    postings = filled(sample_fingerprints, tmp_path)  # a dozen seals, as many merges
    assert files() == set(postings.segment_names)
    snapshot = postings.persist(tmp_path)
    add_samples(postings, sample_fingerprints, first_slot=100)  # the same again, as others
    postings.seal()
    assert not set(snapshot) & set(postings.segment_names)  # merged into newer ones...
    assert files() == set(snapshot) | set(postings.segment_names)  # ...but kept for it
    remove_other_segments(tmp_path, keep=postings.persist(tmp_path))
    assert files() == set(postings.segment_names)
