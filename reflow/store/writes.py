"""Instance writes on the hot path: bulk inserts, compare-and-set state changes, new attempts.

Each function runs inside one write transaction handed in by the store, so a batch of 10,000
changes costs one commit. Compare-and-set works by reading the current states with the rows
locked (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE`` in id order on PostgreSQL, which also
rules out deadlocks between two batches), deciding in Python, then updating with the expected
old state in the WHERE clause. Of two drivers racing for one instance, exactly one moves it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection

from reflow.states import TaskState
from reflow.store.bulk import BulkSql, Row
from reflow.store.models import InstanceRow
from reflow.store.records import CopyBatch, NewInstance, StateChange

_INSERT_COLUMNS = (
    "id", "run_id", "workflow", "task_name", "array_index", "attempt", "latest", "state",
    "identity", "input_hash", "preimage", "input", "output", "output_hash", "fingerprints",
    "cached", "cache_source", "reason", "job_id", "error_text", "created_at", "submitted_at",
    "started_at", "finished_at", "updated_at",
)  # fmt: skip
_TRANSITION_COLUMNS = (
    "instance_id", "run_id", "task_name", "array_index", "attempt", "from_state", "to_state",
    "at", "detail",
)  # fmt: skip
# Columns that identify an attempt or that the store itself maintains.
_FIXED = frozenset(
    {"id", "run_id", "workflow", "task_name", "array_index", "attempt", "latest", "state",
     "created_at", "updated_at"}
)  # fmt: skip
SETTABLE_FIELDS = frozenset(c.name for c in InstanceRow.__table__.columns) - _FIXED
_TIMESTAMP_FIELDS = frozenset({"submitted_at", "started_at", "finished_at"})
RETRYABLE_STATES = frozenset({TaskState.FAILED.value, TaskState.CANCELLED.value})


# One transition of a recorded instance: (from_state, to_state, at, detail).
Transition = tuple[str | None, str, datetime, str]
_RECORDED_COLUMNS = (*_INSERT_COLUMNS, "exit_code")
_POSITION = {name: i for i, name in enumerate(_RECORDED_COLUMNS)}
_AT = itemgetter(_TRANSITION_COLUMNS.index("at"))
# Row positions read while writing (``_RECORDED_COLUMNS`` order).
_RUN, _TASK, _INDEX, _ATTEMPT, _STATE = (_POSITION[c] for c in (
    "run_id", "task_name", "array_index", "attempt", "state"))
_CREATED, _SUBMITTED, _STARTED, _FINISHED, _UPDATED = (_POSITION[c] for c in (
    "created_at", "submitted_at", "started_at", "finished_at", "updated_at"))
# Columns that a change may set on an instance not written yet.
_CHANGEABLE = {name: _POSITION[name] for name in (
    "output", "output_hash", "fingerprints", "error_text", "job_id", "started_at",
    "finished_at", "submitted_at", "exit_code")}  # fmt: skip


class RecordedInstance:
    """An instance first written after some of its life already happened in this process.

    ``row`` holds its columns in ``_RECORDED_COLUMNS`` order (``id`` and ``updated_at`` are
    filled in when it is written), ``history`` every transition so far, creation first. A plain
    list, not a record with named fields: an in-process run makes one of these per instance
    and changes it once or twice, and the list goes to the database nearly as it is.
    """

    __slots__ = ("history", "row")

    def __init__(self, row: list[Any], history: list[Transition]) -> None:
        self.row = row
        self.history = history

    @classmethod
    def of(cls, new: NewInstance, history: list[Transition],
           exit_code: int | None = None) -> RecordedInstance:
        """From a ``NewInstance`` (whose ``detail`` is already in ``history``)."""
        return cls([
            None, new.run_id, new.workflow, new.task_name, new.array_index, new.attempt, True,
            str(new.state), new.identity, new.input_hash, new.preimage, new.input, new.output,
            new.output_hash, new.fingerprints, new.cached, new.cache_source, new.reason,
            new.job_id, new.error_text, new.created_at, new.submitted_at, new.started_at,
            new.finished_at, None, exit_code,
        ], history)  # fmt: skip

    @classmethod
    def planned(cls, run_id: str, workflow: str, task: str, index: int | None, identity: str,
                input_hash: str, preimage: str, input_json: str, reason: str, state: str,
                at: datetime, detail: str) -> RecordedInstance:
        """A first attempt to be computed in this process, created in ``state`` ``at``."""
        return cls([
            None, run_id, workflow, task, index, 1, True, state, identity, input_hash,
            preimage, input_json, None, None, None, False, None, reason, None, None, None,
            None, None, None, None, None,
        ], [(None, state, at, detail)])  # fmt: skip

    @property
    def run_id(self) -> str:
        return str(self.row[_RUN])

    @property
    def task_name(self) -> str:
        return str(self.row[_TASK])

    @property
    def array_index(self) -> int | None:
        index: int | None = self.row[_INDEX]
        return index

    def change(self, to_state: str, detail: str, fields: Mapping[str, object],
               at: datetime) -> None:
        """Move to ``to_state`` at ``at``, setting ``fields`` (see ``_CHANGEABLE``)."""
        row = self.row
        for name, value in fields.items():
            position = _CHANGEABLE.get(name)
            if position is None:
                raise ValueError(f"an unwritten instance cannot change column {name!r}; "
                                 f"changeable: {sorted(_CHANGEABLE)}")
            row[position] = value
        self.history.append((row[_STATE], to_state, at, detail))
        row[_STATE] = str(to_state)  # a StrEnum member is stored as its value


def insert_recorded(
    conn: Connection, sql: BulkSql, rows: Sequence[RecordedInstance], now: datetime,
    copies: Sequence[CopyBatch] = (), *, transitions_to: list[Row] | None = None,
) -> list[int]:
    """Insert ``rows`` as latest attempts in their current state, with their whole history.

    An instance that ran and finished between two writes thus costs one row and its
    transitions, not an insert and a later compare-and-set update. ``copies`` (cache hits)
    go in alongside; the returned ids are those of ``rows``, in order. With
    ``transitions_to`` the transition rows are added to that list for the caller to write
    (``write_transitions``) together with others of the same transaction.
    """
    ids = sql.allocate_ids(conn, "instances", len(rows) + sum(len(b.copies) for b in copies))
    earlier = _earlier_attempts(conn, sql, rows, copies)
    if earlier:
        for rec in rows:
            r = rec.row
            before = earlier.get((r[_RUN], r[_TASK], _key(r[_INDEX])))
            if before is not None:
                r[_ATTEMPT] = before + 1
    stamp = sql.ts(now)
    # Each instance has a few distinct times, shared with its transitions: convert each once.
    converted: dict[object, object] = {None: None}

    def ts(value: object) -> object:
        out = converted.get(value, converted)
        if out is converted:
            out = converted[value] = sql.ts(value)
        return out

    instances: list[Row] = []
    transitions: list[Row] = []
    for new_id, rec in zip(ids, rows, strict=False):
        r, history = rec.row, rec.history
        created = r[_CREATED]
        # The row is left as it is (a retried transaction builds the same tuples again).
        instances.append((
            new_id, *r[1:_CREATED],
            ts(created if created is not None else history[0][2]), ts(r[_SUBMITTED]),
            ts(r[_STARTED]), ts(r[_FINISHED]), stamp, *r[_UPDATED + 1:],
        ))  # fmt: skip
        run_id, task, index, attempt = r[_RUN], r[_TASK], r[_INDEX], r[_ATTEMPT]
        for from_state, to_state, at, detail in history:
            transitions.append((
                new_id, run_id, task, index, attempt, from_state, str(to_state), ts(at), detail,
            ))  # fmt: skip
    copy_rows = _copy_rows(sql, copies, ids[len(rows):], stamp, transitions, earlier)
    columns, values = _without_null_columns(_RECORDED_COLUMNS, instances)
    sql.insert_many(conn, "instances", columns, values)
    sql.insert_many(conn, "instances", _COPY_COLUMNS, copy_rows)
    if transitions_to is None:
        write_transitions(conn, sql, transitions)
    else:
        transitions_to.extend(transitions)
    return ids[: len(rows)]


def write_transitions(conn: Connection, sql: BulkSql, transitions: list[Row]) -> None:
    """Insert transition rows in the order they happened, as if each had been written then.

    Rows of one batch come from different places (new instances' histories, changes to
    instances already stored); ids follow time, so the history reads in order. The sort is
    stable: rows at the same instant keep the order they are given in, which is the order
    they happened in (one instance's changes; a body started right after another ended is
    dated with that end, ``InlineExecution._start_time``, and given after it).
    """
    transitions.sort(key=_AT)
    sql.insert_many(conn, "transitions", _TRANSITION_COLUMNS, transitions)


_COPY_COLUMNS = (
    "id", "run_id", "workflow", "task_name", "array_index", "attempt", "latest", "state",
    "identity", "input_hash", "preimage", "input", "output", "output_hash", "fingerprints",
    "cached", "cache_source", "reason", "created_at", "started_at", "finished_at",
    "updated_at",
)  # fmt: skip
_SUCCESS = TaskState.SUCCESS.value


def _key(index: int | None) -> int:
    return -1 if index is None else index


def _earlier_attempts(
    conn: Connection, sql: BulkSql, rows: Sequence[RecordedInstance], copies: Sequence[CopyBatch]
) -> dict[tuple[str, str, int], int]:
    """Highest superseded attempt per (run, task, index key) among the tasks being inserted.

    An instance planned again inside its run (after a forced rerun or a retry that recomputed
    its upstream) continues its predecessor's attempt count instead of starting again at 1.
    Usually nothing in the run is superseded, and the index seek finds an empty range.
    """
    wanted: dict[str, set[str]] = {}
    for rec in rows:
        wanted.setdefault(rec.row[_RUN], set()).add(rec.row[_TASK])
    for batch in copies:
        if batch.copies:
            wanted.setdefault(batch.run_id, set()).add(batch.task_name)
    found: dict[tuple[str, str, int], int] = {}
    for run_id, tasks in wanted.items():
        condition, param = sql.in_list("task_name", sorted(tasks))
        result = conn.exec_driver_sql(
            f"SELECT task_name, array_index, max(attempt) FROM instances WHERE run_id = "
            f"{sql.mark} AND latest = {sql.false} AND {condition} GROUP BY task_name, "
            "array_index",
            (run_id, param),
        )
        for task, index, attempt in result:
            found[(run_id, task, _key(index))] = int(attempt)
    return found


def _copy_rows(
    sql: BulkSql, batches: Sequence[CopyBatch], ids: Sequence[int], stamp: object,
    transitions: list[Row], earlier: Mapping[tuple[str, str, int], int],
) -> list[Row]:
    """Instance rows of cache hits (SUCCESS at once, no job), adding their transitions.

    One tight loop per batch: a fully cached run records 10,000 of these in one write.
    """
    rows: list[Row] = []
    add_row, add_transition = rows.append, transitions.append
    new_ids = iter(ids)
    for batch in batches:
        run_id, workflow, task, reason = batch.run_id, batch.workflow, batch.task_name, batch.reason
        at = sql.ts(batch.at)
        # ``new_ids`` is shared by all batches: each takes as many ids as it has copies.
        for (index, identity, input_hash, preimage, input_json, source), new_id in zip(
            batch.copies, new_ids, strict=False
        ):
            source_id, source_run, _, output, output_hash, fingerprints, _, _ = source
            attempt = earlier.get((run_id, task, _key(index)), 0) + 1 if earlier else 1
            add_row((
                new_id, run_id, workflow, task, index, attempt, True, _SUCCESS, identity,
                input_hash, preimage, input_json, output, output_hash, fingerprints, True,
                source_id, reason, at, at, at, stamp,
            ))  # fmt: skip
            add_transition((
                new_id, run_id, task, index, attempt, None, _SUCCESS, at,
                f"cached from instance {source_id} of run {source_run}",
            ))  # fmt: skip
    return rows


# Nullable columns: left out of a batch's INSERT when no row of the batch sets them.
_NULLABLE = frozenset({
    "array_index", "output", "output_hash", "fingerprints", "cache_source", "job_id",
    "error_text", "submitted_at", "started_at", "finished_at", "exit_code",
})  # fmt: skip


def _without_null_columns(
    columns: Sequence[str], rows: Sequence[Row]
) -> tuple[Sequence[str], Sequence[Row]]:
    """Drop the nullable columns that are NULL in every row (they default to NULL anyway).

    The driver binds every parameter of every row; a cached instance leaves five columns
    empty, and not binding them was measured to take a tenth off a batch's INSERT.
    """
    if not rows:
        return columns, rows
    keep = [
        i for i, name in enumerate(columns)
        if name not in _NULLABLE or any(row[i] is not None for row in rows)
    ]  # fmt: skip
    if len(keep) == len(columns):
        return columns, rows
    return [columns[i] for i in keep], list(map(itemgetter(*keep), rows))


def _locked_rows(
    conn: Connection, sql: BulkSql, ids: Collection[int], columns: str
) -> dict[int, list[Any]]:
    """Current values of ``columns`` (after ``id``) of the instances ``ids``, rows locked."""
    if not ids:
        return {}
    condition, param = sql.in_list("id", sorted(ids))
    result = conn.exec_driver_sql(
        f"SELECT id, {columns} FROM instances WHERE {condition} ORDER BY id{sql.for_update}",
        (param,),
    )
    return {row[0]: list(row[1:]) for row in result.all()}


def _plain(value: object) -> object:
    # A str enum member is stored as its value on every driver.
    return str(value) if isinstance(value, Enum) else value


@dataclass(slots=True)
class _Plan:
    """What one instance's UPDATE will do: expected old state, new state, columns to set."""

    old_state: object
    new_state: str
    fields: Mapping[str, object]


def _plan_changes(
    changes: Sequence[StateChange], current: dict[int, list[Any]], stamps: Sequence[object]
) -> tuple[dict[int, _Plan], list[Row]]:
    """Replay the changes on the current states: the winning UPDATEs and their transitions."""
    plans: dict[int, _Plan] = {}
    transitions: list[Row] = []
    for change, stamp in zip(changes, stamps, strict=True):
        row = current.get(change.instance_id)
        if row is None:
            continue
        state = row[0]
        # from_states may hold str enums: compare by value, not by the enum member's hash.
        if state not in change.from_states and state not in {str(s) for s in change.from_states}:
            continue
        to_state = str(change.to_state)
        transitions.append((change.instance_id, *row[1:], state, to_state, stamp, change.detail))
        plan = plans.get(change.instance_id)
        if plan is None:
            plans[change.instance_id] = _Plan(state, to_state, change.fields)
        else:
            plan.new_state = to_state
            plan.fields = {**plan.fields, **change.fields}
        row[0] = to_state
    return plans, transitions


def apply(
    conn: Connection,
    sql: BulkSql,
    changes: Sequence[StateChange],
    now: datetime,
    at: Sequence[datetime] | None = None,
    *,
    transitions_to: list[Row] | None = None,
) -> list[int]:
    """Apply each change whose instance is in one of its ``from_states``; returns those ids.

    Several changes to one instance in a batch are applied in order (each checked against the
    state the previous one left) and written as one UPDATE, with one transition each. UPDATEs
    that set the same columns go to the driver as one ``executemany``. ``at`` gives each
    change's transition its own time (when it happened, for changes recorded later);
    otherwise they are all stamped ``now``.
    """
    current = _locked_rows(
        conn,
        sql,
        {c.instance_id for c in changes},
        "state, run_id, task_name, array_index, attempt",
    )
    stamp = sql.ts(now)
    stamps = [stamp] * len(changes) if at is None else [sql.ts(t) for t in at]
    plans, transitions = _plan_changes(changes, current, stamps)
    groups: dict[tuple[str, ...], list[tuple[int, _Plan]]] = {}
    for instance_id, plan in plans.items():
        groups.setdefault(tuple(plan.fields), []).append((instance_id, plan))
    for names, members in groups.items():
        unknown = set(names) - SETTABLE_FIELDS
        if unknown:
            raise ValueError(
                f"apply() cannot set instance column(s) {sorted(unknown)}; "
                f"settable: {sorted(SETTABLE_FIELDS)}"
            )
        convert = [sql.ts if name in _TIMESTAMP_FIELDS else _plain for name in names]
        rows = [
            (plan.new_state, stamp,
             *[to_db(plan.fields[name]) for to_db, name in zip(convert, names, strict=True)],
             instance_id, plan.old_state)
            for instance_id, plan in members
        ]  # fmt: skip
        sql.update_instances(conn, names, rows)
    if transitions_to is None:
        sql.insert_many(conn, "transitions", _TRANSITION_COLUMNS, transitions)
    else:
        transitions_to.extend(transitions)
    return list(plans)


def new_attempts(
    conn: Connection,
    sql: BulkSql,
    instance_ids: Sequence[int],
    *,
    states: Collection[str],
    detail: str,
    reason: str,
    now: datetime,
) -> list[int]:
    """Start attempt n+1 of each instance that is still latest and in ``states``.

    The old attempt stays as it was (its history intact) but stops being latest; the new row
    keeps what defines the instance (identity, inputs) and clears everything an attempt
    produces. Returns the new ids, in the order of ``instance_ids``.
    """
    wanted = list(dict.fromkeys(instance_ids))
    rows = _locked_rows(conn, sql, wanted, "state, latest, run_id, task_name, array_index, attempt")
    allowed = {str(s) for s in states}
    old = [(i, rows[i]) for i in wanted if i in rows and bool(rows[i][1]) and rows[i][0] in allowed]
    if not old:
        return []
    m = sql.mark
    stamp = sql.ts(now)
    conn.exec_driver_sql(
        f"UPDATE instances SET latest = {sql.false}, updated_at = {m} WHERE id = {m}",
        [(stamp, i) for i, _ in old],
    )
    new_ids = sql.allocate_ids(conn, "instances", len(old))
    retrying = TaskState.RETRYING.value
    conn.exec_driver_sql(
        "INSERT INTO instances (id, run_id, workflow, task_name, array_index, attempt, latest, "
        "state, identity, input_hash, preimage, input, cached, reason, created_at, updated_at) "
        f"SELECT {m}, run_id, workflow, task_name, array_index, attempt + 1, {sql.true}, {m}, "
        f"identity, input_hash, preimage, input, {sql.false}, {m}, {m}, {m} "
        f"FROM instances WHERE id = {m}",
        [
            (new_id, retrying, reason, stamp, stamp, i)
            for new_id, (i, _) in zip(new_ids, old, strict=True)
        ],
    )
    sql.insert_many(
        conn,
        "transitions",
        _TRANSITION_COLUMNS,
        [
            (new_id, row[2], row[3], row[4], row[5] + 1, None, retrying, stamp, detail)
            for new_id, (_, row) in zip(new_ids, old, strict=True)
        ],
    )
    return new_ids


def supersede(conn: Connection, sql: BulkSql, instance_ids: Collection[int], now: datetime) -> int:
    """Stop counting these attempts (no new attempt replaces them here); returns how many."""
    if not instance_ids:
        return 0
    condition, param = sql.in_list("id", sorted(set(instance_ids)))
    result = conn.exec_driver_sql(
        f"UPDATE instances SET latest = {sql.false}, updated_at = {sql.mark} "
        f"WHERE {condition} AND latest = {sql.true}",
        (sql.ts(now), param),
    )
    return int(result.rowcount)
