"""The verbs shared by the Python API, the CLI and the TUI: submit, plan, retry, cancel, why.

A retry from a key press, from ``reflow retry`` and from ``run.retry()`` is this one function,
so there is exactly one place that decides what a retry means.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from reflow.core.codec import display
from reflow.core.hashing import sha256_hex, short
from reflow.engine import reasons
from reflow.engine.reasons import diff_preimages
from reflow.engine.recording import CANCELLED_BY_USER
from reflow.engine.results import NOTHING_WAITING, Waiting, run_state_dir, waiting
from reflow.engine.run_records import RETRY_VERIFY, verifies_cache_hits
from reflow.errors import ReflowError, UnknownTaskError, suggestion
from reflow.processes import process_alive
from reflow.states import RunState, TaskState
from reflow.store import InstanceRecord, NewVerifyFailure, RunRecord, StateChange, Store

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.core.graph import TaskGraph
    from reflow.engine.plan_report import PlanReport
    from reflow.run import Run

_RETRYABLE = {TaskState.FAILED.value, TaskState.CANCELLED.value}


def check_run_task(store: Store, run_id: str, task: str) -> None:
    names = [s.name for s in store.task_specs(run_id)]
    if task not in names:
        hint = suggestion(task, names) or f" Tasks: {', '.join(names)}."
        raise UnknownTaskError(f"run {run_id} has no task '{task}'.{hint}")


def _options(store: Store, run_id: str) -> dict[str, Any]:
    return store.get_run(run_id).option_values


# -- why -----------------------------------------------------------------------------------
def _short_value(value: Any) -> str:
    if value is reasons.ABSENT:
        return repr(value)
    if isinstance(value, str) and len(value) == 64:
        return short(value)
    if isinstance(value, list) and value and all(isinstance(v, str) and len(v) == 64
                                                  for v in value):
        return f"[{len(value)} hashes, digest {short(sha256_hex(json.dumps(value)))}]"
    text = display(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _instance(store: Store, run_id: str, task: str, index: int | None) -> InstanceRecord:
    """The latest attempt of one instance; if there is none, an error saying which exist."""
    return _attempts(store, run_id, task, index)[-1]


def _attempts(store: Store, run_id: str, task: str,
              index: int | None) -> list[InstanceRecord]:
    """One instance's attempts up to the latest, which comes last; if it has none, an error
    saying which exist.

    The attempts are one index seek; for the error, one aggregate over the task's other
    instances (maybe 100,000) says which indices exist.
    """
    check_run_task(store, run_id, task)
    attempts = store.history(run_id, task, index)
    for n, r in enumerate(attempts):
        if r.latest:
            return [*attempts[:n], r]
    top, singleton = store.index_span(run_id, task)
    if index is None and top is not None:
        fix = f"task '{task}' is an array: give an index 0-{top} (--index, or index=)"
    elif index is not None and singleton:
        fix = f"task '{task}' is not an array: leave out --index (index=)"
    elif top is not None:
        fix = f"its indices are 0-{top}"
    else:
        fix = f"task '{task}' has no instances in this run"
    where = f"{task}[{index}]" if index is not None else task
    raise UnknownTaskError(f"run {run_id} has no instance {where}; {fix}")


def _previous_attempt(attempts: list[InstanceRecord]) -> str:
    """How the attempt before a retry ended: what the retry was for (an OOM, a traceback)."""
    if len(attempts) < 2:
        return ""
    last = attempts[-2]
    said = last.scheduler_state  # the scheduler's word, where it says more than the state
    how = last.state + (f" ({said})" if said and said != last.state else "")
    lines = (last.error_text or "").strip().splitlines()
    return f"\n  attempt {last.attempt} ended {how}" + (f": {lines[-1][:200]}" if lines else "")


def why(store: Store, run_id: str, task: str, index: int | None = None) -> str:
    """Explain why one instance was cached or recomputed (SPEC §3)."""
    attempts = _attempts(store, run_id, task, index)
    row = attempts[-1]
    label = f"{task}[{index}]" if index is not None else task
    identity = f"identity {short(row.identity)}, " if row.identity else ""
    head = f"{label}: {row.reason} ({identity}attempt {row.attempt})"
    if row.cached:
        source = store.instance(row.cache_source, values=False) if row.cache_source else None
        of_run = f" of run {source.run_id}" if source is not None else ""
        return (f"{head}\n  reused the output of instance {row.cache_source}{of_run} "
                "with the same identity")
    if row.reason == reasons.RETRY and len(attempts) > 1:
        return head + _previous_attempt(attempts)
    if row.is_marker:  # skipped, or its inputs could not be wired: the note says which
        return head + ("\n  " + row.error_text if row.error_text else "")
    if row.reason.startswith("verify-failed"):
        # A retry records the failed check against the attempt it rejected: show those too.
        fails = [f for f in store.verify_failures(run_id)
                 if f.task_name == task and f.array_index == index]
        return "\n".join([head] + [f"  verify of {f.check} failed: {f.reason}" for f in fails])
    earlier = store.earlier_attempt_preimages(run_id, task).get(index) or store.nearest_preimage(
        row.workflow, task, index, before_instance_id=row.id, exclude_run=run_id)
    bypassed = row.reason in (reasons.FORCED, reasons.CACHE_DISABLED)
    if earlier is None:
        return head if bypassed else (
            f"{head}\n  no earlier run of workflow '{row.workflow}' ran task '{task}'")
    changes = diff_preimages(json.loads(earlier), json.loads(row.preimage))
    if not changes:
        # Forced, or the cache is off for the task: a hit would have had these very inputs.
        return head if bypassed else (
            f"{head}\n  same inputs as the nearest earlier instance, which did not succeed")
    lines = [head] + [
        f"  {c.component}: {_short_value(c.old)} -> {_short_value(c.new)}" for c in changes
    ]
    return "\n".join(lines)


# -- retry ---------------------------------------------------------------------------------
def retry(run: Run, task: str | None = None, *, verify: bool = True,
          background: bool = False) -> int:
    """Mark failed instances for a new attempt and run them; returns how many were marked.

    Upstream outputs that the retried work consumes are verified first (by default). An
    upstream instance whose output no longer checks out is recomputed (reason
    ``verify-failed:<kind>``), and everything downstream of its task is planned afresh from
    the new output, as after a forced rerun: a retried attempt must not run on the input the
    failed check just rejected, nor be recorded under that input's identity. A run with
    nothing to retry is left exactly as it was. ``background``: see ``continue_run``.
    """
    store = run.store
    if task is not None:
        check_run_task(store, run.run_id, task)
    counts = store.status_counts(run.run_id)
    if not any(states.get(s) for name, states in counts.items() for s in _RETRYABLE
               if task is None or name == task):
        return 0  # asked of the aggregate: a big run's rows are not read for nothing
    rows = store.latest_instances(run.run_id)
    mine = [r for r in rows if r.state in _RETRYABLE and (task is None or r.task_name == task)]
    targets = [r for r in mine if not r.is_marker]
    # A task not run after a stop or an interruption, or whose inputs could not be wired, has
    # one marker row instead of instances: it is planned afresh. One skipped because an
    # upstream task did not succeed waits for that task: alone, it is nothing to retry.
    unfinished = {r.task_name for r in rows if r.state != TaskState.SUCCESS}
    needs = {s.name: set(json.loads(s.dependencies)) for s in store.task_specs(run.run_id)}
    unplanned = [r for r in mine
                 if r.is_marker and not needs.get(r.task_name, set()) & unfinished]
    if not targets and not unplanned:
        return 0
    markers = [r.id for r in rows if r.is_marker]
    # Import the workflow before changing anything: a pipeline file that moved must leave the
    # run as it was, not with attempts marked that no driver can run.
    graph = run.workflow().validate()
    stale: dict[int, str] = {}
    replan: list[int] = []
    replanned = 0
    if verify:
        # What will run: the retried tasks and everything downstream of them (skipped, or
        # never planned after a stop); all of it reads upstream outputs recorded before.
        will_run = graph.descendants(sorted({r.task_name for r in [*targets, *unplanned]}))
        stale = _verify_upstream(run, graph, rows, will_run)
        stale_tasks = {r.task_name for r in rows if r.id in stale}
        downstream = graph.descendants(sorted(stale_tasks)) - stale_tasks
        replan = [r.id for r in rows if r.task_name in downstream]
        replanned = sum(r.task_name in downstream for r in targets)
        targets = [r for r in targets if r.task_name not in downstream]
    if not store.set_run_status(run.run_id, RunState.RUNNING, only_from={
            RunState.FAILED.value, RunState.CANCELLED.value, RunState.SUCCESS.value}):
        raise ReflowError(f"run {run.run_id} is still running; wait for it or cancel it first")
    _set_retry_verify(store, run.run_id, verify)
    new_ids = store.new_attempts(sorted(r.id for r in targets), detail="retry requested")
    for kind in sorted(set(stale.values())):
        new_ids += store.new_attempts(sorted(i for i, k in stale.items() if k == kind),
                                      detail="upstream output failed verify", force=True,
                                      reason=reasons.verify_failed(kind))
    if markers or replan:
        store.supersede([*markers, *replan])
    if store.get_run(run.run_id).status != RunState.RUNNING:
        _undo_for_cancel(run)
    continue_run(run, background=background)
    # Skips re-planned beside retried failures are not counted as retried (SPEC §2 counts
    # what was marked for retry); a marker is when nothing else was.
    failed_markers = sum(r.state == TaskState.FAILED for r in unplanned)
    return (len(new_ids) + replanned + failed_markers) or len(unplanned)


def _undo_for_cancel(run: Run) -> NoReturn:
    """A cancel landed while retry marked attempts: it found nothing active (they did not
    exist yet) and left them RETRYING under a CANCELLED run, which no driver would ever run.
    They are closed as the cancel would have closed them, and the retry is refused."""
    from reflow.engine.dispatch import close_active, mark_unplanned

    close_active(run.store, run.run_id, None, CANCELLED_BY_USER)
    mark_unplanned(run, CANCELLED_BY_USER)
    raise ReflowError(f"run {run.run_id} was cancelled while the retry marked its instances; "
                      f"nothing was retried (`reflow retry {run.run_id}` to try again)")


def force_rerun(run: Run, task: str, *, background: bool = False) -> int:
    """Recompute one task of a finished run (reason ``forced``) and re-plan its dependants.

    The task's instances get new attempts; everything downstream is planned afresh from the
    new outputs, so dependants are recomputed where their inputs change and reused where the
    forced output turns out identical. Returns how many instances of ``task`` were restarted.
    """
    store = run.store
    check_run_task(store, run.run_id, task)
    graph = run.workflow().validate()
    rows = store.latest_instances(run.run_id)
    targets = [r.id for r in rows if r.task_name == task and not r.is_marker]
    downstream = graph.descendants([task]) - {task}
    dependants = [r.id for r in rows if r.task_name in downstream
                  or (r.task_name == task and r.is_marker)]
    if not targets and not dependants:
        return 0
    if not store.set_run_status(run.run_id, RunState.RUNNING, only_from={
            RunState.FAILED.value, RunState.CANCELLED.value, RunState.SUCCESS.value}):
        raise ReflowError(f"run {run.run_id} is still running; wait for it or cancel it first")
    _set_retry_verify(store, run.run_id, False)  # a forced rerun trusts the store again
    new_ids = store.new_attempts(targets, detail="force-rerun requested", force=True,
                                 reason=reasons.FORCED)
    if dependants:
        store.supersede(dependants)
    continue_run(run, background=background)
    return len(new_ids)


def _set_retry_verify(store: Store, run_id: str, on: bool) -> None:
    """Whether what is planned from now on checks its cache hits (``RETRY_VERIFY``)."""
    store.set_run_options(run_id, {**_options(store, run_id), RETRY_VERIFY: on})


def _verify_upstream(
    run: Run, graph: TaskGraph, rows: list[Any], tasks: set[str]
) -> dict[int, str]:
    """Check the SUCCESS outputs that ``tasks`` consume; the failing instances by check kind.

    Every failed check is recorded as a verify failure; an instance failing several is keyed
    by the kind of its first problem, as a cache hit failing verify would be.
    """
    from reflow.engine.verify import verify_output

    upstream: set[str] = set()
    for name in tasks:
        upstream |= set(graph.specs[name].upstream())
    bad: dict[int, str] = {}
    failures: list[NewVerifyFailure] = []
    for r in rows:
        if r.task_name in upstream and r.state == TaskState.SUCCESS:
            for prob in verify_output(graph.specs[r.task_name], r.output, r.fingerprints):
                bad.setdefault(r.id, prob.kind)
                failures.append(NewVerifyFailure(r.id, run.run_id, r.task_name, r.array_index,
                                                 prob.check, f"{prob.kind}: {prob.reason}"))
    if failures:
        run.store.add_verify_failures(failures)
    return bad


def continue_run(run: Run, *, background: bool = False) -> None:
    """Carry on with a run after retry marked instances, on the path that created it.

    A run made by ``run_local`` is executed by the calling process, which records itself as
    the run's process (so ``status`` does not call the run stalled while it works). With
    ``background`` (the TUI) a detached process does that instead: quitting the caller, or
    losing its terminal, must not stop the work or leave the run RUNNING for ever.
    """
    options = _options(run.store, run.run_id)
    executor = options.get("executor", "inline")
    if executor != "inline":
        from reflow.engine.dispatch import kick_driver

        kick_driver(run)
        return
    if background:
        from reflow.engine.inline_host import spawn

        spawn(run)
        return
    from reflow.core.codec import loads
    from reflow.core.parameters import resolve_parameters
    from reflow.engine.local_runner import InlineExecution

    wf = run.workflow()
    graph = wf.validate()
    rec = run.record()
    per_task, _ = resolve_parameters(graph.specs, loads(rec.parameters))
    run.store.set_run_options(run.run_id, {**options, "pid": os.getpid(),
                                           "host": socket.gethostname()})
    existing: dict[str, list[Any]] = {}
    for r in run.store.latest_instances(run.run_id):
        existing.setdefault(r.task_name, []).append(r)
    InlineExecution(
        wf.name, graph, run.store, run.run_id, Path(rec.run_dir), per_task,
        verify=verifies_cache_hits(options), on_error=options.get("on_error", "stop"),
        max_workers=int(options.get("max_workers", 1)), existing=existing,
        # The run's own force options hold for what is planned from here, as on the driver
        # path: a forced run resumed or retried must not take cache hits it asked to skip.
        force=bool(options.get("force")), force_tasks=set(options.get("force_tasks") or ()),
    ).execute()


# -- resume and logs ------------------------------------------------------------------------
def resume(run: Run) -> bool:
    """Restart the driver of a run that stopped while work was still active; False when its
    driver is alive and nothing needed restarting.

    A run recorded by ``run_local`` whose process is gone (killed, node rebooted) has its
    orphaned RUNNING rows closed as CANCELLED and retried in this process.
    """
    rec = run.record()
    if RunState(rec.status).terminal:
        raise ReflowError(
            f"run {run.run_id} is {rec.status}; nothing to resume (use `reflow retry "
            f"{run.run_id}{run.store.cli_option()}` to re-run failed instances)"
        )
    options = _options(run.store, run.run_id)
    if options.get("executor", "inline") != "inline":
        from reflow.engine.dispatch import resume_run

        return resume_run(run)
    if options.get("host") == socket.gethostname() and process_alive(options.get("pid")):
        raise ReflowError(
            f"run {run.run_id} is still running in process {options.get('pid')} on this host; "
            "wait for it or stop that process first"
        )
    store = run.store
    # Left open by the process: planned (PENDING), running, or a retried attempt not started.
    orphans = store.latest_instances(run.run_id, states=[
        TaskState.PENDING.value, TaskState.RUNNING.value, TaskState.RETRYING.value])
    now = datetime.now(UTC)
    why_text = "interrupted: the process running this run is gone"
    store.apply([StateChange(r.id, frozenset({r.state}), TaskState.CANCELLED, why_text,
                             {"error_text": why_text, "finished_at": now}) for r in orphans])
    store.set_run_status(run.run_id, RunState.FAILED, only_from={RunState.RUNNING.value})
    if orphans:
        retry(run, verify=False)
    else:
        store.set_run_status(run.run_id, RunState.RUNNING, only_from={RunState.FAILED.value})
        continue_run(run)
    return True


def stalled_reason(store: Store, run_id: str, *, ask_scheduler: bool = True) -> str | None:
    """Why a RUNNING run is no longer progressing (its driver or process is gone), else None.

    ``ask_scheduler=False`` (the TUI, which never calls the scheduler) leaves a chained
    driver's job unchecked.
    """
    rec = store.get_run(run_id)
    if RunState(rec.status).terminal:
        return None
    options = rec.option_values
    if options.get("executor", "inline") != "inline":
        from reflow.engine.driver_host import stalled_reason as driver_stalled

        return driver_stalled(store, run_id, ask_scheduler=ask_scheduler)
    if options.get("host") == socket.gethostname() and not process_alive(options.get("pid")):
        return f"the process {options.get('pid')} that ran it in-process is gone"
    return None


def waiting_reports(rec: RunRecord) -> Waiting:
    """What the workers of a RUNNING run have reported that its driver has not recorded yet.

    Read from the run dir, never the scheduler; none for an in-process run, which records as
    it goes.
    """
    options = rec.option_values
    if RunState(rec.status).terminal or options.get("executor", "inline") == "inline":
        return NOTHING_WAITING
    return waiting(run_state_dir(Path(rec.run_dir), rec.run_id))


def log_paths(store: Store, run_id: str, task: str,
              index: int | None = None) -> tuple[Path | None, Path | None]:
    """The stdout and stderr files of an instance's latest attempt (None where there are none).

    Runs made in-process (``run_local``) write no log files: their output went to the
    terminal that ran them. A cache hit ran in another run, whose logs the error names.
    """
    row = _instance(store, run_id, task, index)
    if row.cached and row.cache_source is not None:
        source = store.instance(row.cache_source)
        where = "" if source.array_index is None else f" --index {source.array_index}"
        label = task if index is None else f"{task}[{index}]"
        reused = (f"{label} did not run in run {run_id}: it reused the output of instance "
                  f"{source.id} of run {source.run_id}")
        if not source.stdout_path and not source.stderr_path:  # run_local keeps none
            raise ReflowError(f"{reused}, which ran in-process (run_local) and so wrote no "
                              "log files")
        raise ReflowError(
            f"{reused}; `reflow logs {source.run_id} "
            f"{source.task_name}{where}{store.cli_option()}` shows that run's logs")
    return (Path(row.stdout_path) if row.stdout_path else None,
            Path(row.stderr_path) if row.stderr_path else None)


# -- cancel --------------------------------------------------------------------------------
def cancel(run: Run, task: str | None = None) -> int:
    """Cancel the active instances of a run (or one task); a finished run is left alone."""
    store = run.store
    if task is not None:
        check_run_task(store, run.run_id, task)
    rec = store.get_run(run.run_id)
    if RunState(rec.status).terminal:
        return 0
    options = _options(store, run.run_id)
    if options.get("executor", "inline") != "inline":
        from reflow.engine.dispatch import cancel_run

        return cancel_run(run, task)
    return _cancel_in_process(run, task)


def _cancel_in_process(run: Run, task: str | None) -> int:
    """Cancel a run that ``run_local`` executes: its process notices and stops.

    The run and its recorded active instances become CANCELLED here; the running process
    checks its run's status every ``BATCH_SECONDS`` and then cancels what it had not started
    (a task body already running in it finishes first: Python cannot interrupt it safely).
    Its own late state changes are compare-and-set, so nothing cancelled here moves again.
    One process runs every task, so only the whole run can be cancelled.
    """
    from reflow.engine.dispatch import close_active

    if task is not None:
        raise ReflowError(
            f"run {run.run_id} runs in one process (run_local), so task '{task}' cannot be "
            f"cancelled alone; cancel the whole run (`reflow cancel {run.run_id}`)"
        )
    _, moved = close_active(run.store, run.run_id, None, CANCELLED_BY_USER)
    return len(moved)


def cancel_runs(run_ids: Iterable[str], store: Any = None) -> int:
    from reflow.run import Run

    st = Store.open(store, create=False)  # a mistyped path must not leave a new store
    return sum(Run.load(rid, store=st).cancel() for rid in run_ids)


# -- submit / plan -------------------------------------------------------------------------
def submit(wf: Workflow, run_dir: str | Path, *, plan: bool = False, dry_run: bool = False,
           **kwargs: Any) -> Any:
    """Record the run and hand it to the driver, or with ``plan=True`` print what it would do.

    The plan is printed (SPEC §3: it "prints, per task, ...") and returned, so a notebook
    shows it and a script can read the counts; nothing is recorded or submitted.
    """
    if plan or dry_run:
        from reflow.engine.plan_report import plan_run

        report = plan_run(wf, run_dir, **kwargs)
        print(report)
        return report
    from reflow.engine.dispatch import submit_run

    return submit_run(wf, run_dir, **kwargs)


def plan(wf: Workflow, run_dir: str | Path, **kwargs: Any) -> PlanReport:
    from reflow.engine.plan_report import plan_run

    return plan_run(wf, run_dir, **kwargs)
