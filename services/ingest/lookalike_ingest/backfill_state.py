"""What a backfill published and what became of it, in one SQLite file (durable, resumable):

    published  image id -> digest of the data last published, its version, where the
               broker put it (partition, offset), the run, and its outcome once the
               pipeline is done with it (NULL while pending: indexed, unchanged, missing,
               dead:<reason>)
    runs       each run's topic, start time and the dead-letter topic's end at its start
    resume     per source read in key order: the key of the last row read up to which
               every publish was acknowledged

A row is recorded only once the broker acknowledged it, so nothing recorded is published
again, and nothing unacknowledged is skipped. A state file from before the follow-through
(image_id and digest only) is upgraded in place; its rows are simply not followed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PENDING = "outcome IS NULL AND kafka_partition IS NOT NULL"
_COLUMNS = {
    "version": "INTEGER",
    "kafka_partition": "INTEGER",
    "kafka_offset": "INTEGER",
    "run": "INTEGER",
    "outcome": "TEXT",
}


@dataclass(frozen=True)
class Run:
    run: int
    started: float  # Unix seconds, on this machine's clock
    dlq_start: dict[int, int]  # dead-letter partition -> its end offset when the run began


@dataclass(frozen=True)
class PendingEvent:
    image_id: str
    version: int
    run: int


class PublishedState:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS published (image_id TEXT PRIMARY KEY, digest TEXT)"
        )
        have = {row[1] for row in self.db.execute("PRAGMA table_info(published)")}
        for name, kind in _COLUMNS.items():
            if name not in have:
                self.db.execute(f'ALTER TABLE published ADD COLUMN "{name}" {kind}')
        self.db.executescript(
            f"""
            CREATE INDEX IF NOT EXISTS published_pending
                ON published (run, kafka_partition, kafka_offset) WHERE {PENDING};
            CREATE TABLE IF NOT EXISTS runs (
                run INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT, started REAL,
                dlq_start TEXT);
            CREATE TABLE IF NOT EXISTS resume (source TEXT PRIMARY KEY, after TEXT);
            """
        )
        self.db.commit()

    # --- publishing ------------------------------------------------------------------

    def begin_run(self, topic: str) -> Run:
        started = time.time()
        cursor = self.db.execute(
            "INSERT INTO runs (topic, started, dlq_start) VALUES (?, ?, '{}')", (topic, started)
        )
        self.db.commit()
        assert cursor.lastrowid is not None
        return Run(cursor.lastrowid, started, {})

    def set_dlq_start(self, run: Run, offsets: dict[int, int]) -> Run:
        self.db.execute(
            "UPDATE runs SET dlq_start = ? WHERE run = ?", (json.dumps(offsets), run.run)
        )
        self.db.commit()
        return Run(run.run, run.started, offsets)

    def unchanged(self, image_id: str, digest: str) -> bool:
        row = self.db.execute(
            "SELECT digest FROM published WHERE image_id = ?", (image_id,)
        ).fetchone()
        return row is not None and row[0] == digest

    def record(
        self, image_id: str, digest: str, version: int, partition: int, offset: int, run: int
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO published (image_id, digest, version, kafka_partition, "
            "kafka_offset, run, outcome) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (image_id, digest, version, partition, offset, run),
        )

    def resume_point(self, source: str) -> Any:
        row = self.db.execute("SELECT after FROM resume WHERE source = ?", (source,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_resume_point(self, source: str, after: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO resume VALUES (?, ?)", (source, json.dumps(after, default=str))
        )

    def clear_resume_point(self, source: str) -> None:
        """The source was read to its end: the next run reads it all again."""
        self.db.execute("DELETE FROM resume WHERE source = ?", (source,))

    # --- following -------------------------------------------------------------------

    def runs_with_pending(self, topic: str) -> list[Run]:
        rows = self.db.execute(
            f"SELECT run, started, dlq_start FROM runs WHERE topic = ? AND run IN "
            f"(SELECT DISTINCT run FROM published WHERE {PENDING}) ORDER BY run",
            (topic,),
        ).fetchall()
        return [
            Run(run, started, {int(p): o for p, o in json.loads(starts or "{}").items()})
            for run, started, starts in rows
        ]

    def pending_count(self, runs: list[int]) -> int:
        marks = ",".join("?" * len(runs))
        query = f"SELECT COUNT(*) FROM published WHERE {PENDING} AND run IN ({marks})"
        return int(self.db.execute(query, runs).fetchone()[0]) if runs else 0

    def pending_below(
        self, runs: list[int], partition: int, committed: int, limit: int
    ) -> list[PendingEvent]:
        """Pending events the consumer group has passed (their offset is below its commit)."""
        marks = ",".join("?" * len(runs))
        rows = self.db.execute(
            f"SELECT image_id, version, run FROM published WHERE {PENDING} "
            f"AND run IN ({marks}) AND kafka_partition = ? AND kafka_offset < ? LIMIT ?",
            (*runs, partition, committed, limit),
        ).fetchall()
        return [PendingEvent(*row) for row in rows]

    def pending_partitions(self, runs: list[int]) -> list[int]:
        marks = ",".join("?" * len(runs))
        rows = self.db.execute(
            f"SELECT DISTINCT kafka_partition FROM published WHERE {PENDING} AND run IN ({marks})",
            runs,
        ).fetchall()
        return sorted(row[0] for row in rows)

    def settle(self, image_id: str, outcome: str) -> None:
        self.db.execute("UPDATE published SET outcome = ? WHERE image_id = ?", (outcome, image_id))

    def settle_dead(self, runs: list[int], partition: int, offset: int, reason: str) -> bool:
        """Mark the pending event at (partition, offset) dead-lettered; False if no pending
        event of these runs is there (another producer's event, or one already settled)."""
        marks = ",".join("?" * len(runs))
        cursor = self.db.execute(
            f"UPDATE published SET outcome = ? WHERE {PENDING} AND run IN ({marks}) "
            "AND kafka_partition = ? AND kafka_offset = ?",
            (f"dead:{reason}", *runs, partition, offset),
        )
        return cursor.rowcount > 0

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()
