"""submit(executor="local"): detached driver, long-lived workers, failures, cancel, resume."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from driver_helpers import ctl, pid_alive, states, wait_for, worker_pid, write_pipeline

from reflow import ReflowError, Run, RunStalledError
from reflow.engine.dispatch import resume_run
from reflow.engine.driver_host import read_heartbeat, stalled_reason
from reflow.executors.local import LocalExecutor
from reflow.store import Store


def test_detached_run_completes_and_resubmit_is_fully_cached(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    store = str(local_env / "m.db")
    run = wf.submit(local_env / "r1", store=store, executor="local", n=20)
    assert run.wait(60) == "SUCCESS"
    assert states(run, "work") == ["SUCCESS"] * 20
    (total,) = run.store.latest_instances(run.run_id, "total")
    assert total.output == "1900" and total.job_id
    assert (local_env / "r1" / "logs" / "driver.log").exists()
    # the worker's started -> result history is recorded
    hist = [(t["from_state"], t["to_state"]) for t in run.transitions()
            if t["task_name"] == "work" and t["array_index"] == 3]
    assert hist == [(None, "PENDING"), ("PENDING", "SUBMITTED"), ("SUBMITTED", "RUNNING"),
                    ("RUNNING", "SUCCESS")]
    # dated when the worker started and finished, not when the driver read its files
    (w3,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 3]
    at = {(t.from_state, t.to_state): t.at for t in run.store.transitions(run.run_id)
          if t.instance_id == w3.id}
    assert at[("SUBMITTED", "RUNNING")] == w3.started_at
    assert at[("RUNNING", "SUCCESS")] == w3.finished_at
    jobs_before = set(os.listdir(local_env / "cache" / "reflow" / "local-jobs"))
    again = wf.submit(local_env / "r2", store=store, executor="local", n=20)
    assert again.wait(60) == "SUCCESS"
    rows = again.store.latest_instances(again.run_id)
    assert all(r.cached and r.job_id is None for r in rows)
    assert set(os.listdir(local_env / "cache" / "reflow" / "local-jobs")) == jobs_before


def test_foreground_wait_uses_real_array_indices_and_max_workers(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run = wf.submit(local_env / "r", store=str(local_env / "m.db"),
                    executor=LocalExecutor(max_workers=2), wait=True, n=6)
    assert run.state == "SUCCESS"
    rows = run.store.latest_instances(run.run_id, "work")
    assert [r.job_id.rsplit("_", 1)[1] for r in rows if r.job_id] == [str(i) for i in range(6)]
    assert all(Path(r.stdout_path or "").name == f"work-{r.array_index}.out" for r in rows)
    # long-lived workers: at most max_workers processes served the six elements
    pids = {(local_env / "r" / "ctl" / f"pid-{i}").read_text() for i in range(6)}
    assert 1 <= len(pids) <= 2


def test_worker_killed_ends_failed_with_its_state_and_retry_completes(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    ctl(run_dir, "hang-1")
    run = wf.submit(run_dir, store=str(local_env / "m.db"), executor="local", n=3)
    pid = worker_pid(run_dir, 1, "element 1 to start")
    os.kill(pid, signal.SIGKILL)
    assert run.wait(60) == "FAILED"
    (row,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 1]
    assert row.state == "FAILED" and row.scheduler_state == "KILLED" and row.exit_code == 137
    assert "without writing a result" in (row.error_text or "")
    assert states(run, "total") == ["CANCELLED"]  # skipped: its upstream failed
    (run_dir / "ctl" / "hang-1").unlink()
    assert run.retry() == 1
    assert run.wait(60) == "SUCCESS"
    assert [r.attempt for r in run.store.latest_instances(run.run_id, "work")] == [1, 2, 1]


def test_cancel_stops_running_workers_and_records_cancelled(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    for i in range(3):
        ctl(run_dir, f"hang-{i}")
    run = wf.submit(run_dir, store=str(local_env / "m.db"),
                    executor=LocalExecutor(max_workers=1), n=3)
    pid = worker_pid(run_dir, 0, "element 0")
    assert run.cancel() == 3
    assert run.state == "CANCELLED"
    assert states(run, "work") == ["CANCELLED"] * 3
    (total,) = run.store.latest_instances(run.run_id, "total")  # never planned, yet shown
    assert (total.state, total.reason, total.error_text) == (
        "CANCELLED", "skipped", "cancelled by user")
    wait_for(lambda: not pid_alive(pid), what="the worker to be terminated")
    assert not (run_dir / "ctl" / "pid-1").exists()  # the queued elements never started
    assert run.retry() == 3  # a cancelled run can be retried: hangs removed first
    for i in range(3):
        (run_dir / "ctl" / f"hang-{i}").unlink()
    assert run.wait(60) == "SUCCESS"


def test_a_cancel_landing_while_retry_marks_attempts_leaves_nothing_stranded(
    local_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel found nothing active (the new attempts did not exist yet); they stayed
    RETRYING under a CANCELLED run that no driver, retry or resume would ever move on."""
    wf = write_pipeline(local_env)
    run_dir, store = local_env / "r", str(local_env / "m.db")
    ctl(run_dir, "fail-1")
    run = wf.submit(run_dir, store=store, executor="local", n=3)
    assert run.wait(60) == "FAILED"
    (run_dir / "ctl" / "fail-1").unlink()
    mark = run.store.new_attempts

    def cancel_first(*args: object, **kwargs: object) -> list[int]:
        assert Run.load(run.run_id, store=store).cancel() == 0  # nothing active yet
        return mark(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run.store, "new_attempts", cancel_first)
    with pytest.raises(ReflowError, match="was cancelled while the retry marked"):
        run.retry()
    monkeypatch.undo()
    assert run.state == "CANCELLED"
    assert run.store.status_counts(run.run_id) == {
        "produce": {"SUCCESS": 1}, "work": {"SUCCESS": 2, "CANCELLED": 1},
        "total": {"CANCELLED": 1}}
    assert run.retry() == 1  # the way on, as after any cancel
    assert run.wait(60) == "SUCCESS"


def test_cancelling_one_task_ends_the_run_cancelled_not_failed(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    ctl(run_dir, "hang-1")
    run = wf.submit(run_dir, store=str(local_env / "m.db"),
                    executor=LocalExecutor(max_workers=1), n=3)
    wait_for(lambda: (run_dir / "ctl" / "pid-1").exists() and states(run, "work")[0] == "SUCCESS",
             what="element 0 recorded done and element 1 started")
    assert run.cancel("work") == 2  # element 1 running, element 2 queued
    assert run.wait(60) == "CANCELLED"  # nothing failed: the user stopped it
    assert states(run, "work") == ["SUCCESS", "CANCELLED", "CANCELLED"]
    assert states(run, "total") == ["CANCELLED"]  # skipped for the cancelled task
    assert run.status(as_dict=True)["failed_instances"] == []


def test_two_runs_sharing_a_run_dir_never_take_each_others_results(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run_dir, store = local_env / "shared", str(local_env / "m.db")
    ctl(run_dir, "hang-2")
    first = wf.submit(run_dir, store=store, executor="local", n=3)
    wait_for(lambda: states(first, "work")[:2] == ["SUCCESS", "SUCCESS"]
             and (run_dir / "ctl" / "pid-2").exists(), what="the first run's element 2")
    (run_dir / "ctl" / "pid-2").unlink()
    second = wf.submit(run_dir, store=store, executor="local", n=3)
    wait_for(lambda: (run_dir / "ctl" / "pid-2").exists(), what="the second run's element 2")
    (run_dir / "ctl" / "hang-2").unlink()  # both element 2s report at about the same time
    assert first.wait(60) == "SUCCESS" and second.wait(60) == "SUCCESS"
    assert [r.output for r in first.store.latest_instances(first.run_id, "total")] == ["30"]
    assert [r.output for r in second.store.latest_instances(second.run_id, "total")] == ["30"]


def test_a_worker_dies_with_its_killed_supervisor(local_env: Path) -> None:
    """Linux: a supervisor killed with -9 takes its workers with it, as a scheduler ends a
    whole job; an orphan would run on beside the attempt a retry starts."""
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    ctl(run_dir, "hang-0")
    run = wf.submit(run_dir, store=str(local_env / "m.db"), executor="local", n=1)
    pid = worker_pid(run_dir, 0, "element 0")
    stat = Path(f"/proc/{pid}/stat").read_text()
    supervisor = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), timeout=10, what="the worker to die with it")
    assert run.wait(60) == "FAILED"
    assert states(run, "work") == ["FAILED"]


def test_a_worker_interrupted_by_sigterm_fails_its_element_only(local_env: Path) -> None:
    """A stream worker exits after an interrupted element; the next one needs a new worker,
    not the pipe of the one that is gone (it was recorded lost without ever running)."""
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    ctl(run_dir, "hang-0")
    run = wf.submit(run_dir, store=str(local_env / "m.db"),
                    executor=LocalExecutor(max_workers=1), n=3)
    pid = worker_pid(run_dir, 0, "element 0")
    os.kill(pid, signal.SIGTERM)
    assert run.wait(60) == "FAILED"
    assert states(run, "work") == ["FAILED", "SUCCESS", "SUCCESS"]
    (first,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 0]
    assert "TaskInterrupted" in (first.error_text or "")


SWALLOWING_PIPELINE = """
import os
import time
from pathlib import Path

from reflow import RunDir, Workflow

wf = Workflow("swallow")


@wf.job()
def stubborn(run_dir: RunDir = RunDir()) -> int:
    (Path(run_dir) / "pid").write_text(str(os.getpid()))
    for _ in range(600):  # a minute, unless killed
        try:
            time.sleep(0.1)
        except Exception:  # swallows TaskInterrupted too
            pass
    return 1
"""


def submit_and_wait_for_pid(local_env: Path, name: str, text: str) -> tuple[Run, int]:
    """Submit the one-task pipeline ``text`` (workflow ``name``); its task writes its pid to
    ``<run_dir>/pid`` first thing, which is returned once it is there."""
    from reflow.engine.entrypoints import load_workflow

    pipeline = local_env / f"{name}.py"
    pipeline.write_text(text)
    wf = load_workflow(str(pipeline), name)
    run_dir = local_env / "r"
    run = wf.submit(run_dir, store=str(local_env / "m.db"), executor="local")
    pid = int(wait_for(lambda: (run_dir / "pid").exists() and (run_dir / "pid").read_text(),
                       what="the task to start"))
    return run, pid


def test_cancel_kills_a_task_that_swallows_the_interrupt(
    local_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reflow.executors.local import KILL_AFTER_ENV

    monkeypatch.setenv(KILL_AFTER_ENV, "0.5")  # the supervisor inherits it
    run, pid = submit_and_wait_for_pid(local_env, "swallow", SWALLOWING_PIPELINE)
    assert run.cancel() == 1
    wait_for(lambda: not pid_alive(pid), timeout=20, what="SIGKILL after the grace period")
    assert states(run, "stubborn") == ["CANCELLED"]


RETURNING_PIPELINE = """
import os
import time
from pathlib import Path

from reflow import RunDir, Workflow

wf = Workflow("returning")


@wf.job()
def hasty(run_dir: RunDir = RunDir()) -> str:
    (Path(run_dir) / "pid").write_text(str(os.getpid()))
    try:
        time.sleep(60)
    except Exception:  # swallows TaskInterrupted and returns what it has
        return "partial"
    return "complete"
"""


def test_a_task_that_returns_after_swallowing_the_interrupt_still_fails(
    local_env: Path,
) -> None:
    """Its value was cut short: recorded SUCCESS, it would be a cache hit for ever."""
    run, pid = submit_and_wait_for_pid(local_env, "returning", RETURNING_PIPELINE)
    os.kill(pid, signal.SIGTERM)
    assert run.wait(60) == "FAILED"
    (row,) = run.store.latest_instances(run.run_id, "hasty")
    assert (row.state, row.output) == ("FAILED", None)
    assert "caught TaskInterrupted and went on" in (row.error_text or "")


def test_a_run_dir_that_cannot_be_written_to_is_refused_before_recording(
    local_env: Path,
) -> None:
    """It existed, so creating it succeeded; the run was recorded and then its driver could
    not log there: RUNNING for ever. sysfs refuses new files even to root."""
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs on this machine")
    wf = write_pipeline(local_env)
    with pytest.raises(ReflowError, match="run dir /sys/kernel cannot be written to"):
        wf.submit("/sys/kernel", store=str(local_env / "m.db"), executor="local")
    with Store.open(str(local_env / "m.db")) as store:
        assert store.list_runs() == []


def test_stalled_run_is_detected_and_resume_finishes_it(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    run_dir = local_env / "r"
    ctl(run_dir, "hang-0")
    run = wf.submit(run_dir, store=str(local_env / "m.db"), executor="local", n=2)
    wait_for(lambda: (run_dir / "ctl" / "pid-0").exists(), what="element 0")
    beat = read_heartbeat(run_dir, run.run_id)
    assert beat is not None and beat["host"] == "detached"
    assert stalled_reason(run.store, run.run_id) is None
    assert resume_run(Run.load(run.run_id, store=run.store)) is False  # its driver is alive
    again = read_heartbeat(run_dir, run.run_id)
    assert again is not None and (again == beat or again["pid"] == beat["pid"])
    os.kill(int(beat["pid"]), signal.SIGKILL)
    reason = wait_for(lambda: stalled_reason(run.store, run.run_id), what="stall detection")
    assert "is gone" in reason
    with pytest.raises(RunStalledError, match=f"`reflow resume {run.run_id} --store-path "):
        run.wait(60)  # raises at its first stall check, not after the timeout
    (run_dir / "ctl" / "hang-0").unlink()
    assert resume_run(Run.load(run.run_id, store=run.store)) is True
    assert run.wait(60) == "SUCCESS"
    assert json.loads(run.record().options)["executor"] == "local"


STALE_PIPELINE = '''
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("stale_driver")


@wf.job(verify=lambda v: v == int(Path(__file__).with_name("source").read_text()))
def make() -> int:
    return int(Path(__file__).with_name("source").read_text())


@wf.job()
def consume(x: Annotated[int, Result(step="make")]) -> int:
    if not Path(__file__).with_name("flag").exists():
        raise RuntimeError("not yet")
    return x * 100
'''


def test_driver_retry_after_a_failed_upstream_check_uses_the_recomputed_output(
    local_env: Path,
) -> None:
    from reflow.engine.entrypoints import load_workflow

    pipeline = local_env / "stale_pipeline.py"
    pipeline.write_text(STALE_PIPELINE)
    (local_env / "source").write_text("1")
    wf = load_workflow(str(pipeline), "stale_driver")
    run = wf.submit(local_env / "r", store=str(local_env / "m.db"), executor="local", wait=True)
    assert states(run, "consume") == ["FAILED"]
    (local_env / "source").write_text("2")
    (local_env / "flag").write_text("go")
    assert run.retry() == 2
    assert run.wait(60) == "SUCCESS"
    (make,) = run.store.latest_instances(run.run_id, "make")
    (consume,) = run.store.latest_instances(run.run_id, "consume")
    assert (make.output, make.reason) == ("2", "verify-failed:callable")
    assert (consume.input, consume.output) == ('{"x":2}', "200")
    assert make.output_hash in consume.preimage


REPORT_PIPELINE = '''
from pathlib import Path
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("report_driver")
HERE = Path(__file__).parent


@wf.job()
def b() -> int:
    if (HERE / "fail").exists():
        raise RuntimeError("b told to fail")
    return 1


@wf.job()
def c(x: Annotated[int, Result(step="b")]) -> Path:
    path = HERE / "report.json"
    path.write_text(str(x))
    return path
'''


def test_driver_retry_verifies_the_cache_hits_it_takes(local_env: Path) -> None:
    """The hit a retried run's driver finds for c is checked (SPEC §3, verify by default on
    retry): the first run's report was deleted, so c is recomputed, not reused."""
    from reflow.engine.entrypoints import load_workflow

    pipeline = local_env / "report_pipeline.py"
    pipeline.write_text(REPORT_PIPELINE)
    wf = load_workflow(str(pipeline), "report_driver")
    store = str(local_env / "m.db")
    wf.submit(local_env / "r1", store=store, executor="local", wait=True)
    (local_env / "fail").touch()
    run = wf.submit(local_env / "r2", store=store, executor="local", wait=True,
                    force_tasks="b")
    assert states(run, "c") == ["CANCELLED"]
    (local_env / "fail").unlink()
    (local_env / "report.json").unlink()
    assert run.retry() == 1
    assert run.wait(60) == "SUCCESS"
    (c,) = run.store.latest_instances(run.run_id, "c")
    assert (c.cached, c.reason) == (False, "verify-failed:missing")
    assert (local_env / "report.json").read_text() == "1"


UNWIRED_PIPELINE = '''
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("unwired_driver")


@wf.job()
def a() -> list[int]:
    return 5


@wf.array_job()
def m(x: Annotated[int, Result(step="a")]) -> int:
    return x
'''


def test_driver_retry_of_a_task_whose_inputs_could_not_be_wired(local_env: Path) -> None:
    """The task's FAILED marker is planned afresh: before, the retry marked the marker itself
    for a new attempt and the driver died submitting an array job without indices."""
    from reflow.engine.entrypoints import load_workflow

    pipeline = local_env / "unwired_pipeline.py"
    pipeline.write_text(UNWIRED_PIPELINE)
    wf = load_workflow(str(pipeline), "unwired_driver")
    run = wf.submit(local_env / "r", store=str(local_env / "m.db"), executor="local", wait=True)
    assert states(run, "m") == ["FAILED"]
    assert run.retry() == 1
    assert run.wait(60) == "FAILED"  # not stalled: the driver ended the run
    (m,) = run.store.latest_instances(run.run_id, "m")
    assert m.attempt == 2 and "fans out over it" in (m.error_text or "")


ELEMENT = """
import os, sys, time
from pathlib import Path
out = Path(sys.argv[1]) / f"{sys.argv[2]}-{os.environ['REFLOW_LOCAL_INDEX']}"
start = time.monotonic()
time.sleep(0.3)
out.write_text(f"{start} {time.monotonic()}")
"""


def test_max_workers_bounds_the_machine_not_each_job(local_env: Path) -> None:
    """Two array jobs submitted at once by an executor with max_workers=1 never overlap:
    the supervisors share the machine's slots (without them both would run at once)."""
    from reflow.executors.base import JobResources, JobSpec

    executor = LocalExecutor(max_workers=1)
    marks = local_env / "marks"
    marks.mkdir()
    ids = {}
    for name in ("a", "b"):
        ids[name] = executor.submit(JobSpec(
            name=name, command=(sys.executable, "-c", ELEMENT, str(marks), name),
            resources=JobResources.from_options(), workdir=local_env,
            stdout=local_env / f"{name}-{{index}}.out", stderr=local_env / f"{name}-{{index}}.err",
            array_indices=(0, 1)))
    elements = [executor.array_element_id(ids[n], i) for n in ids for i in (0, 1)]
    wait_for(lambda: all(s.state == "COMPLETED" for s in executor.query(elements).values()),
             timeout=60, what="four elements to complete")
    spans = sorted(tuple(map(float, p.read_text().split())) for p in marks.iterdir())
    assert len(spans) == 4
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


HOLD = """
import os, sys, time
from pathlib import Path
gate = Path(sys.argv[1])
(gate.parent / f"started-{os.environ['REFLOW_LOCAL_INDEX']}").touch()
while gate.exists():
    time.sleep(0.02)
"""


def test_a_job_cancelled_while_waiting_for_a_slot_ends_at_once(local_env: Path) -> None:
    from reflow.executors.base import JobResources, JobSpec

    executor = LocalExecutor(max_workers=1)
    gate = local_env / "gate"
    gate.touch()

    def job(name: str) -> str:
        return executor.submit(JobSpec(
            name=name, command=(sys.executable, "-c", HOLD, str(gate)),
            resources=JobResources.from_options(), workdir=local_env,
            stdout=local_env / f"{name}-{{index}}.out", stderr=local_env / f"{name}-{{index}}.err",
            array_indices=(0,)))

    holder = job("holder")
    wait_for(lambda: (local_env / "started-0").exists(), what="the holder to start")
    waiting = job("waiting")
    element = executor.array_element_id(waiting, 0)
    assert executor.query([element])[element].state == "PENDING"
    executor.cancel([element])
    wait_for(lambda: executor.query([element])[element].state == "CANCELLED", timeout=10,
             what="the queued element to be cancelled while the slot is still held")
    held = executor.array_element_id(holder, 0)
    assert executor.query([held])[held].state == "RUNNING"
    gate.unlink()
    wait_for(lambda: executor.query([held])[held].state == "COMPLETED", what="the holder")


def test_a_run_whose_driver_cannot_start_is_not_left_running(
    local_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reflow.engine import dispatch
    from reflow.errors import ReflowError

    def broken(*args: object, **kwargs: object) -> None:
        raise ReflowError("importing pipeline p failed at p.py:1: ImportError: nope")

    monkeypatch.setattr(dispatch, "load_context", broken)
    wf = write_pipeline(local_env)
    recorded: list[str] = []
    with pytest.raises(ReflowError, match="ImportError: nope"):
        wf.submit(local_env / "r", store=str(local_env / "m.db"), executor="local",
                  on_recorded=recorded.append)
    assert Run.load(recorded[0], store=str(local_env / "m.db")).state == "FAILED"


@pytest.mark.parametrize("wait", [False, True])
def test_a_python_that_is_not_there_is_refused_before_a_run_is_recorded(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, wait: bool
) -> None:
    """It left a RUNNING run with no driver (detached) or a NODE_FAIL naming nothing (--wait)."""
    from reflow import Store
    from reflow.errors import ConfigError

    monkeypatch.setenv("REFLOW_PYTHON", str(local_env / "no-such-python"))
    wf = write_pipeline(local_env)
    with pytest.raises(ConfigError, match=r"\[executor\] python \(REFLOW_PYTHON\) is .*no-such"):
        wf.submit(local_env / "r", store=str(local_env / "m.db"), executor="local", wait=wait)
    with Store.open(str(local_env / "m.db")) as store:
        assert store.list_runs() == []


ODD_NAMES_PIPELINE = """
import os
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("odd_names")


@wf.job()
def listing() -> list[str]:
    return [os.fsdecode(b"data_\\xff.nc")]


@wf.job()
def reader(names: Annotated[list[str], Result(step="listing")]) -> int:
    raise ValueError(f"cannot read {names[0]}")
"""


def test_worker_reports_with_undecodable_file_names_are_recorded(local_env: Path) -> None:
    """A lone surrogate (from ``os.fsdecode``) in an output or a traceback failed the
    driver's write on every step, so the run could never end."""
    from reflow.engine.entrypoints import load_workflow

    pipeline = local_env / "odd.py"
    pipeline.write_text(ODD_NAMES_PIPELINE)
    wf = load_workflow(str(pipeline), "odd_names")
    run = wf.submit(local_env / "r", store=str(local_env / "m.db"), executor="local")
    assert run.wait(60) == "FAILED"
    (listed,) = run.store.latest_instances(run.run_id, "listing")
    assert listed.state == "SUCCESS" and listed.output == '["data_\\udcff.nc"]'
    (failed,) = run.store.latest_instances(run.run_id, "reader")
    assert "cannot read data_\\udcff.nc" in (failed.error_text or "")
