"""The gateway fuzzed from its own OpenAPI document (schemathesis): requests generated from
every operation's schema, valid and not, and none may get a 5xx. It runs the real gateway
app on a free port against the session's backends and indexed catalogue; schemathesis runs
as its own process (its client is synchronous), bounded in examples and time."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.fixtures.gateway import IndexedCatalogue

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100  # per operation and phase: about a minute of requests
MAX_SECONDS = 150  # a bound, should the run be slow: a couple of minutes at most
SEED = 20261201  # the same requests every run; change it to explore further


async def test_no_request_generated_from_the_openapi_document_gets_a_5xx(
    indexed_catalogue: IndexedCatalogue, tmp_path: Path
) -> None:
    report = tmp_path / "schemathesis.json"
    # A fetch of a generated image_url fails fast offline; the deadline bounds it anyway.
    async with indexed_catalogue.another_gateway(fetch_timeout_seconds=1.0) as gateway:
        fuzz = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{gateway.url}/openapi.json",
            "--checks=not_a_server_error",
            f"--max-examples={MAX_EXAMPLES}",
            f"--seed={SEED}",
            # One worker: with two threads, schemathesis' test generation sometimes dies in
            # CPython 3.11's ast.parse ("AST constructor recursion depth mismatch"), a
            # fuzzer crash that says nothing about the gateway.
            "--workers=1",
            "--request-timeout=30",
            "--phases=examples,coverage,fuzzing",
            "--suppress-health-check=all",
            "--report=json",
            f"--report-json-path={report}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,  # its example database, not in the work tree
        )
        try:
            output, _ = await asyncio.wait_for(fuzz.communicate(), MAX_SECONDS)
        except TimeoutError:
            fuzz.kill()
            raise
    text = output.decode(errors="replace")
    print(text[-3000:])  # the totals, in the test's output
    if report.exists():
        print(json.dumps(_totals(json.loads(report.read_text())), indent=1))

    assert fuzz.returncode == 0, text[-8000:]


def _totals(report: dict[str, object]) -> dict[str, object]:
    """The run's counts from schemathesis' JSON report (its shape varies by version: keep
    the numeric fields found at the top two levels)."""
    out: dict[str, object] = {}
    for key, value in report.items():
        if isinstance(value, int | float):
            out[key] = value
        elif isinstance(value, dict):
            nested = {k: v for k, v in value.items() if isinstance(v, int | float)}
            if nested:
                out[key] = nested
    return out
