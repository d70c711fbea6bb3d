"""Plain SQL for the hot paths, with the few details that differ between SQLite and PostgreSQL.

Recording 10,000 instances must cost a few microseconds per row (SPEC §10). SQLAlchemy's
per-row parameter processing alone costs more than the database work, so the bulk writes and
the cache lookup hand tuples straight to the driver's ``executemany`` (psycopg pipelines it)
through ``Connection.exec_driver_sql``. On PostgreSQL, COPY and ``unnest(arrays)`` were measured
and gained nothing over that. The SQL text is built only from our own table and column names,
never from values. Everything else in the store uses ordinary SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

Row = tuple[object, ...]


_SECONDS: dict[tuple[int, int, int, int, int, int], str] = {}


def _utc_text(value: datetime) -> str:
    """SQLite text of a UTC clock reading, with the date and time formatted once per second.

    ``isoformat`` costs about a microsecond and a run converts one or two times per instance.
    """
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    prefix = _SECONDS.get(key)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[key] = value.replace(microsecond=0, tzinfo=None).isoformat(" ")
    return f"{prefix}.{value.microsecond:06d}"


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
        out: object
        if self.sqlite and type(value) is datetime and value.tzinfo is UTC:
            out = _utc_text(value)
            self._memo = (value, out)
            return out
        if not isinstance(value, datetime):
            raise TypeError(f"{value!r} given to the store as a timestamp; pass an aware datetime")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware UTC time")
        utc = value.astimezone(UTC)
        out = utc.replace(tzinfo=None).isoformat(" ", "microseconds") if self.sqlite else utc
        self._memo = (value, out)
        return out

    def in_list(self, column: str, values: Sequence[str] | Sequence[int]) -> tuple[str, object]:
        """A ``column IN (...)`` condition over ``values`` with its one parameter.

        One parameter on both databases, so 10,000 identities are one statement: PostgreSQL
        takes a list as an array, SQLite a JSON array read by ``json_each`` (whose probes
        still use the column's index). Values are ints or strings, which JSON keeps exact.
        """
        listed = values if isinstance(values, list) else list(values)
        if self.sqlite:
            return f"{column} IN (SELECT value FROM json_each({self.mark}))", json.dumps(listed)
        return f"{column} = ANY({self.mark})", listed

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
