"""``run_local``: the whole DAG in this process, with the same records as any other path.

Tasks are processed in topological generations; inside one generation every instance of every
task goes to one pool, so independent tasks and array elements run side by side. Rows are
written behind, in one transaction per half second or so of running (``write_behind``), which
keeps the per-instance overhead to a few row writes instead of several committed transactions
per task; a crash loses at most the unwritten batch, which the next run simply recomputes.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from reflow.core.codec import loads, storable_text
from reflow.core.graph import TaskGraph
from reflow.core.hashing import value_hash
from reflow.core.parameters import resolve_parameters
from reflow.core.resources import retry_matches
from reflow.core.shared import resolve
from reflow.core.spec import TaskSpec
from reflow.engine.expand import Expanded, TaskOutputs, expand_task
from reflow.engine.gc_pause import gc_paused
from reflow.engine.recording import (
    CANCELLED_BY_USER,
    copy_batch,
    keep_shared,
    marker_row,
    plan_task,
    planned_instance,
)
from reflow.engine.run_records import make_run_dir, record_run
from reflow.engine.verify import VerifyProblem
from reflow.engine.write_behind import Slot, WriteBehind
from reflow.errors import (
    EncodeError,
    OptionError,
    ReflowError,
    RunFailedError,
    StoreError,
    UnknownTaskError,
    suggestion,
)
from reflow.states import RunState, TaskState
from reflow.store import InstanceRecord, Store
from reflow.store.cache import TaskHistory
from reflow.store.writes import RecordedInstance

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.run import Run

BATCH_FIRST, BATCH_MIN, BATCH_MAX = 256, 16, 8192
BATCH_SECONDS = 0.5
START_REUSE_SECONDS = 0.001  # see InlineExecution._start_time
_RUNNING_STATE = TaskState.RUNNING.value
_PENDING_STATE = TaskState.PENDING.value
_RUNNING = frozenset({_RUNNING_STATE})
# Where an instance waits for its turn in this process: planned here, or a retried attempt.
_WAITING = frozenset({_PENDING_STATE, TaskState.RETRYING.value})
_OPEN = _WAITING | _RUNNING
_STOPPED = "not run: the run stopped at its first failure (on_error='stop')"
_INTERRUPTED = "interrupted: the in-process run was stopped (KeyboardInterrupt)"
_CANCELLED_MARK = "(cancelled)"  # ``stopped_by`` of a run cancelled from elsewhere
_FAILED_EXIT = 1  # a body that raised, as a worker process exits for it


def check_forced_tasks(graph: TaskGraph, names: Iterable[str] | str | None) -> list[str]:
    """Reject unknown ``force_tasks`` with the closest match; returns them as a list.

    The message names both spellings: the same check serves Python and ``--force-tasks``.
    One name may be given as a plain string, and names may be joined by commas
    (``--force-tasks a,b``), as ``--status`` takes them: a string is never split into letters.
    """
    given = [names] if isinstance(names, str) else list(names or ())
    out = [name.strip() for text in given for name in text.split(",") if name.strip()]
    for name in out:
        if name not in graph.specs:
            hint = suggestion(name, graph.specs) or f" Tasks: {', '.join(graph.order)}."
            raise UnknownTaskError(
                f"force_tasks (--force-tasks): unknown task '{name}'.{hint}")
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
    progress: bool | None = None,
    **params: Any,
) -> Run:
    """Run every task of ``wf`` in this process and return the finished ``Run``.

    ``progress`` shows a live per-task display (default: when stdout is a terminal).
    """
    from reflow.run import Run

    graph = wf.validate()
    if on_error not in ("stop", "continue"):
        raise OptionError(f"on_error={on_error!r} is not valid; use 'stop' or 'continue'")
    if not isinstance(max_workers, int) or max_workers < 1:
        raise OptionError(f"max_workers={max_workers!r} must be a whole number of at least 1")
    forced = check_forced_tasks(graph, force_tasks)
    per_task, record = resolve_parameters(graph.specs, params)
    st = Store.open(store)
    directory = make_run_dir(run_dir)
    options = {"executor": "inline", "force": force, "force_tasks": forced, "verify": verify,
               "on_error": on_error, "max_workers": max_workers, "pid": os.getpid(),
               "host": socket.gethostname()}
    run_id = record_run(st, wf, graph, directory, record, options)
    execution = InlineExecution(
        wf.name, graph, st, run_id, directory, per_task,
        force=force, force_tasks=set(forced), verify=verify, on_error=on_error,
        max_workers=max_workers,
    )
    show = sys.stdout.isatty() if progress is None else progress
    try:
        if show:
            from reflow.progress import LiveProgress

            with LiveProgress(st) as display:
                display.follow(run_id)
                execution.execute()
        else:
            execution.execute()
    except StoreError as exc:
        args = f"{run_id}{st.cli_option()}"
        raise StoreError(f"run {run_id} stopped: {exc}; once the store answers, `reflow retry "
                         f"{args}` carries on (`reflow resume {args}` if it still shows "
                         "RUNNING)", run_id=run_id) from exc
    run = Run(run_id, store=st, workflow=wf)
    execution.raise_if_stopped()
    return run


@dataclass(slots=True)
class _Pending:
    """An instance that is about to execute in this process.

    Fresh instances carry their expansion and reason until their row is recorded; retried
    instances already have a row in state RETRYING (``slot`` set from the start). ``running``
    is the detail of its move to RUNNING when its body starts.
    """

    spec: TaskSpec
    index: int | None
    kwargs: dict[str, Any]
    slot: Slot | None = None
    expanded: Expanded | None = None
    reason: str = ""
    problems: Sequence[VerifyProblem] = ()
    done: bool = False
    running: str = "running in-process (retry)"
    attempt: int = 1


@dataclass(slots=True)
class _Outcome:
    """How one call ended: the state to record and the columns that go with it."""

    to_state: str
    detail: str
    fields: dict[str, object]
    at: datetime


@dataclass
class _TaskState:
    """A task's progress in this process and its outputs with their hashes, by index.

    ``outputs`` holds values computed here; ``stored`` the JSON texts of outputs recorded
    before (cache hits, resumed rows), parsed only when a dependant needs the values.
    """

    outputs: dict[int | None, tuple[Any, str]] = field(default_factory=dict)
    stored: dict[int | None, tuple[str | None, str]] = field(default_factory=dict)
    # Recorded file fingerprints of the outputs that hold a Path (a mapping, or JSON text).
    fingerprints: dict[int | None, Mapping[str, Any] | str] = field(default_factory=dict)
    failed: bool = False
    # What a dependant's skip note says happened to it: "failed" unless nothing of it raised.
    ended: str = "failed"
    done: bool = False


# Read-only stand-in for a task that has not been prepared: not failed, not done.
_NOT_STARTED = _TaskState()


def _index_order(index: int | None) -> int:
    return -1 if index is None else index


def _parsed(text: str | None) -> Any:
    return None if text is None else loads(text)


class InlineExecution:
    """Executes (or resumes) one run in this process; also used by ``Run.retry``.

    Everything it records goes through a write-behind buffer (see ``write_behind``), so the
    store sees a few transactions per second of running, not several per task.
    """

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
        self._stop_text = _STOPPED
        self._status_at = time.monotonic()
        self.buffer = WriteBehind(store, max_age=BATCH_SECONDS)
        self._history: TaskHistory | None = None
        self._history_at = 0.0
        self._last_end: tuple[datetime, float] | None = None  # (end, monotonic) of the last body
        self._prepared: set[str] = set()  # tasks planned in this process (rows added)
        self._open: list[_Pending] = []  # the generation being executed

    # -- top level -------------------------------------------------------------------------
    def execute(self) -> RunState:
        with self.buffer.watching():
            try:
                generations = list(self.graph.generations())
                for g, generation in enumerate(generations):
                    pending: list[_Pending] = []
                    with gc_paused():
                        for name in generation:
                            pending.extend(self._prepare_task(name))
                            self._prepared.add(name)
                    if pending:
                        self._open = list(pending)  # automatic retries join it, not the plan
                        self._run_pending(pending)
                    for name in generation:
                        self._close_task(name)
                    self._stop_if_cancelled()
                    if self.stopped_by:
                        self._mark_not_run([n for later in generations[g + 1:] for n in later])
                        break
            except BaseException as exc:  # Ctrl-C, or the store gone past its deadline
                self._close_after(exc)
                raise
            finally:
                status = self._finalise()
        return status

    def _close_after(self, exc: BaseException) -> None:
        """Keep what finished and close the rest, so that no row is left open for ever and
        ``retry`` carries on (rows left PENDING were neither retried nor resumed): open
        instances end CANCELLED, tasks not planned yet get a "not run" marker. Only the
        buffer is touched here; the store may be the thing that failed."""
        why = (_INTERRUPTED if isinstance(exc, KeyboardInterrupt)
               else f"interrupted: the in-process run stopped on {type(exc).__name__}")
        self.stopped_by = self.stopped_by or "(interrupted)"
        self._stop_text = why
        self._cancel_unstarted([p for p in self._open if not p.done], why)
        self._mark_not_run([n for n in self.graph.order if n not in self._prepared])

    def raise_if_stopped(self) -> None:
        run = f"{self.run_id}{self.store.cli_option()}"
        if self.stopped_by == _CANCELLED_MARK:
            raise RunFailedError(
                f"run {self.run_id} was cancelled while it ran; `reflow retry {run}` "
                "runs what is left", run_id=self.run_id,
            )
        if self.stopped_by:
            raise RunFailedError(
                f"task '{self.stopped_by}' failed, so run {self.run_id} stopped; see "
                f"`reflow status {run} --errors`, fix it and `reflow retry {run}`",
                run_id=self.run_id,
                task=self.stopped_by,
            )

    # -- planning one task -----------------------------------------------------------------
    def _state(self, name: str) -> _TaskState:
        state = self.tasks.get(name)
        if state is None:
            state = self.tasks[name] = _TaskState()
        return state

    def _prepare_task(self, name: str) -> list[_Pending]:
        spec = self.graph.specs[name]
        state = self._state(name)
        blocked = [u for u in spec.upstream() if self.tasks.get(u, _NOT_STARTED).failed]
        if blocked:
            state.failed, state.ended = True, "was skipped"
            if not any(r.state != TaskState.CANCELLED for r in self.existing.get(name, ())):
                self._insert_skip_marker(
                    spec, f"skipped: upstream task '{blocked[0]}' {self.tasks[blocked[0]].ended}")
            return []
        rows = self.existing.get(name)
        if rows:
            pending = self._resume_task(spec, state, rows)
            if spec.is_array:
                # Elements are recorded batch by batch as they start: a process killed
                # mid-array never recorded the later batches, which are planned now.
                recorded = {row.array_index for row in rows}
                missing = [e for e in self._expanded(spec, state) if e.index not in recorded]
                pending += self._plan(spec, state, missing) if missing else []
            return pending
        return self._plan(spec, state, self._expanded(spec, state))

    def _expanded(self, spec: TaskSpec, state: _TaskState) -> list[Expanded]:
        """The task's instances; none when its inputs cannot be wired (an upstream value
        that is not a list, fan-outs of unequal length): the task is then recorded FAILED
        with the message, as the driver does, and ``on_error`` applies as to any failure."""
        try:
            return self._expand(spec)
        except ReflowError as exc:
            message = str(exc)
        state.failed, state.ended = True, "failed"
        now = datetime.now(UTC)
        self.buffer.add(RecordedInstance.of(
            marker_row(self.run_id, self.workflow, spec.name, message, now, skipped=False),
            [(None, TaskState.FAILED.value, now, message[:500])]))
        if self.on_error == "stop":
            self.stopped_by = self.stopped_by or spec.name
        return []

    def _expand(self, spec: TaskSpec) -> list[Expanded]:
        upstream = {u: self._outputs_of(u) for u in spec.upstream()}
        return expand_task(self.workflow, spec, self.graph.wires[spec.name], upstream,
                           self.params.get(spec.name, {}))

    def _outputs_of(self, name: str) -> TaskOutputs:
        state = self.tasks[name]
        live, stored = state.outputs, state.stored
        fps = state.fingerprints
        if None in live:  # a singleton computed here: most upstreams of a chain
            value, digest = live[None]
            return TaskOutputs(False, [value], [digest], [fps.get(None)] if fps else ())
        keys = sorted(live.keys() | stored.keys(), key=_index_order)
        texts = [stored[k][0] for k in keys] if not live else []
        if texts and None not in texts:
            # All stored (cache hits, resumed rows): one parse for all instead of one each.
            values = loads("[" + ",".join(cast(list[str], texts)) + "]")
        else:
            values = [live[k][0] if k in live else _parsed(stored[k][0]) for k in keys]
        hashes = [live[k][1] if k in live else stored[k][1] for k in keys]
        return TaskOutputs(self.graph.specs[name].is_array, values, hashes,
                           [fps.get(k) for k in keys] if fps else ())

    def _resume_task(
        self, spec: TaskSpec, state: _TaskState, rows: Sequence[InstanceRecord]
    ) -> list[_Pending]:
        pending = []
        for row in rows:
            if row.state == TaskState.SUCCESS:
                state.stored[row.array_index] = (row.output, row.output_hash or "")
                if row.fingerprints:
                    state.fingerprints[row.array_index] = row.fingerprints
            elif row.state == TaskState.RETRYING:
                kwargs = loads(resolve(row.input, self.store.shared_values))
                slot = self.buffer.existing(row.id, TaskState.RETRYING.value)
                pending.append(_Pending(spec, row.array_index, kwargs, slot, attempt=row.attempt))
            else:
                state.failed = True
        return pending

    def _task_history(self) -> TaskHistory:
        """What the store knows about earlier instances of this workflow's tasks.

        Asked once for all tasks instead of per task, and asked again after ``BATCH_SECONDS``
        so that work recorded meanwhile by other runs is found as it would be per task.
        """
        now = time.monotonic()
        if self._history is None or now - self._history_at >= BATCH_SECONDS:
            self._history = self.store.task_history(self.workflow, self.graph.order,
                                                    exclude_run=self.run_id)
            self._history_at = now
        return self._history

    def _plan(
        self, spec: TaskSpec, state: _TaskState, expanded: list[Expanded]
    ) -> list[_Pending]:
        keep_shared(self.store, expanded)
        decisions = plan_task(self.store, self.workflow, self.run_id, spec, expanded,
                              forced=self.force or spec.name in self.force_tasks,
                              verify=self.verify, history=self._task_history())
        misses = [d for d in decisions if d.hit is None]
        if len(misses) < len(decisions):
            hits = copy_batch(self.run_id, self.workflow, spec.name, decisions,
                              datetime.now(UTC))
            stored = state.stored
            for copy in hits.copies:
                stored[copy.array_index] = (copy.source.output, copy.source.output_hash)
                if copy.source.fingerprints:
                    state.fingerprints[copy.array_index] = copy.source.fingerprints
            self.buffer.add_copies(hits)
        return [
            _Pending(spec, d.expanded.index, d.expanded.kwargs, expanded=d.expanded,
                     reason=d.reason, problems=d.problems)
            for d in misses
        ]

    def _mark_not_run(self, names: list[str]) -> None:
        """Tasks the stop left unplanned get a marker (``status`` shows them, not "no
        instances"), which a retry replaces as it does a skip."""
        for name in names:
            if name not in self.existing:
                self._insert_skip_marker(self.graph.specs[name], self._stop_text)

    def _insert_skip_marker(self, spec: TaskSpec, message: str) -> None:
        now = datetime.now(UTC)
        self.buffer.add(RecordedInstance.of(
            marker_row(self.run_id, self.workflow, spec.name, message, now),
            [(None, TaskState.CANCELLED.value, now, message)]))

    # -- executing -------------------------------------------------------------------------
    def _run_pending(self, pending: list[_Pending]) -> None:
        """Run instances in batches sized so that each takes about ``BATCH_SECONDS``.

        A batch is recorded as RUNNING when it starts; fast tasks get large batches, slow
        ones small batches, so that the store shows RUNNING for roughly what is really
        running once the buffer is written.
        """
        start, size = 0, BATCH_FIRST
        while start < len(pending):
            batch = pending[start:start + size]
            taken = len(batch)  # automatic retries are added to the batch as it runs
            began = time.monotonic()
            with gc_paused():
                self._start_batch(batch)
            self._execute_batch(batch)
            start += taken
            if self.stopped_by:
                rest = pending[start:]
                if rest:
                    with gc_paused():
                        self._start_batch(rest)
                        self._cancel_unstarted(rest)
                return
            took = time.monotonic() - began
            size = max(BATCH_MIN, min(BATCH_MAX, int(size * 2 if took < BATCH_SECONDS
                                                      else size / 2)))

    def _start_batch(self, batch: list[_Pending]) -> None:
        """Record the batch's fresh instances as PENDING; each runs when ``_begin`` says so.

        The history reads as on the driver path (PENDING first, SPEC §4), and an element
        still waiting for a worker is not shown RUNNING with a start time it never had.
        """
        now = self._start_time()  # never later than the first one's start
        add = self.buffer.add
        details: dict[str, tuple[str, str]] = {}  # texts per reason, shared by the rows
        for p in batch:
            e = p.expanded
            if p.slot is None and e is not None:
                texts = details.get(p.reason)
                if texts is None:
                    texts = details[p.reason] = (f"planned ({p.reason})",
                                                 f"running in-process ({p.reason})")
                row = planned_instance(self.run_id, self.workflow, p.spec.name, e, p.reason,
                                       _PENDING_STATE, texts[0], now)
                p.running = texts[1]
                p.slot = add(row, [(prob.check, f"{prob.kind}: {prob.reason}")
                                   for prob in p.problems] if p.problems else ())
        self.buffer.flush_if_due()

    def _begin(self, p: _Pending, at: datetime) -> None:
        """Record ``p`` RUNNING ``at`` as its body starts (the caller holds the buffer's lock)."""
        assert p.slot is not None
        self.buffer.change(p.slot, _WAITING, _RUNNING_STATE, p.running, {"started_at": at}, at)

    def _start_time(self) -> datetime:
        """When the next body starts, one after another: the previous one's end if that was
        under a millisecond ago (the same time object, so written as text once; a chain's
        tasks and an array's elements follow each other that closely), else now. At that
        shared instant the end is written first (``Store._record``)."""
        last = self._last_end
        if last is not None and time.monotonic() - last[1] < START_REUSE_SECONDS:
            return last[0]
        return datetime.now(UTC)

    def _begin_and_call(self, p: _Pending) -> _Outcome:
        """A pool thread's work: its own start recorded under the lock, then the body."""
        with self.buffer.lock:
            self._begin(p, datetime.now(UTC))
        return self._call(p)

    def _record(self, p: _Pending, outcome: _Outcome, *, retry: bool = True) -> _Pending | None:
        """Record how ``p``'s body ended; returns its next attempt, to run in this batch, when
        the task's ``retries`` cover the failure (and ``retry``: not while shutting down)."""
        assert p.slot is not None
        p.done = True
        self.buffer.change(p.slot, _RUNNING, outcome.to_state, outcome.detail, outcome.fields,
                           outcome.at)
        if outcome.to_state != TaskState.FAILED:
            return None
        again = self._automatic_retry(p) if retry else None
        if again is None:
            state = self.tasks[p.spec.name]
            state.failed, state.ended = True, "failed"
            if self.on_error == "stop":
                self.stopped_by = self.stopped_by or p.spec.name
        return again

    def _automatic_retry(self, p: _Pending) -> _Pending | None:
        """A new attempt of a failed ``p`` where its task's ``retries``/``retry_on`` cover the
        failure, as the driver makes one (SPEC §5): in-process a failure is always FAILED
        with exit code 1, so ``retry_on`` names ``"FAILED"``, ``1`` or nothing.

        The failed attempt is written first (a new attempt follows a stored one); failures
        are rare, so the extra transaction is too.
        """
        config = p.spec.config
        if p.attempt > config.retries or not retry_matches(
                config.retry_on, TaskState.FAILED.value, _FAILED_EXIT):
            return None
        self.buffer.flush()
        assert p.slot is not None
        new = self.store.new_attempts(
            [p.slot.instance_id], detail=f"automatic retry {p.attempt}/{config.retries} "
            "after FAILED")
        if not new:
            return None
        again = _Pending(p.spec, p.index, p.kwargs,
                         self.buffer.existing(new[0], TaskState.RETRYING.value),
                         running=f"running in-process (automatic retry {p.attempt}/"
                                 f"{config.retries})", attempt=p.attempt + 1)
        self._open.append(again)  # closed with the rest if the run stops on an error
        return again

    def _execute_batch(self, batch: list[_Pending]) -> None:
        if self.max_workers != 1:
            self._execute_parallel(batch)
            return
        lock = self.buffer.lock
        for i, p in enumerate(batch):
            self._begin(p, self._start_time())
            lock.release()  # as ``buffer.released()``, without its per-call cost
            try:
                outcome = self._call(p)
            finally:
                lock.acquire()
            again = self._record(p, outcome)
            if again is not None:
                batch.append(again)  # run in this loop, after what was already waiting
            self._stop_if_cancelled()
            self._last_end = (outcome.at, time.monotonic())
            if self.stopped_by:
                self._cancel_unstarted(batch[i + 1:])
                break
            self.buffer.flush_if_due()

    def _execute_parallel(self, batch: list[_Pending]) -> None:
        with ThreadPoolExecutor(self.max_workers, thread_name_prefix="reflow") as pool:
            futures: dict[Future[_Outcome], _Pending] = {
                pool.submit(self._begin_and_call, p): p for p in batch
            }
            todo = set(futures)
            try:
                while todo:
                    # Woken by each finished body (its result is recorded, and written within
                    # BATCH_SECONDS), or after BATCH_SECONDS to notice a cancel: waiting for
                    # the whole batch held finished work back, and lost it with a killed
                    # process.
                    with self.buffer.released():
                        done, todo = wait(todo, timeout=BATCH_SECONDS,
                                          return_when=FIRST_COMPLETED)
                    for f in done:
                        again = self._record(futures[f], f.result())
                        if again is not None:
                            retried = pool.submit(self._begin_and_call, again)
                            futures[retried] = again
                            todo.add(retried)
                    self._stop_if_cancelled()
                    if self.stopped_by:
                        cancelled = [futures[f] for f in todo if f.cancel()]
                        todo = {f for f in todo if not f.cancelled()}
                        self._cancel_unstarted(cancelled)
                    self.buffer.flush_if_due()
            except BaseException:
                # Queued bodies wait for the buffer's lock, which this thread holds: leaving
                # the pool (which joins them) without letting them go hung for ever.
                for f in todo:
                    f.cancel()
                with self.buffer.released():
                    wait(todo)
                for f in todo:
                    if not f.cancelled() and f.exception() is None:
                        self._record(futures[f], f.result(), retry=False)
                raise

    def _stop_if_cancelled(self) -> None:
        """Stop like ``on_error='stop'`` once the run was cancelled from another process.

        Asked at most every ``BATCH_SECONDS``: a status read per instance (or per task of a
        chain) would cost more than a trivial task.
        """
        now = time.monotonic()
        if now - self._status_at < BATCH_SECONDS:
            return
        self._status_at = now
        if self.store.get_run(self.run_id).status == RunState.CANCELLED:
            self.stopped_by = self.stopped_by or _CANCELLED_MARK
            self._stop_text = CANCELLED_BY_USER

    def _cancel_unstarted(self, rest: Sequence[_Pending], why: str | None = None) -> None:
        why = why or self._stop_text
        now = datetime.now(UTC)
        for p in rest:
            state = self.tasks[p.spec.name]
            if not state.failed:
                state.failed, state.ended = True, "was cancelled"
            if p.slot is not None:
                p.done = True
                self.buffer.change(p.slot, _OPEN, TaskState.CANCELLED, why,
                                   {"error_text": why, "finished_at": now}, now)

    def _call(self, p: _Pending) -> _Outcome:
        spec = p.spec
        kwargs = p.kwargs
        if spec.rundir_params:
            kwargs = dict(kwargs)
            for name in spec.rundir_params:
                kwargs[name] = self.run_dir
        # As the worker says it: "output of task 'name[3]'".
        where = f"output of task '{spec.name}" + (f"[{p.index}]'" if p.index is not None else "'")
        try:
            value = spec.func(**kwargs)
            out = value_hash(value, where=where)
        except EncodeError as exc:
            return self._failed(str(exc))
        except BaseException as exc:  # the task's own failure, recorded with its traceback
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return self._failed("".join(traceback.format_exception(exc)))
        state = self.tasks[spec.name]
        state.outputs[p.index] = (value, out.digest)
        if out.fingerprints:
            state.fingerprints[p.index] = out.fingerprints
        now = datetime.now(UTC)
        return _Outcome(TaskState.SUCCESS, "", {
            "output": out.canonical, "output_hash": out.digest,
            "fingerprints": json.dumps(out.fingerprints) if out.fingerprints else None,
            "finished_at": now, "exit_code": 0,
        }, now)

    @staticmethod
    def _failed(text: str) -> _Outcome:
        text = storable_text(text)
        last = text.strip().splitlines()[-1] if text.strip() else "failed"
        now = datetime.now(UTC)
        return _Outcome(TaskState.FAILED, last[:500],
                        {"error_text": text, "finished_at": now, "exit_code": _FAILED_EXIT}, now)

    # -- closing ---------------------------------------------------------------------------
    def _close_task(self, name: str) -> None:
        state = self._state(name)
        state.done = not state.failed

    def _finalise(self) -> RunState:
        self.buffer.flush()
        complete = all(self.tasks.get(n, _NOT_STARTED).done for n in self.graph.order)
        status = (RunState.SUCCESS if complete
                  else RunState.unfinished(self.store.status_counts(self.run_id)))
        self.store.set_run_status(self.run_id, status, only_from={RunState.RUNNING.value})
        return status
