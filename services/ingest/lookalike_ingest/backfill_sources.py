"""Where a backfill reads the catalogue from: a JSON Lines or CSV export, a folder of images
(with the metadata the files carry) or, in backfill_db.py, a database query.

Each source counts its rows first (so the progress bar has a total) and yields one Row per
image: the event's `data` fields, where it came from (for messages) and, for a source read
in key order, the key to resume after. Reading blocks (files, a database cursor); the
backfill runs it in a thread.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .image_metadata import embedded_metadata

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".tif", ".tiff", ".webp", ".bmp"}
TAG_SEPARATOR = ";"  # tags in one text column or CSV cell: "impressionism;water"


class SourceError(Exception):
    """The source cannot be read at all (unreachable, a failing query, a mapping that
    names a missing column): the message says which and why, for the person running it."""


@dataclass(frozen=True)
class Row:
    where: str  # "line 12", "row 7 (id=42)", a file path: for messages
    data: dict[str, Any]
    key: Any = None  # the resume key, for a source read in key order


class Source(Protocol):
    @property
    def name(self) -> str:
        """Identifies the source for its resume point (no passwords)."""

    @property
    def resumable(self) -> bool:
        """True when rows come in key order, so a run can resume after a key."""

    def count(self, after: Any = None) -> int: ...

    def rows(self, after: Any = None) -> Iterator[Row]: ...


@dataclass(frozen=True)
class ColumnMap:
    """`--map title=name,creator=artist_name`: event field <- source column. A mapped column
    gives its value to the field only; unmapped columns keep their own names."""

    fields: dict[str, str] = field(default_factory=dict)  # field -> column

    @classmethod
    def parse(cls, specs: list[str]) -> ColumnMap:
        fields: dict[str, str] = {}
        for spec in specs:
            for pair in filter(None, (part.strip() for part in spec.split(","))):
                name, eq, column = (part.strip() for part in pair.partition("="))
                if not eq or not name or not column:
                    raise ValueError(f"{pair!r} is not FIELD=COLUMN (e.g. title=name)")
                if name in fields:
                    raise ValueError(f"field {name!r} is mapped twice")
                fields[name] = column
        return cls(fields)

    def missing(self, columns: list[str]) -> list[tuple[str, str]]:
        """(field, column) pairs whose column is not among `columns`."""
        return [(f, c) for f, c in self.fields.items() if c not in columns]

    def check(self, columns: list[str], what: str) -> None:
        missing = self.missing(columns)
        if missing:
            named = ", ".join(f"{column!r} (for {name})" for name, column in missing)
            raise SourceError(
                f"--map names column {named}, which {what} does not have; "
                f"its columns are: {', '.join(columns) or '(none)'}"
            )

    def apply(self, record: Mapping[str, Any]) -> dict[str, Any]:
        mapped = set(self.fields.values())
        data = {k: v for k, v in record.items() if k not in mapped}
        for name, column in self.fields.items():
            if column in record:
                data[name] = record[column]
        return data


def event_data(record: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as event `data`: empty values left out, tags split, database types
    made JSON (an integer id becomes text, a timestamp version its Unix seconds, a date
    year its year)."""
    data: dict[str, Any] = {}
    for name, value in record.items():
        if value is None or value == "":
            continue
        if name == "image_id" and isinstance(value, int):
            value = str(value)
        elif name == "version" and isinstance(value, datetime.datetime):
            value = int(value.timestamp())
        elif name == "year" and isinstance(value, datetime.date):
            value = value.year
        elif name == "tags" and isinstance(value, str):
            value = [tag.strip() for tag in value.split(TAG_SEPARATOR) if tag.strip()]
        data[name] = _json_value(value)
    return data


def _json_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


@dataclass(frozen=True)
class _FileSource:
    """An export in one file, named by its path."""

    path: Path
    columns: ColumnMap = field(default_factory=ColumnMap)
    resumable: bool = False

    @property
    def name(self) -> str:
        return f"file:{self.path.resolve()}"


class JsonLinesSource(_FileSource):
    def count(self, after: Any = None) -> int:
        with self.path.open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())

    def rows(self, after: Any = None) -> Iterator[Row]:
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield Row(f"line {number}", {"_error": f"not JSON: {exc}"})
                    continue
                if not isinstance(record, dict):
                    yield Row(f"line {number}", {"_error": "not a JSON object"})
                    continue
                yield Row(f"line {number}", self.columns.apply(record))


class CsvSource(_FileSource):
    def count(self, after: Any = None) -> int:
        with self.path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            self.columns.check(next(reader, []), str(self.path))
            return sum(1 for _ in reader)

    def rows(self, after: Any = None) -> Iterator[Row]:
        with self.path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            self.columns.check(list(reader.fieldnames or []), str(self.path))
            for number, record in enumerate(reader, 2):
                cells = {k: v for k, v in record.items() if k}
                yield Row(f"line {number}", event_data(self.columns.apply(cells)))


@dataclass(frozen=True)
class FolderSource:
    """Every image file below a folder: its id from its path, its version from its
    modification time (which grows when the file is replaced), its fields from its own
    metadata (image_metadata.py) and, without a title there, a title from its name."""

    root: Path
    resumable: bool = False

    @property
    def name(self) -> str:
        return f"folder:{self.root.resolve()}"

    def _files(self) -> Iterator[Path]:
        return iter(sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))

    def count(self, after: Any = None) -> int:
        return sum(1 for _ in self._files())

    def rows(self, after: Any = None) -> Iterator[Row]:
        for path in self._files():
            relative = path.relative_to(self.root).with_suffix("")
            image_id = "-".join(relative.parts).replace(" ", "_")[:200]
            data: dict[str, Any] = {
                "image_id": image_id,
                "version": int(path.stat().st_mtime),
                "image_url": path.resolve().as_uri(),
                "title": path.stem.replace("_", " "),
            }
            data.update(embedded_metadata(path))
            yield Row(str(path), data)


def file_source(path: Path, columns: ColumnMap) -> Source:
    if path.is_dir():
        if columns.fields:
            raise SourceError("--map applies to exports and queries, not to a folder of images")
        return FolderSource(path)
    if path.suffix.lower() == ".csv":
        return CsvSource(path, columns)
    return JsonLinesSource(path, columns)
