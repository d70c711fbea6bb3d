"""Plain SQL for the hot paths, with the few details that differ between SQLite and PostgreSQL.

Recording 10,000 instances must cost a few microseconds per row (SPEC §10). SQLAlchemy's
per-row parameter processing alone costs more than the database work, so the bulk writes and
the cache lookup hand tuples straight to the driver's ``executemany`` (psycopg pipelines it)
through ``Connection.exec_driver_sql``. On PostgreSQL, COPY and ``unnest(arrays)`` were measured
and gained nothing over that. The SQL text is built only from our own table and column names,
never from values. Everything else in the store uses ordinary SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

Row = tuple[object, ...]

# SQLite before 3.32 allows 999 parameters per statement.
_SQLITE_CHUNK = 900


class BulkSql:
    """SQL fragments and value conversions for one dialect (``sqlite`` or ``postgresql``)."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.true = "1" if self.sqlite else "true"
        self.false = "0" if self.sqlite else "false"
        # SQLite write transactions already hold the database write lock (BEGIN IMMEDIATE).
        self.for_update = "" if self.sqlite else " FOR UPDATE"
        # (input, output) of the last conversion; one attribute, so threads never see a mix.
        self._memo: tuple[datetime | None, object] = (None, None)

    def insert_many(
        self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Row]
    ) -> None:
        if rows:
            conn.exec_driver_sql(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({self.marks(len(columns))})",
                rows,
            )

    def update_instances(
        self, conn: Connection, columns: Sequence[str], rows: Sequence[Row]
    ) -> None:
        """Compare-and-set UPDATEs of instances that all set the same ``columns``.

        Each row is ``(new_state, updated_at, *column values, id, expected_old_state)``.
        """
        m = self.mark
        sets = "".join(f", {name} = {m}" for name in columns)
        conn.exec_driver_sql(
            f"UPDATE instances SET state = {m}, updated_at = {m}{sets} "
            f"WHERE id = {m} AND state = {m}",
            rows,
        )

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def ts(self, value: object) -> object:
        """A timestamp parameter: aware datetime for PostgreSQL, naive-UTC text for SQLite.

        The text matches what SQLAlchemy's SQLite DateTime writes, so rows written here and by
        Core queries compare and sort alike. Batches share one timestamp object, so the last
        conversion is remembered.
        """
        if value is None:
            return None
        memo = self._memo
        if value is memo[0]:
            return memo[1]
        if not isinstance(value, datetime):
            raise TypeError(f"{value!r} given to the store as a timestamp; pass an aware datetime")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware UTC time")
        utc = value.astimezone(UTC)
        out: object = (
            utc.replace(tzinfo=None).isoformat(" ", "microseconds") if self.sqlite else utc
        )
        self._memo = (value, out)
        return out

    def in_lists(
        self, column: str, values: Sequence[object]
    ) -> Iterator[tuple[str, tuple[object, ...]]]:
        """``column IN (...)`` conditions covering ``values``, with their parameters.

        PostgreSQL takes the whole list as one array parameter; SQLite needs one placeholder
        per value, so the list is cut into chunks that fit every SQLite build.
        """
        if not values:
            return
        if not self.sqlite:
            yield f"{column} = ANY({self.mark})", (list(values),)
            return
        for start in range(0, len(values), _SQLITE_CHUNK):
            chunk = tuple(values[start : start + _SQLITE_CHUNK])
            yield f"{column} IN ({self.marks(len(chunk))})", chunk

    def allocate_ids(self, conn: Connection, table: str, count: int) -> list[int]:
        """Reserve ``count`` primary keys of ``table`` for rows inserted in this transaction.

        Knowing the ids before inserting lets instances and their transitions go in as two
        plain ``executemany`` calls and gives the ids back in input order, which RETURNING
        with executemany cannot promise on every driver. SQLite writers hold the write lock,
        so the next ids after the current maximum are ours; PostgreSQL draws from the
        column's sequence.
        """
        if count == 0:
            return []
        if self.sqlite:
            top = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
            return list(range(int(top) + 1, int(top) + 1 + count))
        rows = conn.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) "
            f"FROM generate_series(1, {self.mark})",
            (count,),
        )
        return [int(row[0]) for row in rows]
