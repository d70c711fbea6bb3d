"""Driver steps against a fake scheduler: polite polling, bad files, flaky commands, a lost
store, two drivers at once, and automatic retries with escalated resources."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driver_helpers import states, write_pipeline
from fake_executor import FakeExecutor

from reflow import Run, Store, Workflow
from reflow.core.hashing import output_digest
from reflow.engine.driver import UNKNOWN_GRACE, DriverContext, step
from reflow.engine.driver_host import load_context
from reflow.engine.results import results_dir
from reflow.errors import StoreError
from reflow.executors.base import JobSpec
from reflow.store import InstanceRecord


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLOW_POLL_INTERVAL", "0.001")


def start(wf: Workflow, tmp_path: Path, fake: FakeExecutor, store: Store | str | None = None,
          **params: int) -> tuple[Run, DriverContext]:
    """Record a run whose chain is driven by hand: the fake ignores driver jobs."""
    fake.run_jobs = False
    run = wf.submit(tmp_path / "r", store=store or str(tmp_path / "m.db"), executor=fake,
                    **params)
    fake.run_jobs = True
    return run, load_context(run.store, run.run_id, executor=fake)


def steps_until_done(ctx: DriverContext, limit: int = 20) -> str:
    for _ in range(limit):
        report = step(ctx)
        if report.finished is not None:
            return str(report.finished)
    raise AssertionError("run did not finish")


def test_scheduler_calls_do_not_grow_with_the_number_of_elements(tmp_path: Path) -> None:
    counts = []
    for n in (10, 1000):
        fake = FakeExecutor()
        wf = write_pipeline(tmp_path)
        run = wf.submit(tmp_path / f"r{n}", store=str(tmp_path / "m.db"), executor=fake,
                        wait=True, n=n)
        assert run.state == "SUCCESS"
        assert len(fake.task_jobs()) == 3  # produce, one array, total
        counts.append(dict(fake.calls))
    assert counts[0] == counts[1]
    assert counts[1]["query"] <= 6


@pytest.mark.parametrize("nested", [False, True], ids=["truncated", "nested-too-deep"])
def test_corrupted_result_file_is_reported_and_the_instance_fails_cleanly(
        tmp_path: Path, nested: bool) -> None:
    """Also a file nested too deeply for the JSON parser (a RecursionError, which crashed
    the driver on every step: the run could never end)."""
    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    fake.no_result[1] = ["COMPLETED"]  # element 1's job ends, leaving only a corrupt file
    step(ctx)  # produce ran; work submitted
    (row,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 1]
    bad = results_dir(ctx.state_dir) / f"{row.id}.result"
    bad.write_text("[" * 200_000 if nested
                   else f'{{"instance_id": {row.id}, "attempt": 1, "state": "SUCC')
    report = step(ctx)
    assert any("malformed" in p and str(bad) in p for p in report.problems)
    assert bad.with_name(bad.name + ".bad").exists() and not bad.exists()
    assert states(run, "work") == ["SUCCESS", "FAILED", "SUCCESS"]
    failed = run.store.instance(row.id)
    assert failed.scheduler_state == "COMPLETED" and (  # said so, not "wrote no result"
        f"its result file could not be read (kept as {bad}.bad)" in (failed.error_text or ""))
    assert steps_until_done(ctx) == "FAILED"


def test_a_result_file_changed_after_it_was_written_is_not_recorded(tmp_path: Path) -> None:
    """A well-formed file whose output no longer hashes to its output_hash (SPEC §3: the
    output hash is the hash of the encoded output) is set aside, not stored as it says."""
    run, ctx, row = element_left_to_its_file(tmp_path, "COMPLETED")
    path = results_dir(ctx.state_dir) / f"{row.id}.result"
    digest = output_digest("10", {})
    path.write_text(json.dumps({**GOOD_RESULT, "instance_id": row.id, "output": "12345",
                                "output_hash": digest}))
    report = step(ctx)
    assert any("does not match its output_hash" in p and str(path) in p for p in report.problems)
    assert states(run, "work") == ["SUCCESS", "FAILED", "SUCCESS"]
    assert not run.store.find_cached({row.identity})


def element_left_to_its_file(
        tmp_path: Path, ending: str, **options: object
) -> tuple[Run, DriverContext, InstanceRecord]:
    """A 3-element run submitted, whose element 1 ends ``ending`` without writing a result:
    what the driver records for it is whatever file the test writes."""
    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path, **options), tmp_path, fake, n=3)
    fake.no_result[1] = [ending]
    step(ctx)
    (row,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 1]
    return run, ctx, row


GOOD_RESULT = {"attempt": 1, "state": "SUCCESS", "output": "10", "output_hash": "a" * 64,
               "fingerprints": None, "error_text": None, "exit_code": 0,
               "finished_at": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("bad", [
    {"error_text": 123}, {"state": "FAILED", "error_text": 123}, {"fingerprints": {"x": 1}},
    {"fingerprints": "{not json"}, {"finished_at": "2026-01-01T00:00:00"},
    {"finished_at": 5}, {"exit_code": 2**40}, {"exit_code": "0"}, {"attempt": True},
    {"output": "{{not json"}, {"output_hash": "abc"}, {"output_hash": "A" * 64},
    {"output": None},
], ids=repr)
def test_a_result_file_with_a_wrong_field_is_set_aside_not_recorded(
        tmp_path: Path, bad: dict[str, object]) -> None:
    """Valid JSON with one wrong field would fail the driver's transaction, or (a bad output)
    every later step reading it and every run taking it as a cache hit (SPEC §9)."""
    run, ctx, row = element_left_to_its_file(tmp_path, "COMPLETED")
    path = results_dir(ctx.state_dir) / f"{row.id}.result"
    path.write_text(json.dumps({**GOOD_RESULT, "instance_id": row.id, **bad}))
    report = step(ctx)
    assert any("malformed" in p and str(path) in p for p in report.problems)
    assert states(run, "work") == ["SUCCESS", "FAILED", "SUCCESS"]
    assert steps_until_done(ctx) == "FAILED"
    assert not run.store.find_cached({row.identity})


def test_a_task_stopped_by_sigterm_is_recorded_with_the_schedulers_reason(
        tmp_path: Path) -> None:
    """A time limit reaches the task as SIGTERM; its result file waits for the scheduler's
    final state, so retry_on=("TIMEOUT",) can match it."""
    run, ctx, row = element_left_to_its_file(tmp_path, "TIMEOUT", retries=1,
                                             retry_on=("TIMEOUT",))
    path = results_dir(ctx.state_dir) / f"{row.id}.result"
    path.write_text(json.dumps({**GOOD_RESULT, "instance_id": row.id, "state": "FAILED",
                                "output": None, "output_hash": None, "exit_code": 143,
                                "error_text": "TaskInterrupted: terminated by SIGTERM",
                                "finished_at": datetime.now(UTC).isoformat()}))
    assert steps_until_done(ctx) == "SUCCESS"  # retried once, then it ran
    first, second = run.store.history(run.run_id, "work", 1)
    assert (first.state, first.scheduler_state, first.exit_code) == ("FAILED", "TIMEOUT", 143)
    assert "TaskInterrupted" in (first.error_text or "")
    assert (first.error_text or "").splitlines()[-1].startswith(  # the line status shows
        "the job ran out of its time limit (TIMEOUT); raise the task's time=")
    assert (second.attempt, second.state) == (2, "SUCCESS")


@pytest.mark.parametrize(("ending", "retry_on", "exit_code"), [
    ("OUT_OF_MEMORY", ("OUT_OF_MEMORY",), 1),  # a program the task ran was killed
    ("FAILED", ("FAILED",), 1),  # the task raised
    ("FAILED:EXIT", ("FAILED",), 1),  # LSF's word for it: recorded as the normalised state
])
def test_a_failure_its_worker_reported_waits_for_the_schedulers_state(
        tmp_path: Path, ending: str, retry_on: tuple[str], exit_code: int) -> None:
    """Any FAILED result file waits for how the scheduler says the job ended, so retry_on
    matches a memory kill of a child process (the worker itself wrote FAILED, exit 1)."""
    run, ctx, row = element_left_to_its_file(tmp_path, ending, retries=1, retry_on=retry_on)
    path = results_dir(ctx.state_dir) / f"{row.id}.result"
    path.write_text(json.dumps({**GOOD_RESULT, "instance_id": row.id, "state": "FAILED",
                                "output": None, "output_hash": None, "exit_code": exit_code,
                                "error_text": "CalledProcessError: died with SIGKILL",
                                "finished_at": datetime.now(UTC).isoformat()}))
    assert steps_until_done(ctx) == "SUCCESS"  # retried once, then it ran
    first, second = run.store.history(run.run_id, "work", 1)
    state = ending.partition(":")[0]
    assert (first.state, first.scheduler_state, first.exit_code) == ("FAILED", state, 1)
    assert (second.attempt, second.state) == (2, "SUCCESS")
    if ending == "OUT_OF_MEMORY":
        assert (first.error_text or "").splitlines()[-1].startswith(
            "the job ran out of its memory limit (OUT_OF_MEMORY); raise the task's mem=")


def test_a_failure_waits_for_the_scheduler_only_so_long(tmp_path: Path) -> None:
    """A scheduler that never reports the job ended (its status query failing, say) must not
    hold a failure back for ever: a FAILED file older than UNKNOWN_GRACE is recorded as is."""
    run, ctx, row = element_left_to_its_file(tmp_path, "RUNNING")
    path = results_dir(ctx.state_dir) / f"{row.id}.result"
    old = (datetime.now(UTC) - UNKNOWN_GRACE - timedelta(seconds=1)).isoformat()
    path.write_text(json.dumps({**GOOD_RESULT, "instance_id": row.id, "state": "FAILED",
                                "output": None, "output_hash": None, "exit_code": 1,
                                "error_text": "RuntimeError: boom", "finished_at": old}))
    step(ctx)
    (failed,) = [r for r in run.store.latest_instances(run.run_id, "work")
                 if r.array_index == 1]
    assert (failed.state, failed.scheduler_state) == ("FAILED", None)


def test_status_counts_worker_reports_the_driver_has_not_recorded_yet(
        tmp_path: Path) -> None:
    """A chained driver runs again only when its work has ended: meanwhile the store says
    SUBMITTED, and status says how far the workers got from their files in the run dir."""
    from reflow.status_report import status_document, status_text

    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    step(ctx)  # produce runs; work's elements are submitted
    fake.run_jobs = False
    step(ctx)
    rows = run.store.latest_instances(run.run_id, "work")
    assert [r.state for r in rows] == ["SUBMITTED"] * 3
    directory = results_dir(ctx.state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for r in rows[:2]:  # 0 finished, 1 still running, 2 not started
        (directory / f"{r.id}.started").write_text("{}")
    (directory / f"{rows[0].id}.result").write_text("{}")
    text = status_text(run.store, run.run_id)
    assert "Workers 1 finished and 1 started, not yet recorded" in text
    doc = status_document(run.store, run.run_id)
    assert doc["run"]["unrecorded"] == {"started": 1, "finished": 1}


def test_a_started_file_without_a_time_zone_is_set_aside(tmp_path: Path) -> None:
    _, ctx, row = element_left_to_its_file(tmp_path, "COMPLETED")
    path = results_dir(ctx.state_dir) / f"{row.id}.started"
    path.write_text(json.dumps({"instance_id": row.id, "attempt": 1,
                                "started_at": "2026-01-01T00:00:00"}))
    report = step(ctx)
    assert any("malformed" in p and "time zone" in p for p in report.problems)
    assert steps_until_done(ctx) == "FAILED"


def test_late_result_of_a_superseded_attempt_is_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=2)
    fake.no_result[0] = ["NODE_FAIL"]
    assert steps_until_done(ctx) == "FAILED"
    (old,) = [r for r in run.store.latest_instances(run.run_id, "work") if r.array_index == 0]
    monkeypatch.setattr("reflow.engine.dispatch.kick_driver", lambda run: None)
    assert run.retry("work") == 1  # this test drives the steps itself
    late = results_dir(ctx.state_dir) / f"{old.id}.result"
    late.write_text(f'{{"instance_id": {old.id}, "attempt": 1, "state": "SUCCESS", '
                    '"output": "99", "output_hash": "x", "exit_code": 0, '
                    '"finished_at": "2030-01-01T00:00:00+00:00"}')
    assert steps_until_done(ctx) == "SUCCESS"
    assert run.store.instance(old.id).state == "FAILED"  # the old attempt kept its outcome
    (total,) = run.store.latest_instances(run.run_id, "total")
    assert total.output == "10"


def test_scheduler_commands_failing_once_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=4)
    fake.fail_next = {"query"}
    report = step(ctx)
    assert any("status query failed" in p for p in report.problems)
    fake.fail_next = {"submit"}
    report = step(ctx)  # produce ingested; submitting the array fails once
    assert any("submitting task 'work' failed" in p for p in report.problems)
    assert states(run, "work") == ["PENDING"] * 4
    assert steps_until_done(ctx) == "SUCCESS"
    submitted = [t for t in run.transitions() if t["to_state"] == "SUBMITTED"]
    assert len(submitted) == 6 == len({t["instance_id"] for t in submitted})


def test_store_locked_mid_step_is_retried_then_a_clear_error(tmp_path: Path) -> None:
    fake = FakeExecutor()
    db = tmp_path / "m.db"
    store = Store.open(str(db), deadline=1.0)
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, store=store, n=3)
    step(ctx)

    def hold(seconds: float, ready: threading.Event) -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    ready = threading.Event()
    brief = threading.Thread(target=hold, args=(0.3, ready))
    brief.start()
    ready.wait()
    step(ctx)  # waits out a short lock
    brief.join()
    ready.clear()
    long = threading.Thread(target=hold, args=(2.5, ready))
    long.start()
    ready.wait()
    with pytest.raises(StoreError, match=r"locked for 1 s.*wait for the other reflow process"):
        step(ctx)
    long.join()
    assert steps_until_done(ctx) == "SUCCESS"
    assert len(run.store.latest_instances(run.run_id)) == 5
    assert all(r.attempt == 1 for r in run.store.latest_instances(run.run_id))


def test_two_drivers_on_one_run_submit_each_instance_once(tmp_path: Path) -> None:
    fake = FakeExecutor()
    run, _ = start(write_pipeline(tmp_path), tmp_path, fake, n=30)

    def drive() -> None:
        other = load_context(Store.open(str(tmp_path / "m.db")), run.run_id, executor=fake)
        for _ in range(200):  # the fake is only ever called under the run's lease
            report = step(other)
            if report.finished is not None or run.state.terminal:
                return

    threads = [threading.Thread(target=drive) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run.state == "SUCCESS"
    submitted = [t["instance_id"] for t in run.transitions() if t["to_state"] == "SUBMITTED"]
    assert len(submitted) == 32 == len(set(submitted))
    assert len(fake.task_jobs()) == 3


def test_automatic_retry_escalates_memory_within_the_cap(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    config = tmp_path / "config" / "reflow" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[executor.caps]\nmem = "3G"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    fake = FakeExecutor()
    wf = write_pipeline(tmp_path, mem="1G", retries=3, retry_on=("OUT_OF_MEMORY",),
                        escalate={"mem": 2.0})
    run, ctx = start(wf, tmp_path, fake, n=2)
    fake.no_result[1] = ["OUT_OF_MEMORY", "OUT_OF_MEMORY"]
    assert steps_until_done(ctx) == "SUCCESS"
    history = run.store.history(run.run_id, "work", 1)
    assert [(r.attempt, r.state, r.scheduler_state) for r in history] == [
        (1, "FAILED", "OUT_OF_MEMORY"), (2, "FAILED", "OUT_OF_MEMORY"), (3, "SUCCESS", None)]
    assert "without writing a result" in (history[0].error_text or "")
    assert "the job ran out of its memory limit (OUT_OF_MEMORY); raise the task's mem=" in (
        history[0].error_text or "")
    mems = [j.resources.mem for j in fake.task_jobs().values() if j.name.endswith("-work")]
    assert mems == ["1G", "2G", "3G"]  # 4G capped
    assert ctx.caps == {"mem": "3G"}


def test_site_submit_options_from_config_reach_every_task_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFLOW_SUBMIT_OPTIONS", "--reservation=maint --comment 'site wide'")
    fake = FakeExecutor()
    wf = write_pipeline(tmp_path, n=2)
    _, ctx = start(wf, tmp_path, fake)
    assert steps_until_done(ctx) == "SUCCESS"
    task_jobs = [j for j in fake.jobs.values() if not j.name.endswith("-driver")]
    assert task_jobs
    for job in task_jobs:
        assert job.resources.submit_options[:3] == ("--reservation=maint", "--comment",
                                                    "site wide")


def test_a_scheduler_without_its_client_tools_fails_the_instance_and_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PBS with no qstat/qsub on PATH (none is installed here): the flavour check must not
    strand the run; the first submission fails with the scheduler's message (SPEC §9)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    wf = write_pipeline(tmp_path)
    run = wf.submit(tmp_path / "r", store=str(tmp_path / "m.db"), executor="pbs", wait=True)
    assert run.state == "FAILED"
    (produce,) = run.store.latest_instances(run.run_id, "produce")
    assert produce.state == "FAILED" and "'qsub' was not found" in (produce.error_text or "")


def test_array_parallelism_bounds_the_task_across_submissions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With at most 4 elements per step and array_parallelism=2, a later step must not add
    another 2 while the first submission's elements are still in flight."""
    monkeypatch.setenv("REFLOW_MAX_SUBMIT_JOBS", "4")
    fake = FakeExecutor()
    _, ctx = start(write_pipeline(tmp_path, parallelism=2), tmp_path, fake, n=10)
    step(ctx)  # produce runs; work is planned and its first 4 elements submitted
    fake.run_jobs = False  # the scheduler keeps them queued or running
    step(ctx)
    work = [j for j in fake.task_jobs().values() if j.array_indices is not None]
    assert [(j.array_indices, j.array_parallelism) for j in work] == [((0, 1, 2, 3), 2)]
    fake.run_jobs = True
    assert steps_until_done(ctx, limit=40) == "SUCCESS"
    work = [j for j in fake.task_jobs().values() if j.array_indices is not None]
    assert all(j.array_parallelism is not None and j.array_parallelism <= 2 for j in work)
    assert sorted(i for j in work for i in j.array_indices or ()) == list(range(10))


TWO_ARRAYS = '''
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("two_arrays")


@wf.job()
def produce() -> list[int]:
    return list(range(6))


@wf.array_job(array_parallelism=1)
def slow(x: Annotated[int, Result(step="produce")]) -> int:
    return x


@wf.array_job()
def fast(x: Annotated[int, Result(step="produce")]) -> int:
    return x
'''


def test_a_throttled_task_does_not_use_up_the_steps_submissions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_submit_jobs counts what a step submits: slow's elements, held back by its
    array_parallelism, must not keep the independent fast task waiting until slow is done."""
    from reflow.engine.entrypoints import load_workflow

    monkeypatch.setenv("REFLOW_MAX_SUBMIT_JOBS", "2")
    (tmp_path / "two_arrays.py").write_text(TWO_ARRAYS)
    fake = FakeExecutor()
    _, ctx = start(load_workflow(str(tmp_path / "two_arrays.py"), "two_arrays"), tmp_path, fake)
    step(ctx)  # produce runs; slow's first 2 elements are submitted
    fake.run_jobs = False  # they stay queued or running
    step(ctx)
    submitted = {j.name: j.array_indices for j in fake.task_jobs().values()}
    assert submitted["two_arrays-fast"] == (0, 1)
    fake.run_jobs = True
    assert steps_until_done(ctx, limit=40) == "SUCCESS"


def test_split_arrays_share_their_throttle() -> None:
    from reflow.executors.scheduler import share_throttle

    assert share_throttle(5, 2) == [3, 2]
    assert share_throttle(2, 2) == [1, 1]
    assert share_throttle(1, 3) == [1, 1, 1]  # never 0: each part must be able to run
    assert share_throttle(None, 2) == [None, None]


def test_a_torn_ledger_line_does_not_hide_the_next_submission(tmp_path: Path) -> None:
    """A crash mid-append leaves a line without its newline; the next submission's record
    must start on a line of its own, or reconciliation never asks about its jobs."""
    from types import SimpleNamespace

    from reflow.engine.driver import _jobs_of, _record_submission

    ctx = SimpleNamespace(state_dir=tmp_path)
    (tmp_path / "jobs.jsonl").write_text('{"job": "1", "elem')
    _record_submission(ctx, "2", ["2_0", "2_1"])  # type: ignore[arg-type]
    assert _jobs_of(ctx, {"2_1"}) == ["2"]  # type: ignore[arg-type]
    (tmp_path / "jobs.jsonl").write_text('{"job": 3}\n[1]\n')  # valid JSON, wrong shape
    assert _jobs_of(ctx, {"2_1"}) == []  # type: ignore[arg-type]


def test_a_driver_job_gets_its_store_from_a_private_file_not_its_command_line(
    tmp_path: Path, pg_url: str
) -> None:
    """A job's environment travels on its command line and into the scheduler's accounting;
    a PostgreSQL URL can carry a password."""
    import stat

    from reflow.config import load_config
    from reflow.engine.driver_host import STORE_FILE_ENV, store_location, submit_driver_job

    fake = FakeExecutor()
    _, ctx = start(write_pipeline(tmp_path), tmp_path, fake, store=pg_url)
    job = fake.jobs[submit_driver_job(ctx, load_config(), [])]
    location = store_location(ctx.store)
    assert "://" in location
    assert all(location not in text for text in (*job.command, *job.env.values()))
    file = Path(job.env[STORE_FILE_ENV])
    assert file.read_text() == location
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_a_cancel_does_not_miss_an_instance_the_driver_moves_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver records a worker's start (SUBMITTED -> RUNNING) between the cancel reading
    the active rows and changing them: the instance is still active, so it is cancelled."""
    from reflow.engine.dispatch import close_active
    from reflow.store import StateChange

    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    step(ctx)  # produce ran; work submitted, its elements not started
    read = run.store.latest_instances

    def read_then_driver_moves(*args, **kwargs):  # type: ignore[no-untyped-def]
        rows = read(*args, **kwargs)
        work = [r for r in rows if r.task_name == "work"]
        assert [r.state for r in work] == ["SUBMITTED"] * 3
        run.store.apply([StateChange(work[0].id, frozenset({"SUBMITTED"}), "RUNNING")])
        return rows

    monkeypatch.setattr(run.store, "latest_instances", read_then_driver_moves)
    rows, moved = close_active(run.store, run.run_id, None, "cancelled by user")
    monkeypatch.undo()
    assert {r.id for r in rows if r.task_name == "work"} <= moved
    assert states(run, "work") == ["CANCELLED"] * 3


def test_a_cancel_keeps_work_that_finished_before_a_driver_step_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a chained run the next step starts when the array ends: elements that finished
    meanwhile were recorded CANCELLED by a cancel, their results thrown away."""
    import reflow.engine.dispatch as dispatch

    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    step(ctx)  # produce ran; work submitted, its elements not started
    fake.no_result[2] = ["RUNNING"]  # element 2 is still running when the cancel comes
    fake.run_pending()  # elements 0 and 1 finish and write results; no step reads them
    assert states(run, "work") == ["SUBMITTED"] * 3
    monkeypatch.setattr(dispatch, "make_executor", lambda *args: fake)
    assert run.cancel() == 1
    assert states(run, "work") == ["SUCCESS", "SUCCESS", "CANCELLED"]
    assert run.store.get_run(run.run_id).status == "CANCELLED"
    kept = sorted(run.store.latest_instances(run.run_id, "work"), key=lambda r: r.array_index)
    for row in kept[:2]:  # started when the worker says, not when it finished
        assert row.started_at is not None and row.finished_at is not None
        assert row.started_at < row.finished_at
    assert not [p.name for p in results_dir(ctx.state_dir).iterdir()
                if p.name.startswith(tuple(f"{r.id}." for r in kept[:2]))]


def test_cancelling_a_task_before_it_is_planned_keeps_it_from_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cancel --task work` while its upstream still ran said "nothing to cancel", and the
    task ran anyway once the driver planned it."""
    import reflow.engine.dispatch as dispatch

    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    monkeypatch.setattr(dispatch, "make_executor", lambda *args: fake)
    assert run.cancel("work") == 1  # its marker
    assert steps_until_done(ctx) == "CANCELLED"
    assert states(run, "produce") == ["SUCCESS"]
    assert states(run, "work") == ["CANCELLED"]
    assert states(run, "total") == ["CANCELLED"]  # skipped for it
    assert "cancelled by user (task 'work')" in (
        run.store.latest_instances(run.run_id, "work")[0].error_text or "")
    assert not [job for job in fake.task_jobs().values() if "work" in job.name]


def test_a_cancel_while_a_step_plans_an_array_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marker (index none) and the elements (0..n) never collide in the unique index:
    a cancel landing between the step reading the counts and inserting the elements was
    lost, and the task ran."""
    import reflow.engine.dispatch as dispatch

    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    insert = ctx.store.insert_instances
    cancelled: list[int] = []

    def cancel_first(rows, *args, **kwargs):  # type: ignore[no-untyped-def]
        if rows and rows[0].task_name == "work" and not cancelled:
            cancelled.append(1)  # the cancel's own marker comes through here too
            monkeypatch.setattr(dispatch, "make_executor", lambda *a: fake)
            assert run.cancel("work") == 1  # only its marker: nothing of it is recorded yet
        return insert(rows, *args, **kwargs)

    monkeypatch.setattr(ctx.store, "insert_instances", cancel_first)
    assert steps_until_done(ctx) == "CANCELLED"
    assert states(run, "work") == ["CANCELLED"] * 4  # the marker, then the three elements
    assert not [job for job in fake.task_jobs().values() if job.name.endswith("-work")]


def test_work_a_killed_driver_submitted_but_never_recorded_is_not_run_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between the scheduler taking the array and the store hearing of it: the next
    step found the elements PENDING, threw their results away and submitted them again (a
    whole array run twice)."""
    fake = FakeExecutor()
    run, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=3)
    submit = fake.submit

    def killed_after_submitting(job: JobSpec) -> str:
        job_id = submit(job)
        if job.array_indices is not None:
            raise SystemExit("driver killed")  # as kill -9 would stop it, before recording
        return job_id

    monkeypatch.setattr(fake, "submit", killed_after_submitting)
    with pytest.raises(SystemExit):
        step(ctx)  # produce ingested; the array submitted, not recorded
    monkeypatch.undo()
    assert states(run, "work") == ["PENDING"] * 3
    fake.run_pending()  # the scheduler runs it anyway
    assert steps_until_done(ctx) == "SUCCESS"
    assert sum(job.array_indices is not None for job in fake.task_jobs().values()) == 1
    (total,) = run.store.latest_instances(run.run_id, "total")
    assert total.output == "30"  # as in a run nothing interrupted
    work = [t for t in run.transitions() if t["task_name"] == "work"]
    assert [(t["from_state"], t["to_state"]) for t in work if t["array_index"] == 0] == [
        (None, "PENDING"), ("PENDING", "SUBMITTED"), ("SUBMITTED", "RUNNING"),
        ("RUNNING", "SUCCESS")]


def test_a_detached_driver_waits_out_a_store_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is all that carries the run on: giving up after the store's 30 s deadline left the
    run stalled until somebody noticed and resumed it."""
    from types import SimpleNamespace

    from reflow.engine import driver_host
    from reflow.states import RunState

    calls: list[int] = []

    def locked_twice(ctx: object, first: float, longest: float, *, host: str) -> RunState:
        calls.append(1)
        if len(calls) <= 2:
            raise StoreError("store m.db stayed locked for 30 s (injected)")
        return RunState.SUCCESS

    monkeypatch.setattr(driver_host, "run_foreground", locked_twice)
    ctx = SimpleNamespace(run_id="r-1")
    assert driver_host.run_detached(ctx, 0.0, 0.0) == RunState.SUCCESS  # type: ignore[arg-type]
    assert len(calls) == 3
    def unreachable(ctx: object, first: float, longest: float, *, host: str) -> RunState:
        calls.append(1)
        raise StoreError("store m.db is unreachable (injected)")

    monkeypatch.setattr(driver_host, "_OUTAGE_RETRIES", 3)
    monkeypatch.setattr(driver_host, "run_foreground", unreachable)
    calls.clear()
    with pytest.raises(StoreError, match="unreachable"):
        driver_host.run_detached(ctx, 0.0, 0.0)  # type: ignore[arg-type]
    assert len(calls) == 4  # the first failure and three more, then it gives up


def test_submit_wait_stopped_by_the_store_says_how_to_carry_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*args: object) -> None:
        raise StoreError("store m.db stayed locked for 30 s (injected)")

    monkeypatch.setattr("reflow.engine.dispatch.run_foreground", locked)
    with pytest.raises(StoreError) as caught:
        write_pipeline(tmp_path).submit(tmp_path / "r", store=str(tmp_path / "m.db"),
                                        executor=FakeExecutor(), wait=True, n=2)
    run_id = caught.value.run_id
    assert run_id is not None and f"run {run_id} is left RUNNING: store m.db" in str(caught.value)
    assert f"`reflow resume {run_id} --store-path {tmp_path / 'm.db'}` carries" in str(
        caught.value)


def test_a_lock_file_that_cannot_be_locked_is_said_once_not_at_every_poll(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import errno
    import logging

    def no_locks(handle: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")  # Lustre mounted noflock

    fake = FakeExecutor()
    _, ctx = start(write_pipeline(tmp_path), tmp_path, fake, n=2)
    monkeypatch.setattr("reflow.engine.driver.fcntl.flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="reflow.driver"):
        assert steps_until_done(ctx) == "SUCCESS"  # the steps still go on
    warnings = [r for r in caplog.records if "cannot lock" in r.getMessage()]
    assert len(warnings) == 1 and "could both submit" in warnings[0].getMessage()
