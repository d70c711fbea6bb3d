"""``submit``, ``cancel``, ``resume`` and retry continuation for runs that go through a driver.

``submit_run`` records the run with ``"executor": <name>`` in its options (so retry and cancel
find their way back here) and hands it to a driver host: the foreground loop with
``wait=True``, a detached background process for the local executor, chained scheduler jobs
for cluster schedulers (the first step runs right here, so the first jobs are queued when
``submit`` returns and errors in planning surface at once).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.engine.driver import ACTIVE, record_finished_work
from reflow.engine.driver_host import (
    CHAINED,
    DETACHED,
    FOREGROUND,
    load_context,
    make_executor,
    poll_bounds,
    run_foreground,
    stalled_reason,
    start_host,
)
from reflow.engine.local_runner import check_forced_tasks
from reflow.engine.recording import CANCELLED_BY_USER, marker_row
from reflow.engine.results import run_state_dir
from reflow.engine.run_records import make_run_dir, record_run
from reflow.errors import ConfigError, StoreError
from reflow.executors.base import Executor
from reflow.states import RunState, TaskState
from reflow.store import InstanceConflict, InstanceRecord, StateChange, Store

if TYPE_CHECKING:
    from reflow.config import Config
    from reflow.core.flow import Workflow
    from reflow.run import Run

def detect_executor(config: Config) -> str:
    """The configured executor, else the scheduler found on PATH, else ``local``."""
    from reflow.config import normalise_executor_name
    from reflow.executors import detect_executor_name

    if config.executor.mode:
        return normalise_executor_name(config.executor.mode)
    return detect_executor_name()


def submit_run(
    wf: Workflow,
    run_dir: str | Path,
    *,
    store: Any = None,
    executor: Executor | str | None = None,
    force: bool = False,
    force_tasks: Iterable[str] | None = None,
    verify: bool = False,
    wait: bool = False,
    on_recorded: Callable[[str], None] | None = None,
    **params: Any,
) -> Run:
    """Record a run and hand it to the driver (SPEC §2, §5).

    ``on_recorded(run_id)`` is called as soon as the run exists, before any work runs, so a
    caller waiting in the foreground can show the run id and its progress at once.
    """
    from reflow.config import load_config, normalise_executor_name
    from reflow.core.parameters import resolve_parameters
    from reflow.errors import ReflowError
    from reflow.run import Run

    graph = wf.validate()
    forced = check_forced_tasks(graph, force_tasks)
    _, record = resolve_parameters(graph.specs, params)
    config = wf.config or load_config()
    if isinstance(executor, Executor):
        instance: Executor | None = executor
        name = executor.name
    else:
        instance = None
        name = normalise_executor_name(executor) if executor else detect_executor(config)
    entry = wf.entrypoint()
    if entry is None:
        raise ReflowError(
            f"workflow '{wf.name}' was defined without a file (notebook or -c), so workers "
            "cannot import it; move it into a .py file, or use wf.run_local(...)"
        )
    if not wf.importable() and name != "dry-run":
        raise ReflowError(
            f"workflow '{wf.name}' is not a module-level name of {entry}, so the driver and "
            "workers (other processes) cannot import it; define it at module level, or run it "
            "in this process with wf.run_local(...)"
        )
    # Built before anything is recorded: an adapter that cannot be set up leaves no run behind.
    adapter = instance or make_executor(name, config)
    if name == "local":
        _check_local_python(config.executor.python)
    st = Store.open(store)
    directory = make_run_dir(run_dir)
    host = FOREGROUND if wait else (DETACHED if name == "local" else CHAINED)
    options: dict[str, Any] = {"executor": name, "force": force, "force_tasks": forced,
                               "verify": verify, "host": host}
    max_workers = getattr(instance, "max_workers", None)
    if max_workers is not None:
        options["max_workers"] = max_workers
    run_id = record_run(st, wf, graph, directory, record, options)
    if on_recorded is not None:
        on_recorded(run_id)
    run = Run(run_id, store=st, workflow=wf)
    try:
        ctx = load_context(st, run_id, executor=adapter, config=config)
    except Exception:
        # Nothing was submitted and no driver will ever take the run: it must not stay RUNNING.
        st.set_run_status(run_id, RunState.FAILED, only_from={RunState.RUNNING.value})
        raise
    if name == "dry-run":
        from reflow.engine.driver import step

        step(ctx)  # renders what the first step would submit
        listing = dry_run_commands(directory)
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{c}\n" for c in getattr(adapter, "commands", ())),
                           encoding="utf-8")
        # Nothing will ever run those jobs: close the run rather than leave it RUNNING.
        close_active(st, run_id, None,
                     f"dry run: nothing was submitted; the commands are in {listing}")
        return run
    if host == FOREGROUND:
        first, longest = poll_bounds(ctx.executor, config)
        try:
            run_foreground(ctx, first, longest)
        except StoreError as exc:
            args = f"{run_id}{st.cli_option()}"
            raise StoreError(f"run {run_id} is left RUNNING: {exc}; what was submitted goes on, "
                             f"and once the store answers `reflow resume {args}` carries the "
                             "run on", run_id=run_id) from exc
    else:
        start_host(ctx, host, config)
    return run


def _check_local_python(python: str) -> None:
    """The local executor starts its driver and workers on this host with ``python``: a wrong
    path must fail before the run is recorded (it left a RUNNING run with no driver), and say
    which setting to fix."""
    if shutil.which(python) is None:
        raise ConfigError(
            f"[executor] python (REFLOW_PYTHON) is {python!r}, which is not an executable on "
            f"this host; set it to a Python that has reflow installed, e.g. {sys.executable}"
        )


def dry_run_commands(run_dir: Path) -> Path:
    """Where a dry run leaves the commands its first step would have run, one per line."""
    return run_dir / "logs" / "dry-run-commands.sh"


def _host_of(run: Run) -> tuple[str, dict[str, Any]]:
    options = run.record().option_values
    host = options.get("host", CHAINED)
    if host == FOREGROUND:  # nobody is waiting any more: continue in the background
        host = DETACHED if options.get("executor") == "local" else CHAINED
    return host, options


def kick_driver(run: Run) -> None:
    """Carry a run on after ``retry`` marked instances RETRYING: make sure a driver runs."""
    from reflow.config import load_config

    host, _ = _host_of(run)
    config = load_config()
    ctx = load_context(run.store, run.run_id, config=config)
    start_host(ctx, host, config)


def resume_run(run: Run) -> bool:
    """Restart the driver of a run whose chain stopped with work still active; False when
    there was nothing to restart (the run ended, or its driver is alive)."""
    from reflow.config import load_config

    if run.state.terminal or stalled_reason(run.store, run.run_id) is None:
        return False
    host, _ = _host_of(run)
    config = load_config()
    ctx = load_context(run.store, run.run_id, config=config)
    start_host(ctx, host, config)
    return True


def close_active(
    store: Store, run_id: str, task: str | None, text: str
) -> tuple[list[InstanceRecord], set[int]]:
    """Move a run's (or a task's) active instances to CANCELLED; with no task, the run too.

    Returns the rows that were active and the ids this call moved. Compare-and-set against
    every active state, not the one just read: a driver moving an instance on (SUBMITTED →
    RUNNING) in between must not make the cancel miss it, while one that finished it first
    keeps its state.
    """
    if task is None:  # first: a driver step starting now stops, and plans nothing more
        store.set_run_status(run_id, RunState.CANCELLED, only_from={RunState.RUNNING.value})
    rows = store.latest_instances(run_id, task, states=ACTIVE)
    now = datetime.now(UTC)
    moved = set(store.apply([
        StateChange(r.id, ACTIVE, TaskState.CANCELLED, text,
                    {"finished_at": now, "error_text": text, "scheduler_state": "CANCELLED"})
        for r in rows
    ]))
    return rows, moved


def mark_unplanned(run: Run, text: str, task: str | None = None) -> int:
    """Give the tasks (or ``task``) a cancel finds not planned yet a marker, as ``run_local``
    does: ``status`` shows them CANCELLED with why, not "no instances", no driver plans
    them, and a retry replaces the marker as a skip's. Returns how many were added."""
    planned = run.store.status_counts(run.run_id)
    workflow, now = run.record().workflow, datetime.now(UTC)
    markers = [marker_row(run.run_id, workflow, spec.name, text, now)
               for spec in run.store.task_specs(run.run_id)
               if spec.name not in planned and task in (None, spec.name)]
    if not markers:
        return 0
    try:
        run.store.insert_instances(markers)  # one transaction for all
        return len(markers)
    except InstanceConflict:  # a driver planned one meanwhile: keep what it planned
        added = 0
        for marker in markers:
            with contextlib.suppress(InstanceConflict):
                run.store.insert_instances([marker])
                added += 1
        return added


def cancel_run(run: Run, task: str | None = None) -> int:
    """Cancel a run's active instances (or one task's); returns how many were cancelled.

    Successes workers already reported are recorded first (``record_finished_work``); then
    states change (compare-and-set), then the scheduler is told: a worker finishing in
    between finds its instance CANCELLED and its late result is ignored.
    """
    from reflow.config import load_config

    text = CANCELLED_BY_USER + (f" (task '{task}')" if task else "")
    run_dir = Path(run.record().run_dir)
    record_finished_work(run.store, run.run_id, run_state_dir(run_dir, run.run_id))
    # A task not planned yet gets its marker first, so that a driver cannot plan it after
    # the cancel looked (the marker holds its place); the whole run's come after the run is
    # CANCELLED, which stops every driver.
    marked = mark_unplanned(run, text, task) if task is not None else 0
    rows, moved = close_active(run.store, run.run_id, task, text)
    if task is None:
        mark_unplanned(run, text)
    jobs = [r.job_id for r in rows if r.id in moved and r.job_id]
    _, options = _host_of(run)
    config = load_config()
    executor = make_executor(options["executor"], config, options.get("max_workers"))
    from reflow.engine.driver_host import read_heartbeat

    beat = read_heartbeat(run_dir, run.run_id)
    if task is None and beat and beat.get("host") == CHAINED and beat.get("job_id"):
        jobs.append(str(beat["job_id"]))
    if jobs:
        try:
            executor.cancel(jobs)
        except Exception as exc:  # states are already CANCELLED; say what may still run
            sys.stderr.write(f"reflow: cancelling jobs of run {run.run_id} failed: {exc}\n")
    return len(moved) + marked
