"""Counting a run's current attempts per task for status displays, the SQLite way when cheaper.

``status`` of a run with 100,000 instances must take at most 15 ms of query time (SPEC §10).
A GROUP BY over the run's range of the summary index costs about 150 ns per instance on
SQLite, most of it spent comparing each entry's group key with the last. When a run has few
tasks, SQLite is asked instead to seek from one (task, state) group to the next in the same
index and to count each group's range, which steps through entries at under half that cost
(measured 8.6 vs 14.4 ms for 100,000). A run with many tasks (a long chain of singletons) has
about as many groups as instances, where a few seeks per group cost more than grouping: it
keeps the GROUP BY, as PostgreSQL always does.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from reflow.states import TaskState
from reflow.store.bulk import BulkSql

# Up to this many tasks a run is counted group by group (at most seven states each).
SKIP_SCAN_MAX_TASKS = 64

# The run's tasks in name order, each found by one seek past the previous one.
_TASKS = """
WITH RECURSIVE tasks(t) AS (
  SELECT min(task_name) FROM instances WHERE run_id = :run AND latest = 1
  UNION ALL
  SELECT (SELECT min(task_name) FROM instances
          WHERE run_id = :run AND latest = 1 AND task_name > tasks.t)
  FROM tasks WHERE tasks.t IS NOT NULL
)"""

STATE_COUNTS = _TASKS + """,
groups(t, s) AS (
  SELECT t, (SELECT min(state) FROM instances
             WHERE run_id = :run AND latest = 1 AND task_name = tasks.t)
  FROM tasks WHERE t IS NOT NULL
  UNION ALL
  SELECT t, (SELECT min(state) FROM instances
             WHERE run_id = :run AND latest = 1 AND task_name = groups.t AND state > groups.s)
  FROM groups WHERE s IS NOT NULL
)
SELECT t, s, (SELECT count(*) FROM instances
              WHERE run_id = :run AND latest = 1 AND task_name = groups.t AND state = groups.s)
FROM groups WHERE s IS NOT NULL"""

_SUCCESS_WHERE = (
    f"run_id = :run AND latest = 1 AND task_name = tasks.t AND state = '{TaskState.SUCCESS}'"
)
CACHE_COUNTS = _TASKS + f"""
SELECT t,
  (SELECT count(*) FROM instances WHERE {_SUCCESS_WHERE} AND cached = 1),
  (SELECT count(*) FROM instances WHERE {_SUCCESS_WHERE} AND cached = 0)
FROM tasks WHERE t IS NOT NULL"""


def skip_scan(conn: Connection, sql: BulkSql, run_id: str) -> bool:
    """Whether to count ``run_id`` group by group (SQLite, few tasks) instead of grouping."""
    if not sql.sqlite:
        return False
    tasks = conn.exec_driver_sql(
        "SELECT count(*) FROM task_specs WHERE run_id = ?", (run_id,)
    ).scalar_one()
    return int(tasks) <= SKIP_SCAN_MAX_TASKS
