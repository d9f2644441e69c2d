"""How a backfill turns a source's columns into an event's data fields."""

from __future__ import annotations

import datetime
import decimal
from pathlib import Path

import pytest

from lookalike_ingest.backfill import main
from lookalike_ingest.backfill_sources import ColumnMap, CsvSource, SourceError, event_data


def test_a_mapping_renames_columns_and_keeps_the_others() -> None:
    columns = ColumnMap.parse(["image_id=id,title=name", " creator = artist_name "])
    record = {"id": 7, "name": "Waves", "artist_name": "Hokusai", "medium": "print"}
    assert columns.apply(record) == {
        "image_id": 7,
        "title": "Waves",
        "creator": "Hokusai",
        "medium": "print",
    }


@pytest.mark.parametrize("spec", ["title", "title=", "=name", "title=a,title=b"])
def test_a_mapping_that_is_not_field_equals_column_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        ColumnMap.parse([spec])


def test_database_values_become_event_json() -> None:
    updated = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)
    data = event_data(
        {
            "image_id": 42,
            "version": updated,
            "year": datetime.date(1889, 6, 1),
            "tags": "night; stars ;",
            "price": decimal.Decimal("12.50"),
            "count": decimal.Decimal("3"),
            "note": None,
            "empty": "",
            "raw": b"bytes",
        }
    )
    assert data == {
        "image_id": "42",
        "version": int(updated.timestamp()),
        "year": 1889,
        "tags": ["night", "stars"],
        "price": 12.5,
        "count": 3,
        "raw": "bytes",
    }


def test_a_csv_mapping_naming_a_missing_column_is_one_clear_message(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("id,name\n1,Waves\n")
    source = CsvSource(export, ColumnMap.parse(["image_id=id,creator=artist"]))
    with pytest.raises(SourceError, match=r"'artist' \(for creator\).*columns are: id, name"):
        source.count()


def test_the_command_refuses_a_bad_mapping_or_a_half_given_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text("")
    for argv, expected in (
        ([str(export), "--map", "title"], "is not FIELD=COLUMN"),
        (["--db", "sqlite://"], "needs both --db URL and --query SQL"),
        ([str(tmp_path), "--map", "title=name"], "not to a folder of images"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert expected in capsys.readouterr().err
