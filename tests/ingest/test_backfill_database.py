"""The backfill reading the catalogue straight from a real MariaDB server."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lookalike_ingest.backfill import BackfillOptions, backfill, main
from lookalike_ingest.backfill_db import DatabaseSource
from lookalike_ingest.backfill_sources import ColumnMap
from lookalike_shared.config import CommonSettings
from lookalike_stack.processes import free_port
from tests.fixtures.ingest import read_topic
from tests.fixtures.mariadb import PASSWORD, MariaDB
from tests.fixtures.services import wait_until

ARTWORKS = """
CREATE TABLE artworks (
    id INT PRIMARY KEY, name VARCHAR(200), artist_name VARCHAR(200), made DATE,
    keywords TEXT, url TEXT, updated_at DATETIME, medium VARCHAR(100), rev VARCHAR(20))
"""
MAPPING = "image_id=id,title=name,creator=artist_name,year=made,tags=keywords,image_url=url"


def create_artworks(mariadb: MariaDB, database: str, rows: list[tuple[Any, ...]]) -> None:
    conn = mariadb.connect(database)
    with conn.cursor() as cursor:
        cursor.execute(ARTWORKS)
        cursor.executemany("INSERT INTO artworks VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    conn.close()


def artwork(n: int, **overrides: Any) -> tuple[Any, ...]:
    row = {
        "id": n,
        "name": f"Work {n}",
        "artist_name": "Hokusai",
        "made": datetime.date(1830, 1, 1),
        "keywords": "wave;print",
        "url": f"https://cdn.example/{n}.jpg",
        "updated_at": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "medium": "woodblock",
        "rev": "1",
        **overrides,
    }
    return tuple(row.values())


def env_for(settings: CommonSettings) -> dict[str, str]:
    return {
        "LOOKALIKE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOOKALIKE_KAFKA_IDEMPOTENCE": str(settings.kafka_idempotence).lower(),
        "LOOKALIKE_KAFKA_IDLE_REST_MS": str(settings.kafka_idle_rest_ms),
        "LOOKALIKE_ES_URL": settings.es_url,
        "LOOKALIKE_CATALOGUE_TOPIC": settings.catalogue_topic,
        "LOOKALIKE_ES_ALIAS": settings.es_alias,
    }


def published(settings: CommonSettings) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(settings.kafka_bootstrap, settings.catalogue_topic))
    return [json.loads(r.value)["data"] for r in records]


def test_database_rows_become_events_through_the_column_mapping(
    mariadb: MariaDB,
    catalogue_db: str,
    lookalike_settings: CommonSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_artworks(mariadb, catalogue_db, [artwork(2), artwork(1, keywords=None, made=None)])
    for name, value in env_for(lookalike_settings).items():
        monkeypatch.setenv(name, value)
    code = main(
        [
            "--db", mariadb.url(catalogue_db), "--no-follow", "--no-progress",
            "--query", "SELECT id, name, artist_name, made, keywords, url, updated_at, medium "
            "FROM artworks",
            "--map", MAPPING, "--map", "version=updated_at",
            "--state", str(tmp_path / "state.sqlite"),
        ]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out
    events = {data["image_id"]: data for data in published(lookalike_settings)}
    assert events["2"] == {
        "image_id": "2",
        "version": int(datetime.datetime(2026, 1, 2, 3, 4, 5).timestamp()),
        "image_url": "https://cdn.example/2.jpg",
        "title": "Work 2",
        "creator": "Hokusai",
        "year": 1830,
        "tags": ["wave", "print"],
        "medium": "woodblock",  # a column named like a field needs no mapping
    }
    assert "tags" not in events["1"] or events["1"]["tags"] == []
    assert "year" not in events["1"]
    assert "published 2," in out.out
    assert PASSWORD not in out.out + out.err


def test_reading_a_large_query_keeps_memory_flat(mariadb: MariaDB, catalogue_db: str) -> None:
    """A million rows must not sit in memory: the rows come through a server-side cursor,
    so reading 50,000 rows of 2 KB each (100 MB) holds only a few fetches at a time."""
    source = DatabaseSource(
        mariadb.url(catalogue_db),
        "SELECT seq AS image_id, REPEAT('x', 2000) AS note FROM seq_1_to_50000",
    )
    tracemalloc.start()
    try:
        count = 0
        for row in source.rows():
            count += 1
            assert len(row.data["note"]) == 2000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert count == 50_000
    assert peak < 25_000_000, f"reading held {peak / 1e6:.0f} MB at once"


def test_an_unreachable_database_or_failing_query_is_a_clear_message(
    mariadb: MariaDB, catalogue_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_artworks(mariadb, catalogue_db, [artwork(1)])
    state = ["--state", str(tmp_path / "s.sqlite"), "--no-follow", "--no-progress"]
    nobody = f"mysql+pymysql://lookalike:{PASSWORD}@127.0.0.1:{free_port()}/{catalogue_db}"
    cases = {
        "unreachable": (["--db", nobody, "--query", "SELECT * FROM artworks"], "cannot reach"),
        "bad query": (
            ["--db", mariadb.url(catalogue_db), "--query", "SELECT nope FROM artworks"],
            "the query failed: Unknown column 'nope'",
        ),
        "missing column": (
            [
                "--db", mariadb.url(catalogue_db), "--query", "SELECT * FROM artworks",
                "--map", "image_id=id,creator=artist",
            ],
            "--map names column 'artist' (for creator), which the query does not have",
        ),
        "no id": (
            ["--db", mariadb.url(catalogue_db), "--query", "SELECT name FROM artworks"],
            "the query has no 'image_id' column",
        ),
    }  # fmt: skip
    for name, (args, expected) in cases.items():
        assert main([*args, *state]) == 2, name
        err = capsys.readouterr().err
        assert expected in err, (name, err)
        assert "Traceback" not in err and PASSWORD not in err, (name, err)


def test_bad_rows_are_named_and_the_good_ones_go_in_once(
    mariadb: MariaDB,
    catalogue_db: str,
    lookalike_settings: CommonSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_artworks(
        mariadb,
        catalogue_db,
        [artwork(1), artwork(2, rev="two"), artwork(3, name=None), artwork(4), artwork(5)],
    )
    conn = mariadb.connect(catalogue_db)
    with conn.cursor() as cursor:  # an id no Kafka key or URL may carry
        cursor.execute("CREATE VIEW odd_ids AS SELECT CONCAT('has space ', id) AS id FROM artworks")
    conn.close()
    for name, value in env_for(lookalike_settings).items():
        monkeypatch.setenv(name, value)
    query = (
        "SELECT CAST(id AS CHAR) AS id, name, url, rev FROM artworks WHERE id <> 3 "
        "UNION ALL SELECT id, 'odd', 'https://cdn.example/o.jpg', '1' FROM odd_ids WHERE "
        "id = 'has space 3'"
    )
    argv = [
        "--db", mariadb.url(catalogue_db), "--query", query, "--no-follow", "--no-progress",
        "--map", "image_id=id,title=name,image_url=url,version=rev",
        "--state", str(tmp_path / "state.sqlite"),
    ]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "id='2'" in err and "version" in err and "'two'" in err
    assert "id='has space 3'" in err and "image_id" in err
    assert "Traceback" not in err
    assert sorted(d["image_id"] for d in published(lookalike_settings)) == ["1", "4", "5"]

    assert main(argv) == 1  # the same two rows are still bad; nothing is published twice
    assert "published 0, unchanged 3, invalid 2" in capsys.readouterr().out
    assert sorted(d["image_id"] for d in published(lookalike_settings)) == ["1", "4", "5"]


async def test_an_interrupted_backfill_resumes_after_the_last_row_published(
    mariadb: MariaDB, catalogue_db: str, lookalike_settings: CommonSettings, tmp_path: Path
) -> None:
    rows = 300
    create_artworks(mariadb, catalogue_db, [artwork(n) for n in range(1, rows + 1)])
    argv = [
        sys.executable, "-m", "lookalike_ingest.backfill", "--no-follow", "--no-progress",
        "--db", mariadb.url(catalogue_db), "--query", "SELECT * FROM artworks",
        "--map", MAPPING, "--map", "version=rev", "--state", str(tmp_path / "state.sqlite"),
    ]  # fmt: skip
    env = {**os.environ, **env_for(lookalike_settings)}
    first = await asyncio.create_subprocess_exec(
        *argv, "--rate", "100", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )

    async def some_published() -> bool:
        topic = lookalike_settings.catalogue_topic
        return len(await read_topic(lookalike_settings.kafka_bootstrap, topic)) >= 40

    try:
        await wait_until(some_published, 60, "the first events")
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 130, err.decode()
    assert b"run the same command again to resume" in out
    topic = lookalike_settings.catalogue_topic
    before = len(await read_topic(lookalike_settings.kafka_bootstrap, topic))
    assert before < rows

    second = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = (text.decode() for text in await asyncio.wait_for(second.communicate(), 120))
    assert second.returncode == 0, stderr
    # Resumed after the last id published, not by reading every row again and skipping.
    assert "resumed after image id" in stdout
    assert f"published {rows - before}, unchanged 0," in stdout
    ids = Counter(
        json.loads(r.value)["data"]["image_id"]
        for r in await read_topic(lookalike_settings.kafka_bootstrap, topic)
    )
    assert sorted(ids, key=int) == [str(n) for n in range(1, rows + 1)]
    assert set(ids.values()) == {1}, "an event was published twice"


async def test_a_database_backfill_reads_the_whole_query_again_once_it_completed(
    mariadb: MariaDB, catalogue_db: str, lookalike_settings: CommonSettings, tmp_path: Path
) -> None:
    """The resume point is for an interrupted run only: a later run sees changed rows."""
    create_artworks(mariadb, catalogue_db, [artwork(1), artwork(2)])
    source = DatabaseSource(
        mariadb.url(catalogue_db),
        "SELECT * FROM artworks",
        ColumnMap.parse([MAPPING, "version=rev"]),
    )
    options = BackfillOptions(progress=False)
    state = tmp_path / "state.sqlite"
    assert (await backfill(lookalike_settings, source, state, options)).published == 2
    conn = mariadb.connect(catalogue_db)
    with conn.cursor() as cursor:
        cursor.execute("UPDATE artworks SET name = 'Retitled', rev = '2' WHERE id = 1")
    conn.close()
    again = await backfill(lookalike_settings, source, state, options)
    assert (again.published, again.unchanged, again.resumed_after) == (1, 1, None)
