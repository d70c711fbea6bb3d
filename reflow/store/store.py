"""The manifest store: every run, task instance, attempt and state change, in one database.

``Store`` is the only way the rest of reflow touches the database. Its methods are named for
what the planner, runner, CLI and TUI need (record a batch, compare-and-set states, find cache
hits, summarise a run) and each is one short transaction, so readers never wait long and a
crash loses at most the batch in flight. Hot paths live in ``writes`` and ``cache``; the
readers here use SQLAlchemy Core over the ORM tables and return plain records.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from reflow.errors import OptionError, ReflowError, StoreError, UnknownRunError, suggestion
from reflow.states import TaskState
from reflow.store import cache, counts, writes
from reflow.store.bulk import BulkSql, Row
from reflow.store.cache import TaskHistory
from reflow.store.database import DEFAULT_DEADLINE_S, Database, parse_url
from reflow.store.errors import (
    InstanceConflict,
    NoStoreError,
    RunIdTaken,
    UnknownInstanceError,
)
from reflow.store.instance_rows import (
    ACTIVE_COLUMNS,
    ATTEMPT_COLUMNS,
    INSTANCE_COLUMNS,
    active_records,
    instance_record,
    instance_records,
    rows_by_id,
)
from reflow.store.migrate import HEAD_REVISION, current_revision, ensure_schema
from reflow.store.models import (
    INDEX_KEY,
    InstanceRow,
    RunRow,
    SharedValueRow,
    TaskSpecRow,
    TransitionRow,
    VerifyFailureRow,
)
from reflow.store.records import (
    ActiveInstance,
    CacheHit,
    CopyBatch,
    InstanceRecord,
    NewInstance,
    NewRun,
    NewTaskSpec,
    NewVerifyFailure,
    RunRecord,
    StateChange,
    StoreInfo,
    TaskSpecRecord,
    TransitionRecord,
    VerifyFailureRecord,
)
from reflow.store.writes import RecordedInstance

_RUNS = cast(Table, RunRow.__table__)
_TASK_SPECS = cast(Table, TaskSpecRow.__table__)
_TASK_SPEC_COLUMNS = (
    "run_id", "name", "position", "is_array", "version", "config", "dependencies", "return_type",
)  # fmt: skip
_VERIFY_FAILURES = cast(Table, VerifyFailureRow.__table__)
_SHARED_VALUES = cast(Table, SharedValueRow.__table__)
_RUN_COLUMNS = [RunRow.__table__.c[name] for name in (
    "id", "workflow", "entrypoint", "run_dir", "username", "host", "status", "parameters",
    "options", "reflow_version", "created_at", "updated_at",
)]  # fmt: skip
_SPEC_COLUMNS = [TaskSpecRow.__table__.c[f.name] for f in fields(TaskSpecRecord)]
_TRANSITION_COLUMNS = [TransitionRow.__table__.c[f.name] for f in fields(TransitionRecord)]
_VERIFY_COLUMNS = [
    VerifyFailureRow.__table__.c["check_name" if f.name == "check" else f.name]
    for f in fields(VerifyFailureRecord)
]
_SUGGESTION_POOL = 500  # recent run ids offered as "did you mean"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes here, as a plain ValueError naming the argument."""
    if value.tzinfo is None:
        raise ValueError(f"{name} {value!r} is a naive datetime; pass an aware UTC time")
    return value


def _prepare_sqlite_path(path: Path, *, create: bool) -> None:
    """Refuse a directory or (without ``create``) a missing file; make a new file's directory."""
    if path.is_dir():
        raise StoreError(
            f"store path {path} is a directory; pass the path of a SQLite file, e.g. "
            f"{path / 'manifest.db'}"
        )
    if path.exists():
        return
    if not create:
        raise NoStoreError(
            f"no reflow store at {path}; check --store-path / REFLOW_STORE_PATH, "
            "or run a pipeline once to create it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the directory of store {path}: {exc.strerror}; "
            "choose a writable location with --store-path or REFLOW_STORE_PATH"
        ) from exc


class Store:
    """A manifest store: ``Store(location)`` or ``Store.open(location)``; close it or use it as a
    context manager."""

    def __init__(
        self,
        location: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        deadline: float = DEFAULT_DEADLINE_S,
    ) -> None:
        """Open (and create or upgrade in place) the store at ``location``.

        ``location`` is a SQLAlchemy URL or a SQLite file path; None follows SPEC §4's order
        (``REFLOW_STORE``, config, the XDG cache default). ``create=False`` refuses to create
        a new store. ``deadline`` bounds how long each operation retries a locked or
        unreachable database before raising StoreError.
        """
        if location is not None and not isinstance(location, str | os.PathLike):
            raise OptionError(
                f"store={location!r} is not a store; pass a Store, a SQLAlchemy URL or the "
                "path of a SQLite file"
            )
        from reflow.config import resolve_store_location

        url = parse_url(resolve_store_location(location))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            _prepare_sqlite_path(Path(str(url.database)), create=create)
        db = Database(url, deadline_s=deadline)
        try:
            self.revision = ensure_schema(db, create=create)
        except BaseException:
            db.dispose()
            raise
        self._db = db
        self._sql = BulkSql(db.dialect)

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        location: Store | str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        deadline: float = DEFAULT_DEADLINE_S,
    ) -> Store:
        """``Store(location, ...)``, except that a Store is returned as it is: every
        ``store=`` argument of the API goes through here."""
        if isinstance(location, Store):
            return location
        return cls(location, create=create, deadline=deadline)

    @property
    def url(self) -> str:
        """The store's URL with any password masked."""
        return self._db.display_url

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @property
    def found_revision(self) -> str | None:
        """The schema revision this store had when it was opened, before any upgrade (None:
        it was created)."""
        return self._db.found_revision

    @property
    def read_only(self) -> bool:
        """A SQLite store this process can read but not write (see ``sqlite.is_read_only``)."""
        return self._db.read_only

    def cli_option(self) -> str:
        """The option a pasted command needs to find this store (`` --store-path P``).

        Hints that print a command (`reflow status RUN --errors`) add it, or a command run
        without it would look in the default store and not find the run. Empty when the CLI
        finds this store anyway. A URL's password is shown as ``***``, to be filled in.
        """
        from reflow.config import resolve_store_location

        url = self._db.url
        try:
            found = parse_url(resolve_store_location())
        except ReflowError:  # a malformed config: name the store to be safe
            found = None
        if url.get_backend_name() != "sqlite":
            if found is not None and (found.render_as_string(hide_password=False)
                                      == url.render_as_string(hide_password=False)):
                return ""
            return f" --store {shlex.quote(url.render_as_string(hide_password=True))}"
        if not url.database:
            return ""
        if found is not None and found.get_backend_name() == "sqlite" and (
                found.database and Path(found.database).resolve() == Path(url.database).resolve()):
            return ""
        return f" --store-path {shlex.quote(str(Path(url.database).resolve()))}"

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- runs --------------------------------------------------------------------------------
    def create_run(self, run: NewRun, specs: Sequence[NewTaskSpec]) -> None:
        """Record a run and its task specs together; RunIdTaken if the id exists."""
        now = _now()
        row = {
            "id": run.run_id, "workflow": run.workflow, "entrypoint": run.entrypoint,
            "run_dir": run.run_dir, "username": run.user, "host": run.host,
            "status": str(run.status), "parameters": run.parameters, "options": run.options,
            "reflow_version": run.reflow_version,
            "created_at": _aware(run.created_at, "NewRun.created_at"),
            "updated_at": now,
        }  # fmt: skip
        # Plain tuples to the driver: a chain of 1,000 tasks has 1,000 spec rows (see bulk).
        spec_rows = [
            (run.run_id, s.name, s.position, s.is_array, s.version, s.config, s.dependencies,
             s.return_type)
            for s in specs
        ]  # fmt: skip

        def work(conn: Connection) -> None:
            try:
                with conn.begin_nested():  # a savepoint: the row can be read after a clash
                    conn.execute(insert(_RUNS), row)
            except IntegrityError as exc:
                # ``run`` repeats a transaction whose connection broke, also one whose commit
                # reached the server but whose answer was lost: then the row is our own.
                mine = ("workflow", "run_dir", "username", "host", "parameters", "options",
                        "created_at")
                found = conn.execute(select(*(_RUNS.c[c] for c in mine))
                                     .where(RunRow.id == run.run_id)).first()
                if found is not None and tuple(found) == tuple(row[c] for c in mine):
                    return
                raise RunIdTaken(
                    f"run id {run.run_id!r} is already recorded in store {self.url}; "
                    "choose another run id"
                ) from exc
            self._sql.insert_many(conn, "task_specs", _TASK_SPEC_COLUMNS, spec_rows)

        self._db.run(work, write=True)

    def get_run(self, run_id: str) -> RunRecord:
        def work(conn: Connection) -> RunRecord:
            row = conn.execute(select(*_RUN_COLUMNS).where(RunRow.id == run_id)).first()
            if row is None:
                raise self._unknown_run(conn, run_id)
            return RunRecord(*row)

        return self._db.run(work)

    def _unknown_run(self, conn: Connection, run_id: str) -> UnknownRunError:
        recent = conn.execute(
            select(RunRow.id).order_by(RunRow.created_at.desc()).limit(_SUGGESTION_POOL)
        ).scalars()
        return UnknownRunError(
            f"no run {run_id!r} in store {self.url}; `reflow runs` lists the recorded runs."
            + suggestion(run_id, list(recent))
        )

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        statuses: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        words: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first.

        ``words``: each must occur, in any case, in the run's workflow, id, user or status
        (the TUI's ``/`` filter, which must find any run in the store, not only those shown).
        """
        query = select(*_RUN_COLUMNS).order_by(RunRow.created_at.desc(), RunRow.id.desc())
        hay = func.lower(RunRow.workflow + " " + RunRow.id + " " + RunRow.user + " "
                         + RunRow.status)
        for word in words:
            query = query.where(hay.contains(word.lower(), autoescape=True))
        if workflow is not None:
            query = query.where(RunRow.workflow == workflow)
        if statuses is not None:
            query = query.where(RunRow.status.in_([str(s) for s in statuses]))
        if since is not None:
            query = query.where(RunRow.created_at >= _aware(since, "since"))
        if until is not None:
            query = query.where(RunRow.created_at <= _aware(until, "until"))
        if limit is not None:
            query = query.limit(limit)
        return self._db.run(lambda conn: [RunRecord(*row) for row in conn.execute(query)])

    def workflows(self) -> list[str]:
        """The names of the workflows with runs in this store (an index scan), sorted."""
        query = select(RunRow.workflow).distinct().order_by(RunRow.workflow)
        return self._db.run(lambda conn: [str(row[0]) for row in conn.execute(query)])

    def set_run_status(
        self, run_id: str, status: str, *, only_from: Collection[str] | None = None
    ) -> bool:
        """Set a run's status if it is currently one of ``only_from`` (any, when None).

        Returns whether it changed; a run that does not exist raises UnknownRunError.
        """
        stmt = (
            update(RunRow).where(RunRow.id == run_id).values(status=str(status), updated_at=_now())
        )
        if only_from is not None:
            stmt = stmt.where(RunRow.status.in_([str(s) for s in only_from]))

        def work(conn: Connection) -> bool:
            if conn.execute(stmt).rowcount == 1:
                return True
            if conn.execute(select(RunRow.id).where(RunRow.id == run_id)).first() is None:
                raise self._unknown_run(conn, run_id)
            return False

        return self._db.run(work, write=True)

    def set_run_options(self, run_id: str, options: Mapping[str, Any]) -> None:
        """Replace a run's recorded options (JSON), e.g. the process now executing it."""
        stmt = (update(RunRow).where(RunRow.id == run_id)
                .values(options=json.dumps(dict(options)), updated_at=_now()))
        self._db.run(lambda conn: conn.execute(stmt), write=True)

    def task_specs(self, run_id: str) -> list[TaskSpecRecord]:
        """The run's task specs in topological order."""
        query = (
            select(*_SPEC_COLUMNS)
            .where(TaskSpecRow.run_id == run_id)
            .order_by(TaskSpecRow.position)
        )
        return self._db.run(lambda conn: [TaskSpecRecord(*row) for row in conn.execute(query)])

    # -- instances: writes -------------------------------------------------------------------
    def insert_instances(
        self, rows: Sequence[NewInstance], copies: Sequence[CopyBatch] = ()
    ) -> list[int]:
        """Record ``rows`` (and cache hits ``copies``) as current attempts in one transaction.

        Returns the ids of ``rows`` in input order; InstanceConflict if one of them already
        has a current attempt in its run.
        """
        now = _now()
        created = [
            RecordedInstance.of(r, [(None, str(r.state), r.created_at or now, r.detail)])
            for r in rows
        ]
        return self._record(created, (), None, copies, now)

    def _insert_failure(self, exc: IntegrityError) -> StoreError:
        detail = " ".join(str(exc.orig).split())
        if "uq_instances_latest" in detail:
            return InstanceConflict(
                f"an instance inserted into store {self.url} already has a current attempt "
                f"({detail}); supersede it or use new_attempts() instead of inserting it again"
            )
        return StoreError(
            f"instances refer to a run or cache source missing from store {self.url} "
            f"({detail}); record the run first"
        )

    def apply(
        self, changes: Sequence[StateChange], *, at: Sequence[datetime] | None = None
    ) -> list[int]:
        """Compare-and-set state changes in one transaction; returns the ids that moved.

        ``at`` (one aware time per change) dates each transition when its change happened,
        for changes recorded after the fact; by default they are dated now.
        """
        if not changes:
            return []
        return self._db.run(
            lambda conn: writes.apply(conn, self._sql, changes, _now(), at), write=True
        )

    def record(
        self,
        rows: Sequence[RecordedInstance],
        changes: Sequence[StateChange] = (),
        *,
        at: Sequence[datetime] | None = None,
        copies: Sequence[CopyBatch] = (),
    ) -> list[int]:
        """Insert instances with their history and apply ``changes``, in one transaction.

        For a writer that keeps its recent changes in memory and writes them in batches:
        returns the new instances' ids in input order; ``changes`` (to instances already in
        the store) are compare-and-set as in ``apply``, dated by ``at``; ``copies`` records
        cache hits as SUCCESS instances linked to their sources.
        """
        return self._record(rows, changes, at, copies, None)

    def _record(
        self,
        rows: Sequence[RecordedInstance],
        changes: Sequence[StateChange],
        at: Sequence[datetime] | None,
        copies: Sequence[CopyBatch],
        stamp: datetime | None,
    ) -> list[int]:
        """``record``, with the rows' ``updated_at`` fixed by the caller when ``stamp`` is set."""
        if not rows and not changes and not copies:
            return []

        def work(conn: Connection) -> list[int]:
            now = stamp or _now()
            created: list[Row] = []
            changed: list[Row] = []
            try:
                ids = (writes.insert_recorded(conn, self._sql, rows, now, copies,
                                              transitions_to=created)
                       if rows or copies else [])
            except IntegrityError as exc:
                raise self._insert_failure(exc) from exc
            if changes:
                writes.apply(conn, self._sql, changes, now, at, transitions_to=changed)
            # Changed rows first: at one instant, the end of a row stored before (a retried
            # upstream) comes before the start of a row new in this batch that waited for it.
            writes.write_transitions(conn, self._sql, changed + created)
            return ids

        return self._db.run(work, write=True)

    def new_attempts(
        self,
        instance_ids: Sequence[int],
        *,
        detail: str = "retry",
        force: bool = False,
        reason: str = "retry",
    ) -> list[int]:
        """Start a new RETRYING attempt of each instance that is latest and FAILED/CANCELLED.

        ``force`` also restarts SUCCESS instances; ``reason`` is the new attempts' reason (a
        forced rerun is not a retry). Instances that are not latest or not in such a state are
        left alone (a concurrent retry already did it). Returns the new ids.
        """
        if not instance_ids:
            return []
        states = writes.RETRYABLE_STATES | ({TaskState.SUCCESS.value} if force else set())
        return self._db.run(
            lambda conn: writes.new_attempts(
                conn,
                self._sql,
                instance_ids,
                states=states,
                detail=detail,
                reason=str(reason),
                now=_now(),
            ),
            write=True,
        )

    def supersede(self, instance_ids: Collection[int]) -> int:
        """Mark these attempts as no longer latest; returns how many were latest."""
        if not instance_ids:
            return 0
        return self._db.run(
            lambda conn: writes.supersede(conn, self._sql, instance_ids, _now()), write=True
        )

    # -- instances: reads --------------------------------------------------------------------
    def _latest(
        self, run_id: str, task_name: str | None, states: Collection[str] | None
    ) -> list[ColumnElement[bool]]:
        conditions = [InstanceRow.run_id == run_id, InstanceRow.latest == true()]
        if task_name is not None:
            conditions.append(InstanceRow.task_name == task_name)
        if states is not None:
            conditions.append(InstanceRow.state.in_([str(s) for s in states]))
        return conditions

    def latest_instances(
        self,
        run_id: str,
        task_name: str | None = None,
        *,
        states: Collection[str] | None = None,
        offset: int = 0,
        limit: int | None = None,
        values: bool = True,
    ) -> list[InstanceRecord]:
        """Current attempts, by task position then array index (singletons first).

        Without ``values`` their ``input`` and ``output`` are left out (None), as in
        ``history``: a driver step reads every instance in flight, whose inputs may be large.
        ``offset``/``limit`` page through a large array without loading it. Pages, and the
        whole run (whose order needs a sort), are chosen by their ids (``latest_instance_ids``)
        and then read by id in the same transaction; a row that a writer moved in between
        (PostgreSQL reads each statement afresh) is left out, as if read a moment earlier.
        One task's rows come in its index's order.
        """
        columns = INSTANCE_COLUMNS if values else ATTEMPT_COLUMNS
        if task_name is not None and not offset and limit is None:
            query = self._latest_in_order(select(*columns), run_id, task_name, states)
            return self._db.run(
                lambda conn: instance_records(conn.execute(query)))
        page = self._id_page(run_id, task_name, states, offset, limit)
        wanted = None if states is None else {str(s) for s in states}

        def work(conn: Connection) -> list[InstanceRecord]:
            rows = rows_by_id(conn, [int(i) for i in conn.execute(page).scalars()], columns)
            return [r for r in rows if r.latest and (wanted is None or r.state in wanted)]

        return self._db.run(work)

    def active_instances(self, run_id: str, states: Collection[str]) -> list[ActiveInstance]:
        """The run's current attempts in ``states``, as much of them as a driver step needs,
        in no particular order: one narrow read per step, whatever the array's size."""
        query = select(*ACTIVE_COLUMNS).where(*self._latest(run_id, None, states))
        return self._db.run(lambda conn: active_records(conn.execute(query)))

    def latest_instance_ids(self, run_id: str, task_name: str | None = None) -> list[int]:
        """The ids of ``latest_instances``, in its order: one narrow sort, whatever the rows.

        SQLite sorts whole rows for ``ORDER BY ... LIMIT`` (a top-N sort) far more slowly than
        without a limit once rows hold large inputs and outputs: two minutes instead of half a
        second for a 100,000-instance run. Sorting ids and then reading rows by id avoids it.
        """
        query = self._id_page(run_id, task_name, None, 0, None)
        return self._db.run(lambda conn: [int(i) for i in conn.execute(query).scalars()])

    def _id_page(self, run_id: str, task_name: str | None, states: Collection[str] | None,
                 offset: int, limit: int | None) -> Select[Any]:
        query = self._latest_in_order(select(InstanceRow.id), run_id, task_name, states)
        if offset:
            query = query.offset(offset)
        return query if limit is None else query.limit(limit)

    def _latest_in_order(self, query: Select[Any], run_id: str, task_name: str | None,
                         states: Collection[str] | None) -> Select[Any]:
        query = query.where(*self._latest(run_id, task_name, states))
        if task_name is not None:
            # Unique among a task's latest rows (uq_instances_latest), which then serves the
            # order as it is; a tie-breaker would make PostgreSQL sort a page again.
            return query.order_by(INDEX_KEY)
        return query.outerjoin(
            TaskSpecRow,
            and_(
                TaskSpecRow.run_id == InstanceRow.run_id,
                TaskSpecRow.name == InstanceRow.task_name,
            ),
        ).order_by(TaskSpecRow.position, InstanceRow.task_name, INDEX_KEY, InstanceRow.id)

    def instances(self, instance_ids: Sequence[int]) -> list[InstanceRecord]:
        """These instances, in the order given (ids not in the store are left out)."""
        return self._db.run(lambda conn: rows_by_id(conn, instance_ids))

    def instance(self, instance_id: int, *, values: bool = True) -> InstanceRecord:
        """One instance; without ``values`` its ``input`` and ``output`` are left out (None),
        as in ``history``, for views that show everything else."""
        columns = INSTANCE_COLUMNS if values else ATTEMPT_COLUMNS

        def work(conn: Connection) -> InstanceRecord:
            query = select(*columns).where(InstanceRow.id == instance_id)
            row = conn.execute(query).first()
            if row is None:
                raise UnknownInstanceError(
                    f"no instance {instance_id} in store {self.url}; take ids from "
                    "`reflow status RUN_ID --json`"
                )
            return instance_record(row)

        return self._db.run(work)

    def history(self, run_id: str, task_name: str, array_index: int | None) -> list[InstanceRecord]:
        """Every attempt of one instance of a run, oldest first, without ``input`` and
        ``output`` (None; ``instance()`` reads them): for a gather over a big array those
        are hundreds of megabytes that explaining or listing attempts never needs."""
        workflow = select(RunRow.workflow).where(RunRow.id == run_id).scalar_subquery()
        index = (
            InstanceRow.array_index.is_(None)
            if array_index is None
            else InstanceRow.array_index == array_index
        )
        query = (
            select(*ATTEMPT_COLUMNS)
            .where(InstanceRow.workflow == workflow, InstanceRow.task_name == task_name, index,
                   InstanceRow.run_id == run_id)
            .order_by(InstanceRow.attempt, InstanceRow.id)
        )  # fmt: skip
        return self._db.run(lambda conn: instance_records(conn.execute(query)))

    def index_span(self, run_id: str, task_name: str) -> tuple[int | None, bool]:
        """(highest array index, whether a singleton instance exists) of a task's current
        instances: one aggregate, to word an error about an index that does not exist."""
        singleton = func.sum(case((InstanceRow.array_index.is_(None), 1), else_=0))
        query = select(func.max(InstanceRow.array_index), singleton).where(
            *self._latest(run_id, task_name, None))
        top, singles = self._db.run(lambda conn: conn.execute(query).one())
        return (None if top is None else int(top)), bool(singles)

    def count_latest(
        self, run_id: str, task_name: str | None = None, states: Collection[str] | None = None
    ) -> int:
        query = select(func.count()).where(*self._latest(run_id, task_name, states))
        return self._db.run(lambda conn: int(conn.execute(query).scalar_one()))

    # -- cache -------------------------------------------------------------------------------
    def find_cached(self, identities: Collection[str]) -> dict[str, CacheHit]:
        """The most recent SUCCESS that computed each identity's output, across all runs.

        Cached copies are never returned: their source is (same output, real provenance).
        """
        if not identities:
            return {}
        return self._db.run(lambda conn: cache.find_cached(conn, self._sql, identities))

    def task_seen(self, workflow: str, task_name: str, *, exclude_run: str | None = None) -> bool:
        """Whether another run of ``workflow`` has instances of ``task_name``."""
        return self._db.run(
            lambda conn: cache.task_seen(conn, self._sql, workflow, task_name, exclude_run)
        )

    def task_history(
        self, workflow: str, task_names: Collection[str], *, exclude_run: str | None = None
    ) -> TaskHistory:
        """Which of ``task_names`` have any instance, and which ``task_seen`` would report.

        One round trip for a whole workflow, for callers that plan many tasks in a row.
        """
        if not task_names:
            return TaskHistory(frozenset(), frozenset())
        return self._db.run(
            lambda conn: cache.task_history(conn, self._sql, workflow, task_names, exclude_run)
        )

    def reference_preimages(
        self, workflow: str, task_name: str, *, exclude_run: str | None
    ) -> dict[int | None, str]:
        """Pre-images of the task's current instances in the most recent other run, by index.

        The planner diffs against them to say why an instance missed the cache.
        """
        return self._db.run(
            lambda conn: cache.reference_preimages(
                conn, self._sql, workflow, task_name, exclude_run
            )
        )

    def earlier_attempt_preimages(self, run_id: str, task_name: str) -> dict[int | None, str]:
        """Pre-images of the run's own superseded attempts of a task, the newest per index.

        A task re-planned inside its run (after a forced rerun or a failed upstream check)
        is best explained against what this run computed before, not another run.
        """
        return self._db.run(
            lambda conn: cache.earlier_attempt_preimages(conn, self._sql, run_id, task_name)
        )

    def nearest_preimage(
        self,
        workflow: str,
        task_name: str,
        array_index: int | None,
        *,
        before_instance_id: int,
        exclude_run: str | None = None,
    ) -> str | None:
        """Pre-image of the most recent earlier instance of the task (same index preferred).

        ``exclude_run`` leaves out the instance's own run, whose sibling elements are no
        explanation of why an element missed the cache.
        """
        return self._db.run(
            lambda conn: cache.nearest_preimage(
                conn, self._sql, workflow, task_name, array_index, before_instance_id,
                exclude_run,
            )
        )

    # -- summaries and history ---------------------------------------------------------------
    def status_counts(self, run_id: str) -> dict[str, dict[str, int]]:
        """task -> state -> number of current attempts, from the summary index alone."""
        query = (
            select(InstanceRow.task_name, InstanceRow.state, func.count())
            .where(*self._latest(run_id, None, None))
            .group_by(InstanceRow.task_name, InstanceRow.state)
        )

        def work(conn: Connection) -> dict[str, dict[str, int]]:
            rows = (conn.exec_driver_sql(counts.STATE_COUNTS, {"run": run_id})
                    if counts.skip_scan(conn, self._sql, run_id) else conn.execute(query))
            found: dict[str, dict[str, int]] = {}
            for task, state, count in rows:
                found.setdefault(task, {})[state] = int(count)
            return found

        return self._db.run(work)

    def cache_counts(self, run_id: str) -> dict[str, tuple[int, int]]:
        """task -> (cached, recomputed) among its current SUCCESS attempts.

        The GROUP BY form groups by state too and filters here: a state condition in it would
        stop SQLite from answering from the covering summary index alone (three times slower).
        The group-by-group form (see ``counts``) counts each task's SUCCESS range directly.
        """
        query = (
            select(InstanceRow.task_name, InstanceRow.state, InstanceRow.cached, func.count())
            .where(*self._latest(run_id, None, None))
            .group_by(InstanceRow.task_name, InstanceRow.state, InstanceRow.cached)
        )
        success = TaskState.SUCCESS.value

        def work(conn: Connection) -> dict[str, tuple[int, int]]:
            if counts.skip_scan(conn, self._sql, run_id):
                rows = conn.exec_driver_sql(counts.CACHE_COUNTS, {"run": run_id})
                return {task: (int(hit), int(ran)) for task, hit, ran in rows if hit or ran}
            found: dict[str, list[int]] = {}
            for task, state, cached, count in conn.execute(query):
                if state == success:
                    found.setdefault(task, [0, 0])[0 if cached else 1] += int(count)
            return {task: (pair[0], pair[1]) for task, pair in found.items()}

        return self._db.run(work)

    def transitions(
        self, run_id: str, *, since_id: int = 0, limit: int | None = None,
        task_name: str | None = None,
    ) -> list[TransitionRecord]:
        """The run's (or one task's) state changes with id > ``since_id``, in order (the TUI
        polls this)."""
        query = (
            select(*_TRANSITION_COLUMNS)
            .where(TransitionRow.run_id == run_id, TransitionRow.id > since_id)
            .order_by(TransitionRow.id)
        )
        if task_name is not None:
            query = query.where(TransitionRow.task_name == task_name)
        if limit is not None:
            query = query.limit(limit)
        return self._db.run(lambda conn: [TransitionRecord(*row) for row in conn.execute(query)])

    def last_transitions(self, run_id: str, count: int) -> list[TransitionRecord]:
        """The run's newest ``count`` state changes, oldest of them first (one index seek)."""
        query = (
            select(*_TRANSITION_COLUMNS)
            .where(TransitionRow.run_id == run_id)
            .order_by(TransitionRow.id.desc())
            .limit(count)
        )
        return self._db.run(
            lambda conn: [TransitionRecord(*row) for row in conn.execute(query)][::-1]
        )

    def instance_transitions(self, instance_ids: Collection[int]) -> list[TransitionRecord]:
        """Every state change of these instances (e.g. all attempts of one), in order."""
        if not instance_ids:
            return []
        query = (
            select(*_TRANSITION_COLUMNS)
            .where(TransitionRow.instance_id.in_(sorted(set(instance_ids))))
            .order_by(TransitionRow.id)
        )
        return self._db.run(lambda conn: [TransitionRecord(*row) for row in conn.execute(query)])

    # -- shared input values (core.shared) ----------------------------------------------
    def put_shared(self, values: Mapping[str, str]) -> None:
        """Keep the texts of shared inputs by digest; a digest already kept is left as it is
        (its text is the same: the digest is the text's hash)."""
        if not values:
            return
        rows = [{"digest": d, "text": t} for d, t in values.items()]

        def work(conn: Connection) -> None:
            dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            conn.execute(dialect_insert(_SHARED_VALUES).on_conflict_do_nothing(), rows)

        self._db.run(work, write=True)

    def shared_values(self, digests: Collection[str]) -> dict[str, str]:
        """The texts of the shared inputs ``digests`` that are kept."""
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        query = select(_SHARED_VALUES.c.digest, _SHARED_VALUES.c.text).where(
            _SHARED_VALUES.c.digest.in_(wanted))
        return self._db.run(lambda conn: {d: t for d, t in conn.execute(query)})

    def add_verify_failures(self, rows: Sequence[NewVerifyFailure]) -> None:
        if not rows:
            return
        now = _now()
        values = [
            {"instance_id": r.instance_id, "run_id": r.run_id, "task_name": r.task_name,
             "array_index": r.array_index, "check_name": r.check, "reason": r.reason, "at": now}
            for r in rows
        ]  # fmt: skip
        self._db.run(lambda conn: conn.execute(insert(_VERIFY_FAILURES), values), write=True)

    def verify_failures(self, run_id: str) -> list[VerifyFailureRecord]:
        query = (
            select(*_VERIFY_COLUMNS)
            .where(VerifyFailureRow.run_id == run_id)
            .order_by(VerifyFailureRow.id)
        )
        return self._db.run(lambda conn: [VerifyFailureRecord(*row) for row in conn.execute(query)])

    def info(self) -> StoreInfo:
        def work(conn: Connection) -> StoreInfo:
            runs = conn.execute(select(func.count()).select_from(RunRow)).scalar_one()
            instances = conn.execute(select(func.count()).select_from(InstanceRow)).scalar_one()
            return StoreInfo(
                url=self.url,
                dialect=self.dialect,
                revision=current_revision(conn),
                head_revision=HEAD_REVISION,
                runs=int(runs),
                instances=int(instances),
            )

        return self._db.run(work)
