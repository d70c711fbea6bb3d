"""Builders for the records the store tests insert (imported by the test modules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reflow.store import NewInstance, NewRun, NewTaskSpec, Store

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def new_run(
    run_id: str,
    *,
    workflow: str = "wf",
    status: str = "RUNNING",
    created_at: datetime | None = None,
) -> NewRun:
    return NewRun(
        run_id=run_id, workflow=workflow, entrypoint="pipeline.py", run_dir=f"/runs/{run_id}",
        user="alice", host="login1", status=status, parameters='{"start":"2024-01-01"}',
        options='{"force":false}', reflow_version="0.1.0", created_at=created_at or T0,
    )  # fmt: skip


SPECS = [
    NewTaskSpec("prepare", 0, False, "1", "{}", "[]", "list[str]"),
    NewTaskSpec("convert", 1, True, "1", "{}", '["prepare"]', "str"),
    NewTaskSpec("publish", 2, False, "1", "{}", '["convert"]', "str"),
]


def add_run(
    store: Store, run_id: str, *, workflow: str = "wf", minutes: int = 0, status: str = "RUNNING"
) -> str:
    """Record a run with SPECS, created ``minutes`` after T0 (so tests control "newest")."""
    created = T0 + timedelta(minutes=minutes)
    store.create_run(new_run(run_id, workflow=workflow, status=status, created_at=created), SPECS)
    return run_id


def instance(
    run_id: str,
    task: str = "convert",
    index: int | None = 0,
    *,
    state: str = "PENDING",
    identity: str | None = None,
    workflow: str = "wf",
    **extra: object,
) -> NewInstance:
    ident = identity if identity is not None else f"id-{run_id}-{task}-{index}"
    values: dict[str, object] = {
        "run_id": run_id, "workflow": workflow, "task_name": task, "array_index": index,
        "attempt": 1, "state": state, "identity": ident, "input_hash": f"in-{ident}",
        "preimage": f'{{"identity":"{ident}"}}', "input": '{"x":1}', "reason": "new",
    }  # fmt: skip
    values.update(extra)
    return NewInstance(**values)  # type: ignore[arg-type]
