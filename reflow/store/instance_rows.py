"""Reading instance rows in bulk, as ``InstanceRecord``s.

A driver step reads every instance in flight, and a status document or a TUI page thousands;
through SQLAlchemy's per-value result processing (text to datetime by regular expression, ints
to bools, one Python call per value) a row cost about 25 µs, so a 20,000-element array spent
half of each step reading itself. The columns are therefore selected without result types and
the few that need it are converted here, and a list of ids is bound as one parameter instead of
one per id (whose statement SQLAlchemy rebuilt for every query).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, func, literal, null, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.types import NullType

from reflow.store.models import InstanceRow, as_utc
from reflow.store.records import ActiveInstance, InstanceRecord

_NAMES = [f.name for f in fields(InstanceRecord)]
_TABLE = InstanceRow.__table__.c
# Selected as they are stored: no result processing (see the module docstring).
INSTANCE_COLUMNS: list[ColumnElement[Any]] = [
    type_coerce(_TABLE[name], NullType()).label(name) for name in _NAMES
]
# ``history`` and a driver step leave out the values: a gather's input holds every upstream
# output.
ATTEMPT_COLUMNS: list[ColumnElement[Any]] = [
    null().label(name) if name in ("input", "output") else column
    for name, column in zip(_NAMES, INSTANCE_COLUMNS, strict=True)
]
_FLAGS = tuple(i for i, name in enumerate(_NAMES) if name in ("latest", "cached"))
_TIMES = tuple(i for i, name in enumerate(_NAMES) if name.endswith("_at"))


def instance_record(row: Sequence[Any]) -> InstanceRecord:
    """The record of a row selected with ``INSTANCE_COLUMNS`` or ``ATTEMPT_COLUMNS``."""
    values = list(row)
    for i in _FLAGS:
        values[i] = bool(values[i])
    for i in _TIMES:
        value = values[i]
        if value is not None:
            values[i] = as_utc(value)
    return InstanceRecord(*values)


def instance_records(rows: Iterable[Sequence[Any]]) -> list[InstanceRecord]:
    return [instance_record(row) for row in rows]


ACTIVE_COLUMNS: list[ColumnElement[Any]] = [
    INSTANCE_COLUMNS[_NAMES.index(f.name)] for f in fields(ActiveInstance)
]


def active_records(rows: Iterable[Sequence[Any]]) -> list[ActiveInstance]:
    """Records of rows selected with ``ACTIVE_COLUMNS``."""
    return [ActiveInstance(i, attempt, state, job_id,
                           None if submitted is None else as_utc(submitted), stderr)
            for i, attempt, state, job_id, submitted, stderr in rows]


def id_in(conn: Connection, ids: Sequence[int]) -> ColumnElement[bool]:
    """``instances.id`` among ``ids``, bound as one parameter (a JSON array on SQLite, whose
    probes still use the primary key; an array on PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        each = func.json_each(json.dumps(list(ids))).table_valued("value")
        return InstanceRow.id.in_(select(each.c.value))
    return InstanceRow.id == any_(literal(list(ids), ARRAY(BigInteger)))


def rows_by_id(conn: Connection, instance_ids: Sequence[int],
               columns: Sequence[ColumnElement[Any]] = INSTANCE_COLUMNS) -> list[InstanceRecord]:
    """Instances in the order of ``instance_ids`` (ids not in the store are left out)."""
    if not instance_ids:
        return []
    query = select(*columns).where(id_in(conn, instance_ids))
    rows = {r.id: r for r in instance_records(conn.execute(query))}
    return [rows[i] for i in instance_ids if i in rows]
