"""The driver step: the one function every host (foreground, detached, chained job) runs.

A step is idempotent and keeps no state in memory between calls: ingest worker files,
reconcile active jobs with one executor query, start automatic retries, expand and plan every
task whose upstream is complete, submit what is ready, and finalise the run when nothing is
left. Anything a step learns is in the store (or in the run dir's ``jobs.jsonl`` ledger of
submissions) before it returns, so a step killed half way is simply repeated by the next one.

Exclusivity: a step holds the run's lease (``flock`` on ``driver.lock`` in ``ctx.state_dir``)
so two drivers never plan or submit one run at the same time; a second driver finds the lease
taken and does nothing. Under the lease an instance is submitted first and then moved
PENDING → SUBMITTED by compare-and-set with its job id, so a concurrent ``cancel`` still wins:
an element whose CAS fails is cancelled at the scheduler at once. See docs/schedulers.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.core.codec import loads
from reflow.core.hashing import output_digest
from reflow.core.resources import FAILURE_STATES, retry_matches
from reflow.core.shared import referenced
from reflow.engine import results
from reflow.engine.expand import TaskOutputs, expand_task
from reflow.engine.payloads import Element, Meta, write_payload
from reflow.engine.recording import (
    CANCELLED_BY_USER,
    copy_batch,
    fresh_row,
    keep_shared,
    marker_row,
    plan_task,
    verify_failure_rows,
)
from reflow.errors import ExecutorError, ReflowError
from reflow.executors.base import (
    Executor,
    JobResources,
    JobSpec,
    JobState,
    JobStatus,
)
from reflow.executors.local import STREAMABLE_ENV
from reflow.states import RunState, TaskState
from reflow.store import ActiveInstance, InstanceConflict, InstanceRecord, StateChange, Store

if TYPE_CHECKING:
    from reflow.core.graph import TaskGraph
    from reflow.core.spec import TaskSpec

log = logging.getLogger("reflow.driver")

ACTIVE = frozenset({"PENDING", "SUBMITTED", "RUNNING", "RETRYING"})
_IN_FLIGHT = frozenset({"SUBMITTED", "RUNNING"})
_READY = ("PENDING", "RETRYING")
UNRECORDED_SUBMISSION = ("submitted by a driver step that stopped before recording the job "
                         "(its worker's result was found)")
_DONE_BAD = frozenset({"FAILED", "CANCELLED"})
UNKNOWN_GRACE = timedelta(minutes=5)
SUBMIT_FAILURES_BEFORE_GIVING_UP = 3


@dataclass
class DriverContext:
    """Everything a step needs; built once per host process (see ``driver_host.load``)."""

    store: Store
    run_id: str
    run_dir: Path
    workflow: str
    entrypoint: str
    graph: TaskGraph
    params: Mapping[str, Mapping[str, Any]]
    executor: Executor
    python: str
    force: bool = False
    force_tasks: frozenset[str] = frozenset()
    verify: bool = False
    max_submit_jobs: int | None = None
    caps: Mapping[str, str] = field(default_factory=dict)
    submit_options: tuple[str, ...] = ()  # [executor] submit_options: for every task job
    import_root: str | None = None  # see Workflow.import_root

    @property
    def state_dir(self) -> Path:
        return results.run_state_dir(self.run_dir, self.run_id)


@dataclass
class StepReport:
    """What one step did; hosts use it to adapt their polling and to chain successors."""

    busy: bool = False  # another driver held the lease
    finished: RunState | None = None
    changed: int = 0
    submitted_jobs: list[str] = field(default_factory=list)
    active_jobs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ the lease
_UNLOCKABLE: set[str] = set()  # lock files this process was told it cannot lock


@contextlib.contextmanager
def lease(ctx: DriverContext) -> Iterator[bool]:
    """Hold the run's driver lease for one step; yields False when another driver has it."""
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    with open(ctx.state_dir / "driver.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError as exc:  # a filesystem without locks (Lustre mounted noflock)
            if handle.name not in _UNLOCKABLE:  # once, not at every poll
                _UNLOCKABLE.add(handle.name)
                log.warning(
                    "run %s: cannot lock %s (%s): two drivers stepping this run at once could "
                    "both submit the same work (the store records it once); let one driver "
                    "run (no `reflow resume` while it is alive)", ctx.run_id, handle.name, exc)
            yield True
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------ the step
def step(ctx: DriverContext) -> StepReport:
    """One driver step (see the module docstring); safe to call from any host, any time."""
    report = StepReport()
    with lease(ctx) as held:
        if not held:
            report.busy = True
            return report
        status = RunState(ctx.store.get_run(ctx.run_id).status)
        if status.terminal:
            report.finished = status
            return report
        failed: list[ActiveInstance] = []
        by_id = {r.id: r for r in ctx.store.active_instances(ctx.run_id, ACTIVE)}
        report.changed += _ingest(ctx, by_id, failed, report)
        report.changed += _reconcile(ctx, by_id, failed, report)
        report.changed += _auto_retry(ctx, failed)
        inserted, planned = _plan(ctx)
        report.changed += inserted
        report.changed += _submit(ctx, report)
        report.finished = _finalise(ctx, planned)
    return report


# ------------------------------------------------------------------------------ ingest
def _ingest(ctx: DriverContext, by_id: dict[int, ActiveInstance],
            failed: list[ActiveInstance], report: StepReport) -> int:
    started: list[results.Started] = []
    finished: list[results.Finished] = []
    for item in results.scan(ctx.state_dir):
        if isinstance(item, results.Finished) and not _hash_matches(item):
            item = results.BadFile(item.path, "its output does not match its output_hash "
                                   "(the file changed after the worker wrote it)")
        if isinstance(item, results.BadFile):
            message = f"ignored malformed worker file {item.path}: {item.problem}"
            log.warning("run %s: %s", ctx.run_id, message)
            report.problems.append(message)
            results.set_aside(item)
        elif isinstance(item, results.Started):
            started.append(item)
        elif not _awaits_scheduler(item, by_id):
            finished.append(item)
    return _record_reports(ctx.store, by_id, started, finished, failed)


def record_finished_work(store: Store, run_id: str, state_dir: Path) -> int:
    """Record the successes workers reported that no driver step has read yet.

    A cancel calls this before it closes what is active: in a chained run the next step
    starts only when an array ends, and its finished elements would otherwise be cancelled
    with the rest, their results thrown away. Failures are left to the cancel, as the
    scheduler's word on them will not come.
    """
    active = store.active_instances(run_id, _IN_FLIGHT)
    if not active:
        return 0
    reports = list(results.scan(state_dir))
    done = [item for item in reports if isinstance(item, results.Finished)
            and item.state == "SUCCESS" and _hash_matches(item)]
    if not done:
        return 0
    ids = {f.instance_id for f in done}  # their starts too, or they seem to take no time
    started = [s for s in reports if isinstance(s, results.Started) and s.instance_id in ids]
    return _record_reports(store, {r.id: r for r in active}, started, done, [])


def _hash_matches(f: results.Finished) -> bool:
    """Whether a SUCCESS file's output hashes to the hash it carries (a FAILED one has none)."""
    if f.state != "SUCCESS" or f.output is None or f.output_hash is None:
        return True
    recorded = json.loads(f.fingerprints) if f.fingerprints else {}
    return output_digest(f.output, recorded) == f.output_hash


def _awaits_scheduler(f: results.Finished, by_id: Mapping[int, ActiveInstance]) -> bool:
    """A failure reported by its worker waits until the scheduler says how the job ended.

    A time limit, a preemption and a ``scancel`` all reach the task as SIGTERM, and a memory
    limit often kills a program the task runs rather than the worker; only the scheduler's
    final state (TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...) tells them apart, and ``retry_on``
    matches on it. Reconciliation records the file once the job has ended; a file older than
    ``UNKNOWN_GRACE`` (a status query failing all that time) is recorded without the state.
    """
    row = by_id.get(f.instance_id)
    return (f.state == "FAILED" and row is not None and row.job_id is not None
            and row.attempt == f.attempt
            and datetime.now(UTC) - f.finished_at < UNKNOWN_GRACE)


def _record_reports(store: Store, by_id: dict[int, ActiveInstance],
                    started: Sequence[results.Started], finished: Sequence[results.Finished],
                    failed: list[ActiveInstance],
                    statuses: Mapping[str, JobStatus] | None = None) -> int:
    """Apply started/result files to the store; files of other attempts are dropped.

    Each transition is dated when the worker says it happened, not when this step read the
    file (a driver resumed an hour later must not move the history by an hour).
    """
    changes: list[StateChange] = []
    at: list[datetime] = []
    started_at = {s.instance_id: s.started_at for s in started}
    # Results of work a driver submitted and was killed before recording (the attempt in the
    # file proves the submission): taken, or the next step would run the work again.
    unrecorded: set[int] = set()
    for f in finished:
        row = by_id.get(f.instance_id)
        if row is not None and row.attempt == f.attempt and row.state in _READY:
            unrecorded.add(f.instance_id)
            changes.append(StateChange(f.instance_id, frozenset(_READY), "SUBMITTED",
                                       UNRECORDED_SUBMISSION))
            at.append(started_at.get(f.instance_id, f.finished_at))
    for s in started:
        row = by_id.get(s.instance_id)
        if row is not None and row.attempt == s.attempt:
            changes.append(StateChange(s.instance_id, frozenset({"SUBMITTED"}), "RUNNING",
                                       "worker started", {"started_at": s.started_at}))
            at.append(s.started_at)
    for f in finished:
        row = by_id.get(f.instance_id)
        if row is None or row.attempt != f.attempt:
            continue
        if ((row.state == "SUBMITTED" or f.instance_id in unrecorded)
                and f.instance_id not in started_at):
            changes.append(StateChange(f.instance_id, frozenset({"SUBMITTED"}), "RUNNING",
                                       "worker started", {"started_at": f.finished_at}))
            at.append(f.finished_at)
        changes.append(_result_change(f, _scheduler_state((statuses or {}).get(row.job_id or ""))))
        at.append(f.finished_at)
    moved = set(store.apply(changes, at=at)) if changes else set()
    for f in finished:
        row = by_id.get(f.instance_id)
        if f.instance_id in moved and f.state == "FAILED" and row is not None:
            failed.append(row)
        if f.instance_id in moved:
            by_id.pop(f.instance_id, None)
    consumed: list[results.Started | results.Finished] = [*started, *finished]
    for report_file in consumed:
        results.consume(report_file)
    return len(moved)


_LIMIT_HINTS = {
    "TIMEOUT": ("ran out of its time limit", "time"),
    "OUT_OF_MEMORY": ("ran out of its memory limit", "mem"),
}


def _limit_hint(scheduler_state: str | None, before: str) -> str:
    """The traceback only says SIGTERM, or that a program died: say which limit, and the fix
    (after ``before``); nothing for other endings."""
    hint = _LIMIT_HINTS.get(scheduler_state or "")
    if hint is None:
        return ""
    what, key = hint
    return (f"{before}the job {what} ({scheduler_state}); raise the task's {key}= or let "
            f"retries escalate it (escalate={{'{key}': 2.0}})")


def _result_change(f: results.Finished, scheduler_state: str | None = None) -> StateChange:
    if f.state == "SUCCESS":
        return StateChange(f.instance_id, _IN_FLIGHT, "SUCCESS", "", {
            "output": f.output, "output_hash": f.output_hash, "fingerprints": f.fingerprints,
            "finished_at": f.finished_at, "exit_code": 0,
        })
    text = (f.error_text or "").strip() or "failed"
    text += _limit_hint(scheduler_state, "\n")  # its own line: the one status shows
    fields: dict[str, object] = {"error_text": text, "finished_at": f.finished_at,
                                 "exit_code": f.exit_code}
    if scheduler_state is not None:
        fields["scheduler_state"] = scheduler_state
    return StateChange(f.instance_id, _IN_FLIGHT, "FAILED", text.splitlines()[-1][:500], fields)


# ------------------------------------------------------------------------------ reconcile
def _ledger(ctx: DriverContext) -> Path:
    return ctx.state_dir / "jobs.jsonl"


def _record_submission(ctx: DriverContext, job_id: str, elements: Sequence[str]) -> None:
    line = (json.dumps({"job": job_id, "elements": list(elements)}) + "\n").encode()
    with open(_ledger(ctx), "a+b") as handle:
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # a line torn by a crash must not swallow this one
                line = b"\n" + line
        handle.write(line)


def _jobs_of(ctx: DriverContext, element_ids: set[str]) -> list[str]:
    """The submissions (scheduler job ids) that hold any of these elements."""
    try:
        lines = _ledger(ctx).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    jobs: list[str] = []
    for line in lines:
        try:
            entry = json.loads(line)
            job, elements = entry["job"], entry["elements"]
        except (ValueError, TypeError, KeyError, RecursionError):
            continue  # a line cut short by a crash: its elements are reconciled as unknown
        if job not in jobs and element_ids.intersection(elements):
            jobs.append(job)
    return jobs


def _reconcile(ctx: DriverContext, by_id: dict[int, ActiveInstance],
               failed: list[ActiveInstance], report: StepReport) -> int:
    flying = [r for r in by_id.values() if r.state in _IN_FLIGHT and r.job_id]
    if not flying:
        return 0
    jobs = _jobs_of(ctx, {r.job_id for r in flying if r.job_id})
    try:
        statuses = ctx.executor.query(jobs) if jobs else {}
    except ExecutorError as exc:  # a flaky scheduler command: try again next step
        report.problems.append(f"status query failed, will retry: {exc}")
        log.warning("run %s: status query failed, will retry next step: %s", ctx.run_id, exc)
        report.active_jobs = jobs
        return 0
    now = datetime.now(UTC)
    lost: list[ActiveInstance] = []
    still: set[str] = set()
    for r in flying:
        assert r.job_id is not None
        st = statuses.get(r.job_id)
        if st is None or st.state == JobState.UNKNOWN:
            if r.submitted_at is not None and now - r.submitted_at > UNKNOWN_GRACE:
                lost.append(r)
            else:
                still.add(r.job_id)
        elif JobState(st.state).terminal:
            lost.append(r)
        else:
            still.add(r.job_id)
    report.active_jobs = _jobs_of(ctx, still) if still else []
    if not lost:
        return 0
    # A result may have landed between the scan and the query: take it before giving up.
    late = [x for x in (results.read_one(ctx.state_dir, r.id) for r in lost)
            if isinstance(x, results.Finished)]
    changed = _record_reports(ctx.store, by_id, [], late, failed, statuses) if late else 0
    changes = [_lost_change(ctx, r, statuses.get(r.job_id or "")) for r in lost
               if r.id in by_id]
    moved = set(ctx.store.apply(changes))
    failed.extend(r for r in lost if r.id in moved)
    return changed + len(moved)


def _scheduler_state(st: JobStatus | None) -> str | None:
    """How a job ended, as ``retry_on`` names it: Slurm's own word where it is one of
    ``FAILURE_STATES`` ("CANCELLED by 0" gives "CANCELLED", "PREEMPTED" stays), else the
    normalised state (LSF's "EXIT" is FAILED, PBS's exit -29 TIMEOUT)."""
    if st is None:
        return None
    word = st.raw_state.split()[0].upper() if st.raw_state.strip() else ""
    return word if word in FAILURE_STATES else str(st.state)


def _lost_change(ctx: DriverContext, r: ActiveInstance, st: JobStatus | None) -> StateChange:
    raw = _scheduler_state(st) or "UNKNOWN"
    code = st.exit_code if st else None
    log_hint = (f"; see {r.stderr_path}" if r.stderr_path and Path(r.stderr_path).exists()
                else "")
    unreadable = results.set_aside_path(ctx.state_dir, r.id)
    what = (f"and its result file could not be read (kept as {unreadable})"
            if unreadable.exists() else "without writing a result")
    text = (f"job {r.job_id} ended {raw}" + (f" (exit {code})" if code is not None else "")
            + f" {what}{log_hint}")
    if st and st.reason:
        text += f" ({st.reason})"
    text += _limit_hint(raw, "; ")
    return StateChange(r.id, _IN_FLIGHT, "FAILED", text, {
        "error_text": text, "scheduler_state": raw, "exit_code": code,
        "finished_at": datetime.now(UTC),
    })


# ------------------------------------------------------------------------------ retries
def _auto_retry(ctx: DriverContext, failed: Sequence[ActiveInstance]) -> int:
    """New attempts for failures the task's ``retries``/``retry_on`` policy covers."""
    if not failed:
        return 0
    ids = [r.id for r in failed]
    current = {r.id: r for r in ctx.store.instances(ids) if r.latest and r.state == "FAILED"}
    wanted: dict[str, list[int]] = {}
    for i in ids:
        r = current.get(i)
        spec = ctx.graph.specs.get(r.task_name) if r else None
        if r is None or spec is None or r.attempt > spec.config.retries:
            continue
        if retry_matches(spec.config.retry_on, r.scheduler_state, r.exit_code):
            why = r.scheduler_state or f"exit {r.exit_code}"
            detail = f"automatic retry {r.attempt}/{spec.config.retries} after {why}"
            wanted.setdefault(detail, []).append(r.id)
    return sum(len(ctx.store.new_attempts(v, detail=k)) for k, v in wanted.items())


# ------------------------------------------------------------------------------ plan
def _task_status(counts: Mapping[str, int]) -> str:
    if not counts:
        return "new"
    if any(counts.get(s, 0) for s in ACTIVE):
        return "active"
    if any(counts.get(s, 0) for s in _DONE_BAD):
        return "failed"
    return "success"


def _outputs(ctx: DriverContext, task: str) -> TaskOutputs:
    rows = ctx.store.latest_instances(ctx.run_id, task)
    rows.sort(key=lambda r: -1 if r.array_index is None else r.array_index)
    return TaskOutputs(ctx.graph.specs[task].is_array,
                       [loads(r.output or "null") for r in rows],
                       [r.output_hash or "" for r in rows],
                       [r.fingerprints for r in rows])


def task_statuses(ctx: DriverContext,
                  counts: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, str]:
    """Each task's status from the run's counts (``status_counts``, read here if not given)."""
    if counts is None:
        counts = ctx.store.status_counts(ctx.run_id)
    return {name: _task_status(counts.get(name, {})) for name in ctx.graph.order}


def _plan(ctx: DriverContext) -> tuple[int, dict[str, str]]:
    """Expand and decide every task whose upstream has all succeeded (one insert per task).

    Returns how many rows were inserted and each task's status as planning left it.
    """
    counts = ctx.store.status_counts(ctx.run_id)
    status = task_statuses(ctx, counts)
    inserted = 0
    for name in ctx.graph.order:
        if status[name] != "new":
            continue
        spec = ctx.graph.specs[name]
        ups = spec.upstream()
        bad = [u for u in ups if status[u] == "failed"]
        if bad:
            status[name] = "failed"
            # Only FAILED instances make it a failure; a cancelled or skipped one is not one.
            ended = ("failed" if counts.get(bad[0], {}).get("FAILED")
                     else "did not succeed (cancelled or skipped)")
            inserted += _skip_marker(ctx, spec, f"skipped: upstream task '{bad[0]}' {ended}")
            continue
        if any(status[u] != "success" for u in ups):
            continue
        try:
            count, status[name] = _expand(ctx, spec)
        except ReflowError as exc:  # wiring or encoding problem found only at run time
            status[name] = "failed"
            inserted += _skip_marker(ctx, spec, str(exc), skipped=False)
            continue
        inserted += count
    return inserted, status


def _expand(ctx: DriverContext, spec: TaskSpec) -> tuple[int, str]:
    upstream = {u: _outputs(ctx, u) for u in spec.upstream()}
    expanded = expand_task(ctx.workflow, spec, ctx.graph.wires[spec.name], upstream,
                           ctx.params.get(spec.name, {}))
    decisions = plan_task(ctx.store, ctx.workflow, ctx.run_id, spec, expanded,
                          forced=ctx.force or spec.name in ctx.force_tasks, verify=ctx.verify)
    if not decisions:
        return 0, "success"  # an empty fan-out: zero instances, done
    keep_shared(ctx.store, expanded)
    now = datetime.now(UTC)
    misses = [d for d in decisions if d.hit is None]
    copies = copy_batch(ctx.run_id, ctx.workflow, spec.name, decisions, now)
    rows = [fresh_row(ctx.run_id, ctx.workflow, spec.name, d.expanded, d.reason,
                      TaskState.PENDING, f"planned ({d.reason})") for d in misses]
    try:
        ids = ctx.store.insert_instances(rows, [copies])
    except InstanceConflict:  # another driver recorded this task first (lease not shared)
        return 0, "active"
    if spec.is_array and _cancelled_while_planned(ctx, spec.name, ids):
        return len(decisions), "failed"
    failed_checks = [(d, i) for d, i in zip(misses, ids, strict=True) if d.problems]
    if failed_checks:
        ctx.store.add_verify_failures(verify_failure_rows(
            ctx.run_id, spec, [d for d, _ in failed_checks], [i for _, i in failed_checks]))
    return len(decisions), ("active" if misses else "success")


def _cancelled_while_planned(ctx: DriverContext, task: str, ids: Sequence[int]) -> bool:
    """Whether a cancel marked ``task`` while this step planned it; its new rows are then
    closed with the cancel's words.

    A singleton's marker and its planned row cannot both be current (the unique index
    refuses the second), but an array's elements have indices 0..n and its marker none, so
    a cancel between this step reading the counts and inserting would be lost: the task
    would run.
    """
    marker = next((r for r in ctx.store.latest_instances(
        ctx.run_id, task, states=[TaskState.CANCELLED.value], values=False) if r.is_marker), None)
    if marker is None:
        return False
    text = marker.error_text or CANCELLED_BY_USER
    ctx.store.apply([StateChange(i, frozenset({TaskState.PENDING.value}), TaskState.CANCELLED,
                                 text, {"error_text": text, "finished_at": datetime.now(UTC)})
                     for i in ids])
    return True


def _skip_marker(ctx: DriverContext, spec: TaskSpec, text: str, *, skipped: bool = True) -> int:
    """Record ``marker_row`` for ``spec`` (once: a marker already there is kept).

    Not once the run was cancelled while this step ran: its upstream failed for the cancel,
    and the cancel marks what it stopped with its own words.
    """
    if RunState(ctx.store.get_run(ctx.run_id).status).terminal:
        return 0
    try:
        ctx.store.insert_instances([marker_row(ctx.run_id, ctx.workflow, spec.name, text,
                                               datetime.now(UTC), skipped=skipped)])
    except InstanceConflict:
        return 0
    return 1


# ------------------------------------------------------------------------------ submit
def resources_for(spec: TaskSpec, attempt: int, caps: Mapping[str, str],
                  site_options: Sequence[str] = ()) -> JobResources:
    """The task's resources, escalated once per earlier attempt within the configured caps.

    ``site_options`` (config ``[executor] submit_options``) come before the task's own, so a
    task can override a site-wide default with the same flag.
    """
    c = spec.config
    res = JobResources.from_options(cpus=c.cpus, mem=c.mem, time=c.time,
                                    submit_options=(*site_options, *c.submit_options),
                                    **c.scheduler_options)
    for _ in range(attempt - 1):
        if c.escalate:
            res = res.scaled(c.escalate, caps)
    return res


def _submit(ctx: DriverContext, report: StepReport) -> int:
    """Submit ready instances, one job per (task, attempt); at most ``max_submit_jobs``
    elements per step, counted over the groups actually submitted: a task held back by its
    ``array_parallelism`` must not use up the step's budget of the tasks behind it."""
    ready = ctx.store.latest_instances(ctx.run_id, states=_READY)
    groups: dict[tuple[str, int], list[InstanceRecord]] = {}
    for r in ready:
        groups.setdefault((r.task_name, r.attempt), []).append(r)
    moved = 0
    budget = ctx.max_submit_jobs
    in_flight: dict[str, int] | None = None
    for (task, attempt), rows in groups.items():
        if budget is not None:
            if budget <= 0:
                break
            rows = rows[:budget]
        spec = ctx.graph.specs[task]
        limit = spec.config.array_parallelism if spec.is_array else None
        if limit is not None:
            # array_parallelism bounds the task, not each submission: elements already
            # submitted (by an earlier step, or another attempt) count against it
            if in_flight is None:
                in_flight = {name: sum(states.get(s, 0) for s in _IN_FLIGHT)
                             for name, states in ctx.store.status_counts(ctx.run_id).items()}
            limit -= in_flight.get(task, 0)
            if limit <= 0:
                continue  # submitted once some of those have ended
            in_flight[task] = in_flight.get(task, 0) + len(rows)
        if budget is not None:
            budget -= len(rows)
        moved += _submit_group(ctx, spec, attempt, rows, report, limit)
    return moved


def _submit_group(ctx: DriverContext, spec: TaskSpec, attempt: int,
                  rows: list[InstanceRecord], report: StepReport,
                  parallelism: int | None = None) -> int:
    logs = ctx.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    meta = Meta(ctx.workflow, ctx.entrypoint, spec.name, ctx.run_dir, ctx.state_dir,
                spec.is_array, ctx.import_root)
    digests = set().union(*(referenced(r.input) for r in rows))
    payload = write_payload(ctx.run_dir, meta, [
        Element(r.id, r.attempt, r.array_index, r.input) for r in rows],
        ctx.store.shared_values(digests) if digests else None)
    suffix = f".{attempt}" if attempt > 1 else ""
    stem = f"{spec.name}" + ("-{index}" if spec.is_array else "") + suffix
    job = JobSpec(
        name=f"{ctx.workflow}-{spec.name}",
        command=(ctx.python, "-m", "reflow.engine.worker", str(payload)),
        resources=resources_for(spec, attempt, ctx.caps, ctx.submit_options),
        workdir=ctx.run_dir,
        stdout=logs / f"{stem}.out",
        stderr=logs / f"{stem}.err",
        array_indices=tuple(r.array_index for r in rows if r.array_index is not None)
        if spec.is_array else None,
        array_parallelism=parallelism,
        env={STREAMABLE_ENV: "1"},
    )
    try:
        parts = ctx.executor.submit_many(job)
    except ExecutorError as exc:
        return _submit_failed(ctx, spec, rows, str(exc), report)
    _clear_failures(ctx, spec.name)
    now = datetime.now(UTC)
    element_of: dict[int | None, str] = {}
    for job_id, part in parts:
        elements = ([ctx.executor.array_element_id(job_id, i) for i in part.array_indices]
                    if part.array_indices is not None else [job_id])
        _record_submission(ctx, job_id, elements)
        report.submitted_jobs.append(job_id)
        if part.array_indices is None:
            element_of[None] = job_id
        else:
            element_of.update(zip(part.array_indices, elements, strict=True))
    changes = []
    for r in rows:
        element = element_of[r.array_index]
        out = str(job.stdout).replace("{index}", str(r.array_index))
        err = str(job.stderr).replace("{index}", str(r.array_index))
        changes.append(StateChange(r.id, frozenset({r.state}), "SUBMITTED",
                                   f"job {element} ({ctx.executor.name})",
                                   {"job_id": element, "submitted_at": now,
                                    "stdout_path": out, "stderr_path": err}))
    moved = set(ctx.store.apply(changes))
    lost = [element_of[r.array_index] for r in rows if r.id not in moved]
    if lost:  # cancelled (or claimed) meanwhile: do not let the duplicate run
        log.warning("run %s: %d element(s) changed state while submitting; cancelling %s",
                    ctx.run_id, len(lost), ", ".join(lost[:5]))
        with contextlib.suppress(ExecutorError):
            ctx.executor.cancel(lost)
    return len(moved)


def _failures_file(ctx: DriverContext) -> Path:
    return ctx.state_dir / "submit_failures.json"


def _read_failures(ctx: DriverContext) -> dict[str, int]:
    try:
        data = json.loads(_failures_file(ctx).read_text(encoding="utf-8"))
        return {str(k): int(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, RecursionError):
        return {}


def _clear_failures(ctx: DriverContext, task: str) -> None:
    counts = _read_failures(ctx)
    if counts.pop(task, None) is not None:
        results.write_atomic(_failures_file(ctx), dict(counts))


def _submit_failed(ctx: DriverContext, spec: TaskSpec, rows: Sequence[InstanceRecord],
                   message: str, report: StepReport) -> int:
    """A refused submission: try again next step, and give up (FAILED) after a few tries."""
    counts = _read_failures(ctx)
    counts[spec.name] = counts.get(spec.name, 0) + 1
    results.write_atomic(_failures_file(ctx), dict(counts))
    report.problems.append(f"submitting task '{spec.name}' failed: {message}")
    log.warning("run %s: submitting task '%s' failed (%d/%d): %s", ctx.run_id, spec.name,
                counts[spec.name], SUBMIT_FAILURES_BEFORE_GIVING_UP, message)
    if counts[spec.name] < SUBMIT_FAILURES_BEFORE_GIVING_UP:
        return 0
    now = datetime.now(UTC)
    text = f"the scheduler refused the job: {message}"
    return len(ctx.store.apply([
        StateChange(r.id, frozenset(_READY), "FAILED", text[:500],
                    {"error_text": text, "finished_at": now, "scheduler_state": "REFUSED"})
        for r in rows
    ]))


# ------------------------------------------------------------------------------ finalise
def _finalise(ctx: DriverContext, planned: Mapping[str, str]) -> RunState | None:
    """Set the run's final state once no task is active or still to be planned.

    A task without rows counts as planning left it (an empty fan-out is done with zero).
    """
    counts = ctx.store.status_counts(ctx.run_id)
    status = task_statuses(ctx, counts)
    for name, value in status.items():
        if value == "new":
            status[name] = planned.get(name, "new")
    if any(s in ("active", "new") for s in status.values()):
        return None
    final = (RunState.SUCCESS if all(s == "success" for s in status.values())
             else RunState.unfinished(counts))
    ctx.store.set_run_status(ctx.run_id, final, only_from={RunState.RUNNING.value})
    return RunState(ctx.store.get_run(ctx.run_id).status)
