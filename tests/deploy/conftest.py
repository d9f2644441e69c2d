"""promtool and a real Prometheus for the deploy checks: from PATH, else from the files of
Debian's prometheus package that scripts/test.sh unpacks (never installs) into
.cache/debian/prometheus. Missing is a failure, not a skip: these checks must run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

UNPACKED = Path(__file__).resolve().parents[2] / ".cache" / "debian" / "prometheus" / "usr" / "bin"


def prometheus_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(UNPACKED))
    if found is None:
        pytest.fail(
            f"{name} is not on PATH nor in {UNPACKED}. Run the tests with scripts/test.sh, "
            "which unpacks promtool and prometheus from Debian's prometheus package (without "
            "installing it or its service), or put Prometheus' release binaries on PATH."
        )
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return prometheus_tool("promtool")


@pytest.fixture(scope="session")
def prometheus() -> str:
    return prometheus_tool("prometheus")
