"""Where driver steps run: in the foreground, in a detached process, or as chained jobs.

All three call the same ``driver.step``; they differ only in what keeps the next step coming:
a loop with adaptive polling (foreground, and the detached process that runs that loop after
leaving the caller's session), or a scheduler job that, after its step, submits its successor
with an ``afterany`` dependency on the first of the jobs in flight to end (nothing stays on
the login node).

Each host writes a heartbeat (``driver.json`` in the run's state dir: which host, pid, successor
job) so that ``stalled_reason`` can tell a run whose chain stopped from one that is waiting.

``python -m reflow.engine.driver_host {detached|chained} RUN_ID`` is the entry point of the
detached process and of each chained job; the store comes from ``REFLOW_STORE``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.engine import results
from reflow.engine.driver import DriverContext, step
from reflow.engine.run_records import verifies_cache_hits
from reflow.errors import ExecutorError, ReflowError, StoreError
from reflow.executors.base import Executor, JobResources, JobSpec, JobState
from reflow.processes import process_alive
from reflow.states import RunState

if TYPE_CHECKING:
    from reflow.config import Config
    from reflow.store import Store

log = logging.getLogger("reflow.driver")

DETACHED = "detached"
CHAINED = "chained"
FOREGROUND = "foreground"
STALE_AFTER_S = 600.0
_MAX_CHAIN_RETRIES = 5
# A detached driver waits out this many store failures in a row (each one is the store's own
# deadline of retries, 30 s by default) before it gives up; a run of steps longer than
# _OUTAGE_GAP_S in between starts the count again.
_OUTAGE_RETRIES = 60
_OUTAGE_GAP_S = 120.0


# ------------------------------------------------------------------------------ context
def make_executor(name: str, config: Config, max_workers: int | None = None) -> Executor:
    """The adapter for an executor name (the local one sized by ``max_workers``)."""
    if name == "local":
        from reflow.executors.local import LocalExecutor

        return LocalExecutor(max_workers=max_workers or config.executor.max_workers)
    from reflow.executors import get_executor

    return get_executor(name, config.executor.adapter_settings())


def store_location(store: Store) -> str:
    """The store URL with its password, for child processes (passed in the environment)."""
    return str(store._db.url.render_as_string(hide_password=False))


# A driver job's environment travels on its command line (``/usr/bin/env K=V ...``) and into
# the scheduler's accounting, so it is given the path of a file only its owner can read, not
# the store URL with its password.
STORE_FILE_ENV = "REFLOW_STORE_FILE"


def write_store_file(ctx: DriverContext) -> Path:
    """The run's store location in ``store-location`` in its state dir (mode 0600)."""
    path = ctx.state_dir / "store-location"
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(store_location(ctx.store))
    return path


def _store_from_environment() -> str | None:
    """What a background process was told: a store file (driver jobs) or REFLOW_STORE."""
    file = os.environ.get(STORE_FILE_ENV)
    if file:
        return Path(file).read_text(encoding="utf-8").strip()
    return os.environ.get("REFLOW_STORE")


def load_context(store: Store, run_id: str, executor: Executor | None = None,
                 config: Config | None = None) -> DriverContext:
    """Rebuild a run's driver context from its record (in a new process or a later session)."""
    from reflow.config import load_config
    from reflow.core.codec import loads
    from reflow.core.parameters import resolve_parameters
    from reflow.engine.entrypoints import load_workflow

    rec = store.get_run(run_id)
    options = rec.option_values
    entrypoint = rec.entrypoint
    import_root = options.get("import_root")
    wf = load_workflow(entrypoint, rec.workflow, import_root)
    graph = wf.validate()
    per_task, _ = resolve_parameters(graph.specs, loads(rec.parameters))
    config = config or wf.config or load_config()
    if executor is None:
        executor = make_executor(options["executor"], config, options.get("max_workers"))
    return DriverContext(
        store=store, run_id=run_id, run_dir=Path(rec.run_dir), workflow=rec.workflow,
        entrypoint=str(entrypoint), import_root=import_root, graph=graph, params=per_task,
        executor=executor,
        python=config.executor.python, force=bool(options.get("force")),
        force_tasks=frozenset(options.get("force_tasks") or ()),
        verify=verifies_cache_hits(options), max_submit_jobs=config.executor.max_submit_jobs,
        submit_options=tuple(config.executor.submit_options),
        caps=dict(config.executor.caps),
    )


def poll_bounds(executor: Executor, config: Config) -> tuple[float, float]:
    """(first, longest) pause between steps: local files are cheap to poll, schedulers not."""
    if executor.name == "local":
        return 0.02, 1.0
    return config.executor.poll_interval, config.executor.max_poll_interval


# ------------------------------------------------------------------------------ heartbeat
def _heartbeat_path(state_dir: Path) -> Path:
    return state_dir / "driver.json"


def write_heartbeat(state_dir: Path, host: str, job_id: str | None = None) -> None:
    results.write_atomic(_heartbeat_path(state_dir), {
        "host": host, "pid": os.getpid(), "hostname": socket.gethostname(), "job_id": job_id,
        "at": datetime.now(UTC).isoformat(),
    })


def read_heartbeat(run_dir: Path, run_id: str) -> dict[str, Any] | None:
    try:
        path = _heartbeat_path(results.run_state_dir(run_dir, run_id))
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def stalled_reason(store: Store, run_id: str, executor: Executor | None = None, *,
                   ask_scheduler: bool = True) -> str | None:
    """Why a RUNNING run has no driver any more, or None when one is alive (or not needed).

    ``status`` and the TUI show this; ``reflow resume`` restarts the driver. Whether a chained
    driver's job still waits can only be asked of the scheduler: without ``ask_scheduler``
    such a run is not called stalled.
    """
    rec = store.get_run(run_id)
    if RunState(rec.status).terminal:
        return None
    options = rec.option_values
    if options.get("executor", "inline") == "inline":
        return None
    beat = read_heartbeat(Path(rec.run_dir), run_id)
    if beat is None:
        age = (datetime.now(UTC) - rec.created_at).total_seconds()
        return None if age < 60 else "no driver has ever run for this run"
    at = datetime.fromisoformat(beat["at"])
    age = (datetime.now(UTC) - at).total_seconds()
    if beat.get("host") == CHAINED:
        job = beat.get("job_id")
        if not job:
            return f"the driver chain ended at {beat['at']} with work still active"
        if not ask_scheduler:
            return None
        try:
            ex = executor or make_executor(options["executor"], _config())
            st = ex.query([job]).get(job)
        except (ExecutorError, ReflowError) as exc:
            log.info("cannot check driver job %s: %s", job, exc)
            return None
        if st is not None and JobState(st.state).terminal and age > 10:
            return f"driver job {job} ended {st.raw_state} without submitting a successor"
        return None
    if beat.get("hostname") == socket.gethostname():
        pid = int(beat.get("pid") or 0)
        if process_alive(pid, cmdline_marks=(b"reflow", b"python")):
            return None
        return f"driver process {pid} on {beat.get('hostname')} is gone"
    if age > STALE_AFTER_S:
        return f"no driver heartbeat since {beat['at']} (host {beat.get('hostname')})"
    return None


def _config() -> Config:
    from reflow.config import load_config

    return load_config()


# ------------------------------------------------------------------------------ foreground
def run_foreground(ctx: DriverContext, first: float, longest: float, *,
                   host: str = FOREGROUND) -> RunState:
    """Step until the run is terminal, pausing longer while nothing changes."""
    interval = first
    while True:
        report = step(ctx)
        if not report.busy:
            write_heartbeat(ctx.state_dir, host)
        if report.finished is not None:
            return report.finished
        interval = first if report.changed else min(interval * 1.5, longest)
        time.sleep(interval)


# ------------------------------------------------------------------------------ detached
def run_detached(ctx: DriverContext, first: float, longest: float) -> RunState:
    """``run_foreground`` for the background driver, which is all that carries the run on:
    a store that stops answering (a SQLite file locked by a long transaction, a PostgreSQL
    restart) is waited out instead of leaving the run stalled until someone resumes it."""
    failures = 0
    while True:
        began = time.monotonic()
        try:
            return run_foreground(ctx, first, longest, host=DETACHED)
        except StoreError as exc:
            failures = 1 if time.monotonic() - began > _OUTAGE_GAP_S else failures + 1
            if failures > _OUTAGE_RETRIES:
                raise
            log.warning("run %s: %s; trying again in %.0f s (%d/%d)", ctx.run_id, exc,
                        longest, failures, _OUTAGE_RETRIES)
            time.sleep(longest)


def spawn_detached(ctx: DriverContext, python: str, env_extra: dict[str, str]) -> int:
    """Start the background driver process for a run; returns its pid."""
    logs = ctx.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "REFLOW_STORE": store_location(ctx.store), **env_extra}
    with open(logs / "driver.log", "ab") as out:
        proc = subprocess.Popen(
            [python, "-m", "reflow.engine.driver_host", DETACHED, ctx.run_id],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
            start_new_session=True, cwd=ctx.run_dir,
        )
    write_heartbeat_for(ctx.state_dir, proc.pid)
    return proc.pid


def write_heartbeat_for(state_dir: Path, pid: int) -> None:
    """Record a just-spawned detached driver, so it counts as alive before its first step."""
    results.write_atomic(_heartbeat_path(state_dir), {
        "host": DETACHED, "pid": pid, "hostname": socket.gethostname(), "job_id": None,
        "at": datetime.now(UTC).isoformat(),
    })


# ------------------------------------------------------------------------------ chained
def submit_driver_job(ctx: DriverContext, config: Config, after: list[str]) -> str:
    """Submit the next driver step as a small job that starts once the first of ``after`` has
    ended (all of them where the scheduler cannot say "any": PBS, Grid Engine, Flux).

    Not after all of them: a two-hour task on one branch would hold back another branch's
    next tasks and the retries of its failures, and keep status and retry blind meanwhile.
    """
    d = config.dispatch
    logs = ctx.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    job = JobSpec(
        name=f"{ctx.workflow}-driver",
        command=(ctx.python, "-m", "reflow.engine.driver_host", CHAINED, ctx.run_id),
        resources=JobResources.from_options(
            cpus=d.cpus, mem=d.mem, time=d.time, submit_options=d.submit_options,
            partition=d.partition or d.queue, account=d.account),
        workdir=ctx.run_dir, stdout=logs / f"driver-{stamp}.log",
        stderr=logs / f"driver-{stamp}.log", after_any=tuple(after), after_first=True,
        env={STORE_FILE_ENV: str(write_store_file(ctx))},
    )
    try:
        job_id = ctx.executor.submit(job)
    except ExecutorError as exc:
        if not after:
            raise
        # e.g. a dependency on a job the scheduler has already forgotten: go without it
        log.warning("run %s: driver job with dependencies refused (%s); submitting without",
                    ctx.run_id, exc)
        job_id = ctx.executor.submit(JobSpec(**{**job.__dict__, "after_any": ()}))
    write_heartbeat(ctx.state_dir, CHAINED, job_id)
    return job_id


def chain_step(ctx: DriverContext, config: Config) -> RunState | None:
    """One chained step: step, then hand over to a successor job unless the run is over."""
    for attempt in range(_MAX_CHAIN_RETRIES):
        report = step(ctx)
        if report.busy:
            log.info("run %s: another driver holds the lease; this one ends", ctx.run_id)
            return None
        if report.finished is not None:
            write_heartbeat(ctx.state_dir, CHAINED, None)
            return report.finished
        waits = list(dict.fromkeys([*report.active_jobs, *report.submitted_jobs]))
        if waits or attempt == _MAX_CHAIN_RETRIES - 1:
            submit_driver_job(ctx, config, waits)
            return None
        time.sleep(min(2.0 ** attempt, 10.0))  # nothing in flight: a refused submit, retry
    return None


def start_host(ctx: DriverContext, host: str, config: Config) -> None:
    """Make sure a driver carries the run on in ``host`` mode (after submit, retry, resume)."""
    if host == DETACHED:
        # Always a new process: one that is alive may be just about to exit after seeing
        # the run end; a surplus driver costs nothing, the lease serialises their steps.
        spawn_detached(ctx, config.executor.python, {})
    elif host == CHAINED:
        chain_step(ctx, config)
    else:
        first, longest = poll_bounds(ctx.executor, config)
        run_foreground(ctx, first, longest)


# ------------------------------------------------------------------------------ entry
def serve_run(run_id: str, what: str, work: Callable[[Store], None]) -> int:
    """The life of a background process on one run: the store it was given (a store file or
    REFLOW_STORE), the work, and a user error logged as one line (its log is all anyone will
    see)."""
    from reflow.store import Store

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = Store.open(_store_from_environment(), create=False)
    try:
        work(store)
    except ReflowError as exc:
        log.error("run %s: %s stopped: %s", run_id, what, exc)
        return 1
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in (DETACHED, CHAINED):
        sys.stderr.write("usage: python -m reflow.engine.driver_host {detached|chained} RUN_ID\n")
        return 2
    mode, run_id = args

    def drive(store: Store) -> None:
        config = _config()
        ctx = load_context(store, run_id, config=config)
        if mode == DETACHED:
            first, longest = poll_bounds(ctx.executor, config)
            state = run_detached(ctx, first, longest)
            log.info("run %s ended %s", run_id, state)
        else:
            state_or_none = chain_step(ctx, config)
            log.info("run %s: step done (%s)", run_id, state_or_none or "continuing")

    return serve_run(run_id, "driver", drive)


if __name__ == "__main__":
    sys.exit(main())
