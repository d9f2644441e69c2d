"""Fixtures shared by every test area, registered once here.

`backends` starts the embedded Kafka/Elasticsearch stand-in (noida-db) on free loopback
ports for the whole session; with LOOKALIKE_TEST_BACKEND=containers it starts real Kafka
and Elasticsearch through testcontainers instead (needs Docker). Each test gets its own
topics and index alias (`lookalike_settings`), so tests never see each other's data.
"""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.backends",
    "tests.fixtures.services",
    "tests.fixtures.images",
    "tests.fixtures.gateway",
    "tests.fixtures.ingest",
    "tests.fixtures.matcher",
    "tests.fixtures.mariadb",
    "tests.fixtures.library",
]
