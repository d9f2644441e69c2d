"""A backfill source that reads the catalogue straight from its database.

    --db URL --query SQL [--map FIELD=COLUMN,...]
    columns    SELECT * FROM (query) AS backfill_rows WHERE 1 = 0     names checked first
    count      SELECT COUNT(*) FROM (query) ... [WHERE id > :after]   for the progress bar
    rows       SELECT * FROM (query) ... [WHERE id > :after] ORDER BY id
               through a server-side cursor, a thousand rows at a time

The query is wrapped, not rewritten, so any SELECT the database accepts works, joins and
expressions included (`CONCAT('https://cdn.example/', file) AS image_url`). Rows come in
the order of the column that gives image_id, so an interrupted run resumes after the last
id it had published instead of reading the table again. SQLAlchemy URLs:
`mysql+pymysql://user:pw@host/db` (MySQL, MariaDB), `postgresql+psycopg://...`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backfill_sources import ColumnMap, Row, SourceError, event_data

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ROWS_PER_FETCH = 1000  # rows the cursor holds at once: memory stays flat at any table size
ID_FIELD = "image_id"


@dataclass
class DatabaseSource:
    url: str
    query: str
    columns: ColumnMap = field(default_factory=ColumnMap)
    resumable: bool = True
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                from sqlalchemy import create_engine
                from sqlalchemy.exc import ArgumentError, NoSuchModuleError
            except ImportError as exc:
                raise SourceError(
                    "--db needs SQLAlchemy and a driver: pip install 'lookalike[backfill]'"
                ) from exc
            try:
                self._engine = create_engine(self.url, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise SourceError(
                    f"--db {self.url!r} is not a database URL this installation can use "
                    f"(e.g. mysql+pymysql://user:pw@host/db, postgresql+psycopg://...): {exc}"
                ) from exc
        return self._engine

    @property
    def name(self) -> str:
        shown = self.engine.url.render_as_string(hide_password=True)
        return f"db:{shown}\n{self.query}\n{sorted(self.columns.fields.items())}"

    @property
    def shown_url(self) -> str:
        return str(self.engine.url.render_as_string(hide_password=True))

    @property
    def key_column(self) -> str:
        return self.columns.fields.get(ID_FIELD, ID_FIELD)

    def _wrapped(self, select: str, after: Any, order: bool = False) -> Any:
        from sqlalchemy import text

        quote = self.engine.dialect.identifier_preparer.quote
        key = f"backfill_rows.{quote(self.key_column)}"
        inner = self.query.strip().rstrip(";")
        sql = f"SELECT {select} FROM ({inner}) AS backfill_rows"
        if after is not None:
            sql += f" WHERE {key} > :after"
        if order:
            sql += f" ORDER BY {key}"
        return text(sql).bindparams(after=after) if after is not None else text(sql)

    def _connect(self) -> Connection:
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError

        try:
            return self.engine.connect()
        except DBAPIError as exc:
            reason = _reason(exc)
            raise SourceError(f"cannot reach the database {self.shown_url}: {reason}") from exc
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot reach the database {self.shown_url}: {exc}") from exc

    def check(self) -> list[str]:
        """The query's columns, once the query runs and the mapping fits them."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        with self._connect() as conn:
            inner = self.query.strip().rstrip(";")
            try:
                result = conn.execute(text(f"SELECT * FROM ({inner}) AS backfill_rows WHERE 1 = 0"))
                columns = list(result.keys())
                result.close()
            except SQLAlchemyError as exc:
                raise SourceError(f"the query failed: {_reason(exc)}") from exc
        self.columns.check(columns, "the query")
        if self.key_column not in columns:
            raise SourceError(
                f"the query has no {ID_FIELD!r} column: name one in the query "
                f"(... AS {ID_FIELD}) or map one with --map {ID_FIELD}=COLUMN; "
                f"its columns are: {', '.join(columns)}"
            )
        return columns

    def count(self, after: Any = None) -> int:
        from sqlalchemy.exc import SQLAlchemyError

        self.check()
        with self._connect() as conn:
            try:
                return int(conn.execute(self._wrapped("COUNT(*)", after)).scalar_one())
            except SQLAlchemyError as exc:
                raise SourceError(f"the query failed: {_reason(exc)}") from exc

    def rows(self, after: Any = None) -> Iterator[Row]:
        from sqlalchemy.exc import SQLAlchemyError

        with self._connect() as conn:
            # stream_results: a server-side (unbuffered) cursor; yield_per: fetch in chunks.
            streaming = conn.execution_options(stream_results=True, yield_per=ROWS_PER_FETCH)
            try:
                result = streaming.execute(self._wrapped("*", after, order=True))
                for number, record in enumerate(result.mappings(), 1):
                    key = record[self.key_column]
                    where = f"row {number} ({self.key_column}={key!r})"
                    yield Row(where, event_data(self.columns.apply(dict(record))), key)
            except SQLAlchemyError as exc:
                raise SourceError(f"reading the query's rows failed: {_reason(exc)}") from exc

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _reason(exc: Exception) -> str:
    """The database's own message, without SQLAlchemy's statement dump and link."""
    original = getattr(exc, "orig", None)
    if original is not None:
        args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
        if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
            return f"{args[1]} (error {args[0]})"
        return str(original).strip().splitlines()[0] if str(original).strip() else repr(original)
    return str(exc).splitlines()[0]
