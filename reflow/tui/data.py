"""What the TUI reads from the manifest store, and nothing more.

Every refresh tick is a handful of bounded queries: per-task aggregate counts, one page of
instances, and the transitions recorded since the last id this reader saw. Nothing here ever
loads all instances of a run, so a 100,000-element array costs the same tick as a small one.
Store failures surface as :class:`StoreUnavailable` so screens can show a banner and try again
on the next tick instead of crashing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from reflow.engine.results import Waiting
from reflow.states import RunState, TaskState
from reflow.status_report import skip_notes
from reflow.store import (
    InstanceRecord,
    RunRecord,
    Store,
    TaskSpecRecord,
    TransitionRecord,
    VerifyFailureRecord,
)

T = TypeVar("T")

PAGE_SIZE = 50
FEED_LINES = 200
TRANSITION_BATCH = 5000
SETTLED_S = 10.0  # a run finished this long ago has written its last change
LOG_TAIL_LINES = 20

_ACTIVE = (TaskState.RUNNING, TaskState.SUBMITTED, TaskState.RETRYING)


class StoreUnavailable(Exception):
    """The store could not be read this tick; the message is shown in the banner."""


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except (KeyError, ValueError, TypeError):
        raise  # programming or lookup errors are not connection problems
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(first) from exc


# Shown for a task skipped because its upstream did not succeed; not a state of any instance.
SKIPPED_STATE = "SKIPPED"
# Shown for a RUNNING run that nothing carries on any more; not a state of any run.
STALLED_STATE = "STALLED"


def task_state(counts: dict[str, int]) -> str:
    """One state for a whole task, worst news first, for colouring the DAG and table.

    A task with finished and pending instances is under way (RUNNING): an in-process run
    records a batch's elements when the batch is written, so elements that ran meanwhile
    show PENDING while the ones before them are done.
    """
    if not counts or sum(counts.values()) == 0:
        return "WAITING"
    if counts.get(TaskState.PENDING.value) and counts.get(TaskState.SUCCESS.value) and not (
            counts.get(TaskState.FAILED.value)):
        return TaskState.RUNNING.value
    for state in (TaskState.FAILED, *_ACTIVE, TaskState.PENDING, TaskState.CANCELLED):
        if counts.get(state.value):
            return state.value
    return TaskState.SUCCESS.value


@dataclass(frozen=True)
class TaskSummary:
    """One row of the task table: aggregate counts only."""

    name: str
    position: int
    is_array: bool
    dependencies: tuple[str, ...]
    after: tuple[str, ...]
    counts: dict[str, int]
    cached: int
    recomputed: int
    # Skipped because an upstream task did not succeed: shown as such (SPEC §4), not as a
    # task someone cancelled.
    skipped: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return self.counts.get(TaskState.SUCCESS.value, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(TaskState.FAILED.value, 0)

    @property
    def state(self) -> str:
        return SKIPPED_STATE if self.skipped else task_state(self.counts)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs screen."""

    run: RunRecord
    total: int
    done: int
    failed: int
    cached: int
    recomputed: int
    stalled: bool = False  # RUNNING, but its driver or process is gone (`reflow resume`)

    @property
    def status(self) -> str:
        return STALLED_STATE if self.stalled else self.run.status


@dataclass(frozen=True)
class InstanceDetail:
    """Everything the instance screen shows about one attempt."""

    instance: InstanceRecord
    attempts: list[InstanceRecord]
    transitions: list[TransitionRecord]
    why: str
    stdout_tail: list[str]
    stderr_tail: list[str]


@dataclass
class _Spec:
    name: str
    position: int
    is_array: bool
    dependencies: tuple[str, ...]
    after: tuple[str, ...]


def _spec(rec: TaskSpecRecord) -> _Spec:
    config = json.loads(rec.config or "{}")
    after = tuple(str(a) for a in config.get("after", []))
    deps = tuple(str(d) for d in json.loads(rec.dependencies or "[]") if d not in after)
    return _Spec(rec.name, rec.position, rec.is_array, deps, after)


def tail(path: str | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file, read from its end so huge logs stay cheap."""
    if not path:
        return []
    p = Path(path)
    try:
        with p.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError as exc:
        return [f"(cannot read {p.name}: {exc.strerror})"]
    return data.decode("utf-8", "replace").splitlines()[-lines:]


@dataclass
class Reader:
    """A store plus the per-run state that makes refreshes incremental."""

    store: Store
    _specs: dict[str, list[_Spec]] = field(default_factory=dict)
    _last_transition: dict[str, int] = field(default_factory=dict)
    # Per run: the state counts last read, and what was derived from them (cache counts per
    # task, skipped tasks), read again only when the state counts change.
    _counts: dict[str, tuple[dict[str, dict[str, int]], dict[str, tuple[int, int]], set[str]]] = (
        field(default_factory=dict))
    _summaries: dict[str, RunSummary] = field(default_factory=dict)

    def call(self, fn: Callable[[], T]) -> T:
        """Run one read, turning store failures into :class:`StoreUnavailable`."""
        with _guard():
            return fn()

    def run(self, run_id: str) -> RunRecord:
        with _guard():
            return self.store.get_run(run_id)

    def stalled(self, run: RunRecord) -> str | None:
        """Why a RUNNING run is no longer progressing (see ``actions.stalled_reason``)."""
        if run.status != RunState.RUNNING:
            return None
        from reflow.actions import stalled_reason

        with _guard():  # from the store and heartbeat files only: the TUI never asks sacct
            return stalled_reason(self.store, run.run_id, ask_scheduler=False)

    def waiting(self, run: RunRecord) -> Waiting:
        """Worker reports not yet recorded (see ``actions.waiting_reports``): files only."""
        from reflow.actions import waiting_reports

        return waiting_reports(run)

    def runs(self, limit: int = 100, words: Sequence[str] = ()) -> list[RunSummary]:
        """Recent runs with their progress: one query for the list, then aggregates only for
        runs that are active or changed since the last call.

        ``words`` (the screen's filter) are matched in the store, so that any run can be
        found, not only the newest ``limit``. A finished run's counts change only through
        retry, cancel or a forced rerun, and each of those also moves the run row (its status
        and ``updated_at``); an idle tick thus costs one query, not two aggregates per listed
        run. A run is remembered only once it has been finished for ``SETTLED_S``: a
        cancelled in-process run writes its last changes just after its status.
        """
        now = datetime.now(UTC)
        with _guard():
            out = []
            for rec in self.store.list_runs(limit=limit, words=words):
                known = self._summaries.get(rec.run_id)
                if known is not None and known.run == rec:
                    out.append(known)
                    continue
                counts = self.store.status_counts(rec.run_id)
                cached, recomputed = _cache_totals(self.store.cache_counts(rec.run_id))
                per_state: dict[str, int] = {}
                for states in counts.values():
                    for state, n in states.items():
                        per_state[state] = per_state.get(state, 0) + n
                summary = RunSummary(
                    rec, sum(per_state.values()), per_state.get(TaskState.SUCCESS.value, 0),
                    per_state.get(TaskState.FAILED.value, 0), cached, recomputed,
                    stalled=self.stalled(rec) is not None,
                )
                settled = (now - rec.updated_at).total_seconds() >= SETTLED_S
                if RunState(rec.status).terminal and settled:
                    self._summaries[rec.run_id] = summary
                out.append(summary)
            return out

    def tasks(self, run_id: str) -> list[TaskSummary]:
        """Per-task counts; the task specs are read once per run and then remembered."""
        with _guard():
            if run_id not in self._specs:
                self._specs[run_id] = [_spec(s) for s in self.store.task_specs(run_id)]
            counts = self.store.status_counts(run_id)
            seen = self._counts.get(run_id)
            if seen is None or seen[0] != counts:
                # cached/recomputed and skips move only when the state counts do; skip the
                # heavier queries on ticks where nothing changed (most ticks of a finished run)
                self._counts[run_id] = (counts, self.store.cache_counts(run_id),
                                        set(skip_notes(self.store, run_id, counts)))
            _, cache, skipped = self._counts[run_id]
        rows = []
        for s in self._specs[run_id]:
            cached, recomputed = cache.get(s.name, (0, 0))
            rows.append(TaskSummary(s.name, s.position, s.is_array, s.dependencies, s.after,
                                    dict(counts.get(s.name, {})), cached, recomputed,
                                    s.name in skipped))
        return rows

    def instances(self, run_id: str, task: str, offset: int,
                  limit: int = PAGE_SIZE) -> list[InstanceRecord]:
        with _guard():
            return self.store.latest_instances(run_id, task, offset=offset, limit=limit)

    def count(self, run_id: str, task: str) -> int:
        with _guard():
            return self.store.count_latest(run_id, task)

    def new_transitions(self, run_id: str) -> list[TransitionRecord]:
        """Transitions recorded since the previous call for this run.

        The first call reads only the newest ``FEED_LINES`` (a finished run of 100,000
        instances has 200,000 transitions, and the feed shows its end); later calls at most
        ``TRANSITION_BATCH`` rows each, so a burst catches up over a few ticks.
        """
        with _guard():
            since = self._last_transition.get(run_id)
            rows = (self.store.last_transitions(run_id, FEED_LINES) if since is None else
                    self.store.transitions(run_id, since_id=since, limit=TRANSITION_BATCH))
        self._last_transition[run_id] = rows[-1].id if rows else since or 0
        return rows[-FEED_LINES:]

    def verify_failures(self, run_id: str) -> list[VerifyFailureRecord]:
        with _guard():
            return self.store.verify_failures(run_id)

    def detail(self, instance_id: int) -> InstanceDetail:
        """One instance with its attempts, state history, explanation and log tails."""
        from reflow.actions import why

        with _guard():
            inst = self.store.instance(instance_id, values=False)  # a gather's are huge
            attempts = self.store.history(inst.run_id, inst.task_name, inst.array_index)
            changes = self.store.instance_transitions([a.id for a in attempts])
            try:
                explanation = why(self.store, inst.run_id, inst.task_name, inst.array_index)
            except KeyError as exc:
                explanation = str(exc).strip("'\"")
        return InstanceDetail(inst, attempts, changes, explanation,
                              tail(inst.stdout_path), tail(inst.stderr_path))


def _cache_totals(cache: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """(cached, recomputed) summed over tasks from ``Store.cache_counts``."""
    return sum(c for c, _ in cache.values()), sum(r for _, r in cache.values())
