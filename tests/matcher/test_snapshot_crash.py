"""A snapshot is all or nothing: a crash between writing its arrays and its manifest leaves
the previous snapshot whole, and the matcher restarts from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike_matcher import snapshot
from lookalike_matcher.index import FingerprintIndex
from lookalike_matcher.snapshot import empty_state, load_snapshot, save_snapshot
from lookalike_shared.contracts import Fingerprint
from tests.fixtures.matcher import SAMPLE_IDS


def test_a_crash_before_the_manifest_leaves_the_previous_snapshot_whole(
    tmp_path: Path, sample_fingerprints: dict[str, Fingerprint], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = FingerprintIndex(empty_state(tmp_path))
    first, later = SAMPLE_IDS[:10], SAMPLE_IDS[10:20]
    for image_id in first:
        index.upsert(image_id, 1, sample_fingerprints[image_id])
    save_snapshot(index.state, tmp_path, "fingerprints", [0], {0: 10})
    for image_id in later:
        index.upsert(image_id, 1, sample_fingerprints[image_id])

    def power_cut(path: Path, data: bytes) -> None:
        raise OSError("the machine lost power")

    monkeypatch.setattr(snapshot, "_write_atomically", power_cut)
    with pytest.raises(OSError):
        save_snapshot(index.state, tmp_path, "fingerprints", [0], {0: 20})
    monkeypatch.undo()
    index.keypoints.close()

    restored = load_snapshot(tmp_path, "fingerprints", [0])
    assert restored is not None
    assert restored.offsets == {0: 10}  # the records after it will be replayed again
    assert sorted(i for i in SAMPLE_IDS if FingerprintIndex(restored.state).get(i)) == first
    best = FingerprintIndex(restored.state).search(sample_fingerprints["img-00003"])[0]
    assert (best.image_id, best.match) == ("img-00003", "duplicate")
