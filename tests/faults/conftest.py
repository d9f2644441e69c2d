"""Kafka and Elasticsearch stand-ins in separate processes, so one can be frozen alone."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lookalike_shared.config import CommonSettings
from lookalike_stack.embedded import start_embedded_service
from lookalike_stack.processes import Child, Supervisor, free_port


@dataclass
class SplitBackends:
    kafka: Child
    elasticsearch: Child
    settings: CommonSettings


@pytest.fixture(scope="module")
def split_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SplitBackends]:
    if os.environ.get("LOOKALIKE_TEST_BACKEND", "embedded") != "embedded":
        pytest.skip("fault injection freezes the embedded stand-ins' processes")
    root: Path = tmp_path_factory.mktemp("split")
    supervisor = Supervisor(root / "logs")
    kafka_port, es_port = free_port(), free_port()
    try:
        kafka = start_embedded_service(supervisor, "kafka", root / "kafka", kafka_port)
        es = start_embedded_service(supervisor, "elasticsearch", root / "es", es_port)
        yield SplitBackends(
            kafka,
            es,
            CommonSettings(
                kafka_bootstrap=f"127.0.0.1:{kafka_port}", es_url=f"http://127.0.0.1:{es_port}"
            ),
        )
    finally:
        supervisor.stop_all()


@pytest.fixture
def fault_settings(split_backends: SplitBackends) -> CommonSettings:
    run = uuid.uuid4().hex[:10]
    return split_backends.settings.model_copy(
        update={
            "catalogue_topic": f"catalogue.images.{run}",
            "fingerprint_topic": f"lookalike.fingerprints.{run}",
            "es_alias": f"lookalike-images-{run}",
        }
    )
