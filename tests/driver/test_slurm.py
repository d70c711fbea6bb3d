"""The cluster path on the real test Slurm cluster: chained drivers, arrays, failures, cancel.

Each test keeps its store (SQLite) and run dir in tmp_path, which driver jobs and workers
reach directly (they run as the same user on this host).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from driver_helpers import ctl, states, wait_for, write_pipeline
from slurm_cluster import SlurmCluster

from reflow import Run
from reflow.engine.dispatch import resume_run
from reflow.engine.driver_host import read_heartbeat, stalled_reason

pytestmark = pytest.mark.slurm


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REFLOW_POLL_INTERVAL", "1")
    return tmp_path


def jobs_named(prefix: str) -> list[str]:
    """Every job (any state) whose name starts with ``prefix``, from the scheduler itself."""
    out = subprocess.run(["squeue", "-t", "all", "-h", "-o", "%i %j"], capture_output=True,
                         text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1].startswith(prefix)]


def test_fanout_with_throttle_completes_through_chained_drivers_then_resubmit_is_free(
        slurm_env: Path) -> None:
    wf = write_pipeline(slurm_env, parallelism=10)
    store = str(slurm_env / "m.db")
    run = wf.submit(slurm_env / "r1", store=store, executor="slurm", n=50)
    assert run.wait(240) == "SUCCESS"
    (total,) = run.store.latest_instances(run.run_id, "total")
    assert total.output == str(sum(x * 10 for x in range(50)))
    work = run.store.latest_instances(run.run_id, "work")
    assert len({r.job_id.split("_")[0] for r in work if r.job_id}) == 1  # one array submission
    drivers = jobs_named(f"{wf.name}-driver")
    assert len(drivers) >= 2
    tasks_before = jobs_named(f"{wf.name}-")
    again = wf.submit(slurm_env / "r2", store=store, executor="slurm", n=50)
    assert again.wait(60) == "SUCCESS"
    assert all(r.cached for r in again.store.latest_instances(again.run_id))
    new_jobs = set(jobs_named(f"{wf.name}-")) - set(tasks_before)
    assert not [j for j in new_jobs if j not in jobs_named(f"{wf.name}-driver")]


def test_killed_worker_ends_failed_with_slurm_state_and_retry_completes(
        slurm_env: Path) -> None:
    wf = write_pipeline(slurm_env)
    run_dir = slurm_env / "r"
    ctl(run_dir, "hang-1")
    run = wf.submit(run_dir, store=str(slurm_env / "m.db"), executor="slurm", n=3)
    pid_file = run_dir / "ctl" / "pid-1"
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 120, "element 1"))
    os.kill(pid, signal.SIGKILL)
    assert run.wait(120) == "FAILED"
    (row,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 1]
    assert row.state == "FAILED" and row.scheduler_state == "FAILED"
    assert row.exit_code is not None and row.exit_code != 0
    (run_dir / "ctl" / "hang-1").unlink()
    assert run.retry() == 1
    assert run.wait(120) == "SUCCESS"


@pytest.mark.parametrize("hog", ["hog", "childhog"])
def test_out_of_memory_succeeds_on_automatic_retry_with_escalated_memory(
        slurm_cluster: SlurmCluster, slurm_env: Path, hog: str) -> None:
    """The memory kill hits the worker itself, or (childhog) a program the task runs: then
    the worker writes FAILED itself and only Slurm's OUT_OF_MEMORY says why."""
    if not slurm_cluster.memory_enforced:
        pytest.skip("cluster does not enforce --mem (start it with SLURM_CI_MEMORY=cgroup)")
    wf = write_pipeline(slurm_env, mem="150M", retries=2, retry_on=("OUT_OF_MEMORY",),
                        escalate={"mem": 4.0})
    run_dir = slurm_env / "r"
    ctl(run_dir, f"{hog}-0", "300")
    run = wf.submit(run_dir, store=str(slurm_env / "m.db"), executor="slurm", n=1)
    assert run.wait(180) == "SUCCESS"
    rows = run.store.history(run.run_id, "work", 0)
    assert [(r.attempt, r.state, r.scheduler_state) for r in rows] == [
        (1, "FAILED", "OUT_OF_MEMORY"), (2, "SUCCESS", None)]
    second = rows[1].job_id or ""
    shown = subprocess.run(["scontrol", "show", "job", "-o", second], capture_output=True,
                           text=True, check=True).stdout
    assert "MinMemoryNode=600M" in shown or "mem=600M" in shown


def test_cancel_stops_queued_and_running_jobs(slurm_env: Path) -> None:
    wf = write_pipeline(slurm_env, parallelism=1)
    run_dir = slurm_env / "r"
    for i in range(3):
        ctl(run_dir, f"hang-{i}")
    run = wf.submit(run_dir, store=str(slurm_env / "m.db"), executor="slurm", n=3)
    wait_for(lambda: (run_dir / "ctl" / "pid-0").exists(), 120, "element 0 to run")
    assert run.cancel() == 3
    assert run.state == "CANCELLED" and states(run, "work") == ["CANCELLED"] * 3

    def gone() -> bool:
        out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True,
                             check=True).stdout
        return wf.name not in out
    wait_for(gone, 60, "the run's jobs to leave the queue")
    assert not (run_dir / "ctl" / "pid-2").exists()


def test_stalled_chain_is_detected_and_resume_finishes(slurm_env: Path) -> None:
    wf = write_pipeline(slurm_env)
    run_dir = slurm_env / "r"
    ctl(run_dir, "hang-0")
    run = wf.submit(run_dir, store=str(slurm_env / "m.db"), executor="slurm", n=1)
    wait_for(lambda: (run_dir / "ctl" / "pid-0").exists(), 120, "element 0 to run")
    beat = wait_for(lambda: (b := read_heartbeat(run_dir, run.run_id)) and b.get("job_id") and b,
                    60, "a queued successor driver job")
    subprocess.run(["scancel", str(beat["job_id"])], check=True)
    reason = wait_for(lambda: stalled_reason(run.store, run.run_id), 60, "stall detection")
    assert str(beat["job_id"]) in reason
    (run_dir / "ctl" / "hang-0").unlink()
    resume_run(Run.load(run.run_id, store=run.store))
    assert run.wait(120) == "SUCCESS"


BRANCHES = '''
import time
from pathlib import Path
from typing import Annotated

from reflow import Result, RunDir, Workflow

wf = Workflow("{name}")


@wf.job(mem="100M")
def slow(run_dir: RunDir = RunDir()) -> int:
    while not (Path(run_dir) / "release").exists():  # held until the test has looked
        time.sleep(0.2)
    return 1


@wf.job(mem="100M")
def fast() -> int:
    return 2


@wf.job(mem="100M")
def after_fast(x: Annotated[int, Result(step="fast")]) -> int:
    return x + 1
'''


def test_a_branch_goes_on_while_another_branch_still_runs(slurm_env: Path) -> None:
    """The next chained driver starts when the first job in flight ends, not the last."""
    from reflow.engine.entrypoints import load_workflow

    name = f"b{os.getpid()}"
    script = slurm_env / f"{name}.py"
    script.write_text(BRANCHES.replace("{name}", name))
    wf = load_workflow(str(script), name)
    run = wf.submit(slurm_env / "r", store=str(slurm_env / "m.db"), executor="slurm")
    try:
        wait_for(lambda: states(run, "after_fast") == ["SUCCESS"], 120,
                 "the fast branch to finish while the slow one runs")
        assert states(run, "slow") in (["SUBMITTED"], ["RUNNING"])
    finally:
        (slurm_env / "r" / "release").touch()
    assert run.wait(120) == "SUCCESS"
