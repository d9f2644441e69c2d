from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lookalike_shared.analysis import analyse_bytes
from lookalike_shared.embedding import (
    EMBEDDING_DIMS,
    MODEL_FILE,
    PROJECTION_FILE,
    ModelFileError,
    ModelFiles,
    verify_model_files,
)
from lookalike_shared.search_index import stored_vector
from tests.fixtures.images import resized_copy, sample_path


def test_shipped_model_files_have_their_recorded_hashes() -> None:
    verify_model_files()  # raises ModelFileError otherwise


def test_a_corrupt_model_file_is_refused_by_name(tmp_path: Path) -> None:
    broken = tmp_path / "efficientnet-lite0.onnx"
    shutil.copyfile(MODEL_FILE, broken)
    with broken.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelFileError, match=r"efficientnet-lite0\.onnx.*corrupt"):
        verify_model_files(ModelFiles(model=broken))


def test_a_missing_model_file_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"projection-256\.npz is missing"):
        verify_model_files(ModelFiles(projection=tmp_path / PROJECTION_FILE.name))


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_resized_copy_embeds_close_and_an_unrelated_image_far(
    sample_catalogue: tuple[Path, Any],
) -> None:
    root, _ = sample_catalogue
    cat = sample_path(root, "img-00003")
    original = analyse_bytes(cat.read_bytes())
    copy = analyse_bytes(resized_copy(cat, scale=0.4, quality=60))
    coffee = analyse_bytes(sample_path(root, "img-00004").read_bytes())
    rocket = analyse_bytes(sample_path(root, "img-00008").read_bytes())
    assert len(original.embedding) == EMBEDDING_DIMS
    assert cosine(original.embedding, copy.embedding) > 0.9
    for other in (coffee, rocket):
        assert cosine(original.embedding, other.embedding) < 0.5


def test_subject_words_name_what_the_photograph_shows(sample_catalogue: tuple[Path, Any]) -> None:
    root, _ = sample_catalogue
    cat = analyse_bytes(sample_path(root, "img-00003").read_bytes())
    coffee = analyse_bytes(sample_path(root, "img-00004").read_bytes())
    assert any("cat" in s.lower() or "mau" in s.lower() for s in cat.subjects)
    assert "espresso" in coffee.subjects


def test_a_flat_grey_image_gets_no_subject_words(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("RGB", (300, 200), (128, 128, 128)).save(path)
    assert analyse_bytes(path.read_bytes()).subjects == []


def _stored_cosine(a: list[float], b: list[float]) -> float:
    as_bytes = [np.frombuffer(bytes.fromhex(stored_vector(v)), dtype=np.int8) for v in (a, b)]
    return cosine(*(x.astype(np.float64).tolist() for x in as_bytes))


def test_the_stored_int8_vector_keeps_every_similarity(
    sample_catalogue: tuple[Path, Any],
) -> None:
    """The index holds int8 bytes, not the floats: each pair of images is as alike in the
    stored form as in the computed one, so look-alikes rank the same."""
    root, _ = sample_catalogue
    ids = ["img-00003", "img-00004", "img-00008", "img-00012"]
    vectors = [analyse_bytes(sample_path(root, i).read_bytes()).embedding for i in ids]
    for n, a in enumerate(vectors):
        assert len(stored_vector(a)) == 2 * EMBEDDING_DIMS
        for b in vectors[n + 1 :]:
            assert abs(_stored_cosine(a, b) - cosine(a, b)) < 0.01
