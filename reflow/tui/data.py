"""What the TUI reads from the manifest store, and nothing more.

Every refresh tick is a handful of bounded queries: per-task aggregate counts, one page of
instances, and the transitions recorded since the last id this reader saw. Nothing here ever
loads all instances of a run, so a 100,000-element array costs the same tick as a small one.
Store failures surface as :class:`StoreUnavailable` so screens can show a banner and try again
on the next tick instead of crashing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reflow.states import RunState, TaskState
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


def task_state(counts: dict[str, int]) -> str:
    """One state for a whole task, worst news first, for colouring the DAG and table."""
    if not counts or sum(counts.values()) == 0:
        return "WAITING"
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
        return task_state(self.counts)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs screen."""

    run: RunRecord
    total: int
    done: int
    failed: int
    cached: int
    recomputed: int


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
    _counts: dict[str, tuple[dict[str, dict[str, int]], dict[str, tuple[int, int]]]] = field(
        default_factory=dict)

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

        with _guard():
            return stalled_reason(self.store, run.run_id)

    def runs(self, limit: int = 100) -> list[RunSummary]:
        """Recent runs with their progress: one aggregate query per listed run."""
        with _guard():
            out = []
            for rec in self.store.list_runs(limit=limit):
                counts = self.store.status_counts(rec.run_id)
                cached, recomputed = _cache_totals(self.store.cache_counts(rec.run_id))
                per_state: dict[str, int] = {}
                for states in counts.values():
                    for state, n in states.items():
                        per_state[state] = per_state.get(state, 0) + n
                out.append(RunSummary(
                    rec, sum(per_state.values()), per_state.get(TaskState.SUCCESS.value, 0),
                    per_state.get(TaskState.FAILED.value, 0), cached, recomputed,
                ))
            return out

    def tasks(self, run_id: str) -> list[TaskSummary]:
        """Per-task counts; the task specs are read once per run and then remembered."""
        with _guard():
            if run_id not in self._specs:
                self._specs[run_id] = [_spec(s) for s in self.store.task_specs(run_id)]
            counts = self.store.status_counts(run_id)
            seen = self._counts.get(run_id)
            if seen is None or seen[0] != counts:
                # cached/recomputed move only when the state counts do; skip the heavier
                # query on ticks where nothing changed (most ticks of a finished run)
                self._counts[run_id] = (counts, self.store.cache_counts(run_id))
            cache = self._counts[run_id][1]
        rows = []
        for s in self._specs[run_id]:
            cached, recomputed = cache.get(s.name, (0, 0))
            rows.append(TaskSummary(s.name, s.position, s.is_array, s.dependencies, s.after,
                                    dict(counts.get(s.name, {})), cached, recomputed))
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

        At most ``TRANSITION_BATCH`` rows per call, so opening a huge finished run catches up
        over a few ticks instead of making one tick read its whole history.
        """
        with _guard():
            rows = self.store.transitions(run_id, since_id=self._last_transition.get(run_id, 0),
                                          limit=TRANSITION_BATCH)
        if rows:
            self._last_transition[run_id] = rows[-1].id
        return rows[-FEED_LINES:]

    def verify_failures(self, run_id: str) -> list[VerifyFailureRecord]:
        with _guard():
            return self.store.verify_failures(run_id)

    def detail(self, instance_id: int) -> InstanceDetail:
        """One instance with its attempts, state history, explanation and log tails."""
        from reflow.actions import why

        with _guard():
            inst = self.store.instance(instance_id)
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
