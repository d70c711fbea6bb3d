"""``run_local``: the whole DAG in this process, with the same records as any other path.

Tasks are processed in topological generations; inside one generation every instance of every
task goes to one pool, so independent tasks and array elements run side by side. Rows are
written in batches (one transaction per batch of new instances and one per batch of results),
which keeps the per-instance overhead to a few row writes instead of a committed transaction
each; a crash loses at most the batch in flight, which the next run simply recomputes.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.core.codec import decode, loads
from reflow.core.graph import TaskGraph
from reflow.core.hashing import value_hash
from reflow.core.parameters import resolve_parameters
from reflow.core.spec import TaskSpec
from reflow.engine import reasons
from reflow.engine.expand import Expanded, TaskOutputs, expand_task
from reflow.engine.gc_pause import gc_paused
from reflow.engine.planner import Decision
from reflow.engine.recording import cached_row, fresh_row, plan_task
from reflow.engine.run_records import record_run
from reflow.engine.verify import VerifyProblem
from reflow.errors import EncodeError, RunFailedError, UnknownTaskError, suggestion
from reflow.states import RunState, TaskState
from reflow.store import InstanceRecord, NewInstance, NewVerifyFailure, StateChange, Store

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.run import Run

BATCH_FIRST, BATCH_MIN, BATCH_MAX = 256, 16, 8192
BATCH_SECONDS = 0.5
_RUNNING = frozenset({TaskState.RUNNING.value})
_STOPPED = "not run: the run stopped at its first failure (on_error='stop')"
_INTERRUPTED = "interrupted: the in-process run was stopped (KeyboardInterrupt)"


def check_task_names(graph: TaskGraph, names: Iterable[str], what: str) -> list[str]:
    """Reject unknown task names with the closest match; returns them as a list."""
    out = list(names)
    for name in out:
        if name not in graph.specs:
            hint = suggestion(name, graph.specs) or f" Tasks: {', '.join(graph.order)}."
            raise UnknownTaskError(f"{what}: unknown task '{name}'.{hint}")
    return out


def run_local(
    wf: Workflow,
    run_dir: str | Path,
    *,
    store: Any = None,
    max_workers: int = 1,
    force: bool = False,
    force_tasks: Iterable[str] | None = None,
    verify: bool = False,
    on_error: str = "stop",
    **params: Any,
) -> Run:
    """Run every task of ``wf`` in this process and return the finished ``Run``."""
    from reflow.run import Run

    graph = wf.validate()
    if on_error not in ("stop", "continue"):
        raise ValueError(f"on_error={on_error!r} is not valid; use 'stop' or 'continue'")
    if max_workers < 1:
        raise ValueError(f"max_workers={max_workers} must be at least 1")
    forced = check_task_names(graph, force_tasks or (), "force_tasks")
    per_task, record = resolve_parameters(graph.specs, params)
    st = Store.open(store)
    directory = Path(run_dir).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    options = {"executor": "inline", "force": force, "force_tasks": forced, "verify": verify,
               "on_error": on_error, "max_workers": max_workers, "pid": os.getpid(),
               "host": socket.gethostname()}
    run_id = record_run(st, wf, graph, directory, record, options)
    execution = InlineExecution(
        wf.name, graph, st, run_id, directory, per_task,
        force=force, force_tasks=set(forced), verify=verify, on_error=on_error,
        max_workers=max_workers,
    )
    execution.execute()
    run = Run(run_id, store=st, workflow=wf)
    execution.raise_if_stopped()
    return run


@dataclass
class _Pending:
    """An instance that is about to execute in this process.

    Fresh instances carry their expansion and reason until their row is written; retried
    instances already have a row (``instance_id``) in state RETRYING.
    """

    spec: TaskSpec
    index: int | None
    kwargs: dict[str, Any]
    instance_id: int = 0
    expanded: Expanded | None = None
    reason: str = ""
    problems: list[VerifyProblem] = field(default_factory=list)


class _Stored:
    """An output still in its stored JSON text: decoded only if a dependant needs the value."""

    __slots__ = ("text",)

    def __init__(self, text: str | None) -> None:
        self.text = text


@dataclass
class _TaskState:
    outputs: dict[int | None, tuple[Any, str]] = field(default_factory=dict)
    failed: bool = False
    done: bool = False


def _value(held: Any) -> Any:
    return (loads(held.text) if held.text is not None else None) if isinstance(
        held, _Stored) else held


class InlineExecution:
    """Executes (or resumes) one run in this process; also used by ``Run.retry``."""

    def __init__(
        self,
        workflow: str,
        graph: TaskGraph,
        store: Store,
        run_id: str,
        run_dir: Path,
        params: Mapping[str, Mapping[str, Any]],
        *,
        force: bool = False,
        force_tasks: set[str] | None = None,
        verify: bool = False,
        on_error: str = "stop",
        max_workers: int = 1,
        existing: Mapping[str, Sequence[InstanceRecord]] | None = None,
    ) -> None:
        self.workflow = workflow
        self.graph = graph
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.params = params
        self.force = force
        self.force_tasks = force_tasks or set()
        self.verify = verify
        self.on_error = on_error
        self.max_workers = max_workers
        self.existing = existing or {}
        self.tasks: dict[str, _TaskState] = {}
        self.stopped_by: str | None = None

    # -- top level -------------------------------------------------------------------------
    def execute(self) -> RunState:
        try:
            for generation in self.graph.generations():
                pending: list[_Pending] = []
                with gc_paused():
                    for name in generation:
                        pending.extend(self._prepare_task(name))
                if pending:
                    self._run_pending(pending)
                for name in generation:
                    self._close_task(name)
                if self.stopped_by:
                    break
        finally:
            status = self._finalise()
        return status

    def raise_if_stopped(self) -> None:
        if self.stopped_by:
            raise RunFailedError(
                f"task '{self.stopped_by}' failed, so run {self.run_id} stopped; see "
                f"`reflow status {self.run_id} --errors`, fix it and `reflow retry {self.run_id}`",
                run_id=self.run_id,
                task=self.stopped_by,
            )

    # -- planning one task -----------------------------------------------------------------
    def _prepare_task(self, name: str) -> list[_Pending]:
        spec = self.graph.specs[name]
        state = self.tasks.setdefault(name, _TaskState())
        blocked = [u for u in spec.upstream() if self.tasks.get(u, _TaskState()).failed]
        if blocked:
            state.failed = True
            if not any(r.state != TaskState.CANCELLED for r in self.existing.get(name, ())):
                self._insert_skip_marker(spec, blocked[0])
            return []
        rows = self.existing.get(name)
        if rows:
            return self._resume_task(spec, state, rows)
        upstream = {u: self._outputs_of(u) for u in spec.upstream()}
        expanded = expand_task(self.workflow, spec, self.graph.wires[name], upstream,
                               self.params.get(name, {}))
        return self._plan(spec, state, expanded)

    def _outputs_of(self, name: str) -> TaskOutputs:
        state = self.tasks[name]
        keys = sorted(state.outputs, key=lambda k: -1 if k is None else k)
        return TaskOutputs(
            self.graph.specs[name].is_array,
            [_value(state.outputs[k][0]) for k in keys],
            [state.outputs[k][1] for k in keys],
        )

    def _resume_task(
        self, spec: TaskSpec, state: _TaskState, rows: Sequence[InstanceRecord]
    ) -> list[_Pending]:
        pending = []
        for row in rows:
            if row.state == TaskState.SUCCESS:
                state.outputs[row.array_index] = (_Stored(row.output), row.output_hash or "")
            elif row.state == TaskState.RETRYING:
                kwargs = decode(json.loads(row.input))
                pending.append(_Pending(spec, row.array_index, kwargs, row.id))
            else:
                state.failed = True
        return pending

    def _plan(
        self, spec: TaskSpec, state: _TaskState, expanded: list[Expanded]
    ) -> list[_Pending]:
        now = datetime.now(UTC)
        decisions = plan_task(self.store, self.workflow, self.run_id, spec, expanded,
                              forced=self.force or spec.name in self.force_tasks,
                              verify=self.verify)
        cached_rows: list[NewInstance] = []
        misses: list[Decision] = []
        for d in decisions:
            if d.hit is None:
                misses.append(d)
                continue
            cached_rows.append(cached_row(self.run_id, self.workflow, spec.name, d, now))
            state.outputs[d.expanded.index] = (loads(d.hit.output), d.hit.output_hash)
        if cached_rows:
            self.store.insert_instances(cached_rows)
        return [
            _Pending(spec, d.expanded.index, d.expanded.kwargs, expanded=d.expanded,
                     reason=d.reason, problems=d.problems)
            for d in misses
        ]

    def _insert_skip_marker(self, spec: TaskSpec, upstream: str) -> None:
        now = datetime.now(UTC)
        message = f"skipped: upstream task '{upstream}' failed"
        self.store.insert_instances([NewInstance(
            run_id=self.run_id, workflow=self.workflow, task_name=spec.name, array_index=None,
            attempt=1, state=TaskState.CANCELLED, identity="", input_hash="", preimage="{}",
            input="{}", reason=reasons.SKIPPED, error_text=message, finished_at=now,
            detail=message,
        )])

    # -- executing -------------------------------------------------------------------------
    def _run_pending(self, pending: list[_Pending]) -> None:
        """Run instances in batches sized so that each takes about ``BATCH_SECONDS``.

        Fast tasks get large batches (few transactions), slow ones small batches, so that
        the store shows RUNNING for roughly what is really running and a crash loses little.
        """
        start, size = 0, BATCH_FIRST
        while start < len(pending):
            batch = pending[start:start + size]
            began = time.monotonic()
            with gc_paused():
                self._start_batch(batch)
            self._execute_batch(batch)
            start += len(batch)
            if self.stopped_by:
                rest = pending[start:]
                if rest:
                    with gc_paused():
                        self._start_batch(rest)
                        changes: list[StateChange] = []
                        self._cancel_unstarted(rest, changes)
                        self.store.apply(changes)
                return
            took = time.monotonic() - began
            size = max(BATCH_MIN, min(BATCH_MAX, int(size * 2 if took < BATCH_SECONDS
                                                      else size / 2)))

    def _start_batch(self, batch: list[_Pending]) -> None:
        """Record the batch as RUNNING: new rows for fresh instances, CAS for retries."""
        now = datetime.now(UTC)
        fresh = [p for p in batch if p.expanded is not None and not p.instance_id]
        if fresh:
            rows = []
            for p in fresh:
                e = p.expanded
                assert e is not None
                rows.append(fresh_row(self.run_id, self.workflow, p.spec.name, e, p.reason,
                                      TaskState.RUNNING, f"running in-process ({p.reason})",
                                      started_at=now))
            for p, new_id in zip(fresh, self.store.insert_instances(rows), strict=True):
                p.instance_id = new_id
            failures = [
                NewVerifyFailure(p.instance_id, self.run_id, p.spec.name, p.index, prob.check,
                                 f"{prob.kind}: {prob.reason}")
                for p in fresh
                for prob in p.problems
            ]
            if failures:
                self.store.add_verify_failures(failures)
        retried = [p for p in batch if p.expanded is None]
        if retried:
            self.store.apply([
                StateChange(p.instance_id, frozenset({TaskState.RETRYING.value}),
                            TaskState.RUNNING, "running in-process (retry)",
                            {"started_at": now})
                for p in retried
            ])

    def _execute_batch(self, batch: list[_Pending]) -> None:
        changes: list[StateChange] = []
        try:
            if self.max_workers == 1:
                for p in batch:
                    changes.append(self._call(p))
                    if self.on_error == "stop" and changes[-1].to_state == TaskState.FAILED:
                        self.stopped_by = p.spec.name
                        self._cancel_unstarted(batch[len(changes):], changes)
                        break
            else:
                changes = self._execute_parallel(batch)
        except KeyboardInterrupt:
            # Keep what finished and close the rest, so no row is left RUNNING forever.
            done = {c.instance_id for c in changes}
            self.stopped_by = self.stopped_by or "(interrupted)"
            self._cancel_unstarted([p for p in batch if p.instance_id not in done], changes,
                                   _INTERRUPTED)
            self.store.apply(changes)
            raise
        with gc_paused():
            self.store.apply(changes)

    def _execute_parallel(self, batch: list[_Pending]) -> list[StateChange]:
        changes: list[StateChange] = []
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="reflow") as pool:
            futures: dict[Future[StateChange], _Pending] = {
                pool.submit(self._call, p): p for p in batch
            }
            todo = set(futures)
            while todo:
                done, todo = wait(todo, return_when=FIRST_EXCEPTION)
                for f in done:
                    change = f.result()
                    changes.append(change)
                    if self.on_error == "stop" and change.to_state == TaskState.FAILED:
                        self.stopped_by = self.stopped_by or futures[f].spec.name
                if self.stopped_by:
                    cancelled = [futures[f] for f in todo if f.cancel()]
                    todo = {f for f in todo if not f.cancelled()}
                    self._cancel_unstarted(cancelled, changes)
        return changes

    def _cancel_unstarted(self, rest: Sequence[_Pending], changes: list[StateChange],
                          why: str = _STOPPED) -> None:
        now = datetime.now(UTC)
        for p in rest:
            self.tasks[p.spec.name].failed = True
        changes.extend(
            StateChange(p.instance_id, _RUNNING, TaskState.CANCELLED, why,
                        {"error_text": why, "finished_at": now})
            for p in rest
        )

    def _call(self, p: _Pending) -> StateChange:
        spec = p.spec
        kwargs = dict(p.kwargs)
        for inp in spec.inputs:
            if inp.kind == "rundir":
                kwargs[inp.name] = self.run_dir
        where = f"output of task '{spec.name}'" + (f"[{p.index}]" if p.index is not None else "")
        try:
            value = spec.func(**kwargs)
            out = value_hash(value, where=where)
        except EncodeError as exc:
            return self._failed(p, str(exc))
        except BaseException as exc:  # the task's own failure, recorded with its traceback
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return self._failed(p, "".join(traceback.format_exception(exc)))
        self.tasks[spec.name].outputs[p.index] = (value, out.digest)
        return StateChange(
            p.instance_id, _RUNNING, TaskState.SUCCESS, "",
            {"output": out.canonical, "output_hash": out.digest,
             "fingerprints": json.dumps(out.fingerprints) if out.fingerprints else None,
             "finished_at": datetime.now(UTC), "exit_code": 0},
        )

    def _failed(self, p: _Pending, text: str) -> StateChange:
        self.tasks[p.spec.name].failed = True
        last = text.strip().splitlines()[-1] if text.strip() else "failed"
        return StateChange(
            p.instance_id, _RUNNING, TaskState.FAILED, last[:500],
            {"error_text": text, "finished_at": datetime.now(UTC), "exit_code": 1},
        )

    # -- closing ---------------------------------------------------------------------------
    def _close_task(self, name: str) -> None:
        state = self.tasks.setdefault(name, _TaskState())
        state.done = not state.failed

    def _finalise(self) -> RunState:
        complete = all(self.tasks.get(n, _TaskState()).done for n in self.graph.order)
        status = RunState.SUCCESS if complete else RunState.FAILED
        self.store.set_run_status(self.run_id, status, only_from={RunState.RUNNING.value})
        return status
