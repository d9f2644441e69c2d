"""A service whose model file is missing or corrupt refuses to start, saying which file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike_shared.embedding import MODEL_FILE, PROJECTION_FILE


def _start(service: str, model_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOOKALIKE_MODEL_DIR": str(model_dir)}
    # Nothing to connect to: a service that got past its model check would hang or fail
    # later on the network, not exit at once with code 2.
    env["LOOKALIKE_KAFKA_BOOTSTRAP"] = "127.0.0.1:9"
    env["LOOKALIKE_ES_URL"] = "http://127.0.0.1:9"
    return subprocess.run(
        [sys.executable, "-m", service], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("service", ["lookalike_gateway", "lookalike_ingest"])
def test_a_service_with_a_corrupt_model_file_stops_at_start_naming_it(
    service: str, tmp_path: Path
) -> None:
    shutil.copyfile(PROJECTION_FILE, tmp_path / PROJECTION_FILE.name)
    broken = tmp_path / MODEL_FILE.name
    broken.write_bytes(MODEL_FILE.read_bytes()[: 1 << 20])  # a download cut short

    result = _start(service, tmp_path)

    assert result.returncode == 2
    assert f"{service}: cannot start" in result.stderr
    assert "efficientnet-lite0.onnx is corrupt" in result.stderr


def test_a_service_with_a_missing_model_file_stops_at_start_naming_it(tmp_path: Path) -> None:
    shutil.copyfile(MODEL_FILE, tmp_path / MODEL_FILE.name)

    result = _start("lookalike_gateway", tmp_path)

    assert result.returncode == 2
    assert "projection-256.npz is missing" in result.stderr
