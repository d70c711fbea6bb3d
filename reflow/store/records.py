"""Plain, immutable values that cross the store boundary.

The planner, runner, CLI and TUI see only these records, never ORM objects or SQL rows, so the
store can change its tables and queries without touching its callers. JSON-ish fields are
canonical JSON text produced by the caller; the store never parses them. Timestamps are
timezone-aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run about to be recorded; ``run_id`` is chosen by the caller (retried if taken)."""

    run_id: str
    workflow: str
    entrypoint: str | None
    run_dir: str
    user: str
    host: str
    status: str
    parameters: str
    options: str
    reflow_version: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A recorded run."""

    run_id: str
    workflow: str
    entrypoint: str | None
    run_dir: str
    user: str
    host: str
    status: str
    parameters: str
    options: str
    reflow_version: str
    created_at: datetime
    updated_at: datetime

    @property
    def option_values(self) -> dict[str, Any]:
        """``options`` parsed: the executor, force flags, the process running it, ..."""
        parsed: dict[str, Any] = json.loads(self.options or "{}")
        return parsed


class NewTaskSpec(NamedTuple):
    """How one task of a run was defined when the run was recorded (one per task per run)."""

    name: str
    position: int
    is_array: bool
    version: str
    config: str
    dependencies: str
    return_type: str


@dataclass(frozen=True, slots=True)
class TaskSpecRecord:
    """A recorded task spec of a run."""

    run_id: str
    name: str
    position: int
    is_array: bool
    version: str
    config: str
    dependencies: str
    return_type: str


@dataclass(slots=True)
class NewInstance:
    """One attempt of one task instance to insert; ``detail`` goes to its first transition."""

    run_id: str
    workflow: str
    task_name: str
    array_index: int | None
    attempt: int
    state: str
    identity: str
    input_hash: str
    preimage: str
    input: str
    reason: str
    cached: bool = False
    cache_source: int | None = None
    output: str | None = None
    output_hash: str | None = None
    fingerprints: str | None = None
    job_id: str | None = None
    error_text: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    submitted_at: datetime | None = None
    detail: str = ""
    created_at: datetime | None = None


@dataclass(slots=True)
class InstanceRecord:
    """One recorded attempt of one task instance (``latest`` marks the current attempt)."""

    id: int
    run_id: str
    workflow: str
    task_name: str
    array_index: int | None
    attempt: int
    latest: bool
    state: str
    identity: str
    input_hash: str
    preimage: str
    input: str
    output: str | None
    output_hash: str | None
    fingerprints: str | None
    cached: bool
    cache_source: int | None
    reason: str
    job_id: str | None
    exit_code: int | None
    scheduler_state: str | None
    error_text: str | None
    stdout_path: str | None
    stderr_path: str | None
    created_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @property
    def is_marker(self) -> bool:
        """The one row of a task that was never expanded into instances (skipped, not run
        after a stop, or its inputs could not be wired): it has no identity, and a retry
        replaces it by planning the task afresh instead of re-running it."""
        return self.identity == ""


@dataclass(frozen=True, slots=True)
class ActiveInstance:
    """What a driver step needs of an instance that is not finished: enough to match worker
    files and scheduler states to it. A step reads every one of them, so a whole row each
    (pre-image, timestamps, texts) made a 20,000-element array spend most of its steps
    reading itself."""

    id: int
    attempt: int
    state: str
    job_id: str | None
    submitted_at: datetime | None
    stderr_path: str | None


@dataclass(slots=True)
class StateChange:
    """Move one instance to ``to_state`` if (and only if) it is in one of ``from_states``.

    ``fields`` sets further instance columns in the same update (output, job_id, timestamps,
    ...), so a state and the data that justifies it are never recorded apart.
    """

    instance_id: int
    from_states: frozenset[str]
    to_state: str
    detail: str = ""
    fields: Mapping[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class TransitionRecord:
    """One append-only state change; ``from_state`` is None for the row's creation."""

    id: int
    instance_id: int
    run_id: str
    task_name: str
    array_index: int | None
    attempt: int
    from_state: str | None
    to_state: str
    at: datetime
    detail: str


class CacheHit(NamedTuple):
    """The most recent successful instance with a given identity, anywhere in the store.

    ``stored_finished_at`` is the time as the driver returned it (naive-UTC text on SQLite):
    a run asks for 10,000 hits at once and reads none of their times, so parsing waits for
    ``finished_at``. A named tuple, built straight from the result row.
    """

    instance_id: int
    run_id: str
    identity: str
    output: str
    output_hash: str
    fingerprints: str | None
    stored_finished_at: object
    input_hash: str

    @property
    def finished_at(self) -> datetime | None:
        value = self.stored_finished_at
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


class CachedCopy(NamedTuple):
    """A cache hit to record as a SUCCESS instance of a run, linked to its ``source``.

    The output columns come from the source; a named tuple because a fully cached run makes
    10,000 of these at once.
    """

    array_index: int | None
    identity: str
    input_hash: str
    preimage: str
    input: str
    source: CacheHit


@dataclass(frozen=True, slots=True)
class CopyBatch:
    """The cache hits of one task of a run, all recorded at ``at`` with ``reason``."""

    run_id: str
    workflow: str
    task_name: str
    reason: str
    at: datetime
    copies: Sequence[CachedCopy]


@dataclass(frozen=True, slots=True)
class NewVerifyFailure:
    """A failed check of a recorded output (``check`` names the file or the callable)."""

    instance_id: int
    run_id: str
    task_name: str
    array_index: int | None
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyFailureRecord:
    """A recorded verify failure."""

    id: int
    at: datetime
    instance_id: int
    run_id: str
    task_name: str
    array_index: int | None
    check: str
    reason: str


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What ``reflow store info`` shows: where the store is and which schema it has."""

    url: str
    dialect: str
    revision: str | None
    head_revision: str
    runs: int
    instances: int
