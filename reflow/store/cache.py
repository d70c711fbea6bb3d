"""Cache lookups and the lineage queries that explain cache misses.

A hit is the most recent SUCCESS with the same identity in any run (SPEC §3) that computed its
output. Cached copies are skipped: they repeat their source's output, so pointing at the source
gives the same output with the provenance a user asks for ("computed by instance N of run R"),
and keeping copies out of the index makes recording a fully cached run cheap. The lookup is
asked for a whole run's identities at once and answered from a partial index: the newest id per
identity comes from the index alone, and only those rows are read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from reflow.states import TaskState
from reflow.store.bulk import BulkSql
from reflow.store.records import CacheHit

# Literals, not parameters: the planner only uses the partial index when it sees the same
# condition in the query.
_SUCCESS = TaskState.SUCCESS.value


def find_cached(conn: Connection, sql: BulkSql, identities: Collection[str]) -> dict[str, CacheHit]:
    # Sorted probes walk the index in order: a third faster than random order on SQLite.
    # (Repeats need no removing: IN ignores them.)
    condition, param = sql.in_list("identity", sorted(identities))
    result = conn.exec_driver_sql(
        "SELECT id, run_id, identity, output, output_hash, fingerprints, finished_at, input_hash "
        "FROM instances WHERE id IN (SELECT max(id) FROM instances "
        f"WHERE state = '{_SUCCESS}' AND cached = {sql.false} AND {condition} "
        "GROUP BY identity)",
        (param,),
    )
    make = CacheHit._make
    return {row[2]: make(row) for row in result.cursor.fetchall()}


def _other_runs_with_task(
    sql: BulkSql, exclude_run: str | None, task: str | None = None
) -> tuple[str, list[object]]:
    """Runs of a workflow that have current instances of a task (order left to the caller).

    Skip markers (a task not run because its upstream failed: no identity, an empty
    pre-image) do not count: there is nothing in them to compare with.

    Walking the workflow's runs and probing each with the (run, task) index stays fast when
    the excluded run has 100,000 instances of the task, unlike scanning the task's instances.
    ``task`` is the SQL for the task name (a parameter placeholder by default).
    """
    m = sql.mark
    exclude = f" AND r.id <> {m}" if exclude_run is not None else ""
    query = (
        f"SELECT r.id FROM runs r WHERE r.workflow = {m}{exclude} AND EXISTS ("
        f"SELECT 1 FROM instances i WHERE i.run_id = r.id AND i.task_name = {task or m} "
        f"AND i.latest = {sql.true} AND i.identity <> '')"
    )
    return query, [exclude_run] if exclude_run is not None else []


def task_seen(
    conn: Connection, sql: BulkSql, workflow: str, task_name: str, exclude_run: str | None
) -> bool:
    query, extra = _other_runs_with_task(sql, exclude_run)
    result = conn.exec_driver_sql(f"{query} LIMIT 1", (workflow, *extra, task_name))
    return result.first() is not None


def reference_preimages(
    conn: Connection, sql: BulkSql, workflow: str, task_name: str, exclude_run: str | None
) -> dict[int | None, str]:
    query, extra = _other_runs_with_task(sql, exclude_run)
    m = sql.mark
    result = conn.exec_driver_sql(
        "SELECT array_index, preimage FROM instances "
        f"WHERE run_id = ({query} ORDER BY r.created_at DESC, r.id DESC LIMIT 1) "
        f"AND task_name = {m} AND latest = {sql.true} AND identity <> '' ORDER BY id",
        (workflow, *extra, task_name, task_name),
    )
    return {index: preimage for index, preimage in result}  # in id order: the last is latest


def earlier_attempt_preimages(
    conn: Connection, sql: BulkSql, run_id: str, task_name: str
) -> dict[int | None, str]:
    m = sql.mark
    result = conn.exec_driver_sql(
        f"SELECT array_index, preimage FROM instances WHERE run_id = {m} AND task_name = {m} "
        f"AND latest = {sql.false} AND identity <> '' ORDER BY id",
        (run_id, task_name),
    )
    return {index: preimage for index, preimage in result}  # the newest attempt wins


def nearest_preimage(
    conn: Connection,
    sql: BulkSql,
    workflow: str,
    task_name: str,
    array_index: int | None,
    before_instance_id: int,
    exclude_run: str | None = None,
) -> str | None:
    """The pre-image of the latest earlier instance of the task: same index first, else any."""
    m = sql.mark
    base = (f"SELECT preimage FROM instances WHERE workflow = {m} AND task_name = {m} "
            f"AND id < {m} AND identity <> ''")
    args: tuple[object, ...] = (workflow, task_name, before_instance_id)
    if exclude_run is not None:
        base += f" AND run_id <> {m}"
        args += (exclude_run,)
    order = " ORDER BY id DESC LIMIT 1"
    if array_index is None:
        same = conn.exec_driver_sql(f"{base} AND array_index IS NULL{order}", args)
    else:
        same = conn.exec_driver_sql(f"{base} AND array_index = {m}{order}", (*args, array_index))
    found = same.scalar()
    if found is None:
        found = conn.exec_driver_sql(f"{base}{order}", args).scalar()
    return None if found is None else str(found)


@dataclass(frozen=True, slots=True)
class TaskHistory:
    """What the store knew, at one moment, about earlier instances of a workflow's tasks.

    ``recorded``: tasks with any instance at all; a task outside it can have no cache hit (its
    name is part of every identity), so its lookup can be skipped. ``seen``: tasks that
    ``task_seen`` would report; a miss of any other task is ``new`` without a diff.
    """

    recorded: frozenset[str]
    seen: frozenset[str]


# Names per statement: well under SQLite's parameter limit with the other parameters.
_NAMES_PER_QUERY = 400


def task_history(
    conn: Connection,
    sql: BulkSql,
    workflow: str,
    task_names: Collection[str],
    exclude_run: str | None,
) -> TaskHistory:
    """Both sets for all ``task_names`` in one statement per few hundred names.

    Each name costs one probe of the lineage index, and the ``seen`` probe runs only for
    recorded names, so a chain of 1,000 tasks asks once instead of twice per task.
    """
    m = sql.mark
    names = sorted(set(task_names))
    recorded: set[str] = set()
    for start in range(0, len(names), _NAMES_PER_QUERY):
        chunk = names[start : start + _NAMES_PER_QUERY]
        values = ", ".join([f"({m})"] * len(chunk))
        result = conn.exec_driver_sql(
            f"WITH t(name) AS (VALUES {values}) SELECT t.name FROM t WHERE EXISTS ("
            f"SELECT 1 FROM instances i WHERE i.workflow = {m} AND i.task_name = t.name)",
            (*chunk, workflow),
        )
        recorded.update(row[0] for row in result.all())
    seen: set[str] = set()
    correlated, extra = _other_runs_with_task(sql, exclude_run, "t.name")
    found = sorted(recorded)
    for start in range(0, len(found), _NAMES_PER_QUERY):
        chunk = found[start : start + _NAMES_PER_QUERY]
        values = ", ".join([f"({m})"] * len(chunk))
        result = conn.exec_driver_sql(
            f"WITH t(name) AS (VALUES {values}) SELECT t.name FROM t WHERE EXISTS ({correlated})",
            (*chunk, workflow, *extra),
        )
        seen.update(row[0] for row in result.all())
    return TaskHistory(frozenset(recorded), frozenset(seen))
