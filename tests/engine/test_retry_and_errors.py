"""Failures, on_error, retries with kept history, and run lookup errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, Run, Workflow
from reflow.core.codec import decode
from reflow.errors import RunFailedError, StoreError, UnknownRunError


def flaky_pipeline(flag: Path, name: str = "flaky") -> Workflow:
    """``work[1]`` fails until ``flag`` exists; everything else succeeds."""
    wf = Workflow(name)

    @wf.job()
    def items() -> list[int]:
        return [0, 1, 2]

    @wf.array_job()
    def work(x: Annotated[int, Result(step="items")]) -> int:
        if x == 1 and not flag.exists():
            raise RuntimeError("boom: flag missing")
        return x * 10

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="work")]) -> int:
        return sum(xs)

    return wf


def latest(run: Run, task: str) -> list[dict[str, Any]]:
    rows = [i for i in run.status(as_dict=True)["instances"] if i["task_name"] == task]
    return sorted(rows, key=lambda i: -1 if i["array_index"] is None else i["array_index"])


def test_on_error_stop_raises_with_run_id_and_records_failure(tmp_path, sqlite_url) -> None:
    wf = flaky_pipeline(tmp_path / "flag")
    with pytest.raises(RuntimeError) as err:
        wf.run_local(tmp_path / "r", store=sqlite_url)
    assert isinstance(err.value, RunFailedError)
    assert err.value.run_id in str(err.value) and "'work'" in str(err.value)
    # the commands it suggests find this store, which is not the default one
    path = sqlite_url.removeprefix("sqlite:///")
    assert f"`reflow status {err.value.run_id} --store-path {path} --errors`" in str(err.value)
    run = Run.load(err.value.run_id, store=sqlite_url)
    assert run.state == "FAILED"
    states = [i["state"] for i in latest(run, "work")]
    assert states[:2] == ["SUCCESS", "FAILED"]
    assert states[2] in ("CANCELLED",)
    assert "boom: flag missing" in latest(run, "work")[1]["error_text"]
    (total,) = latest(run, "total")  # never planned, yet shown: not "no instances"
    assert (total["state"], total["reason"]) == ("CANCELLED", "skipped")
    assert total["error_text"].startswith("not run: the run stopped at its first failure")
    (tmp_path / "flag").write_text("fixed")
    run = Run(run.run_id, store=run.store, workflow=wf)  # wf is built here, not importable
    assert run.retry() == 2 and run.state == "SUCCESS"  # the marker is replaced, as a skip's
    assert [i["state"] for i in latest(run, "total")] == ["SUCCESS"]


def test_hints_name_no_store_when_the_cli_finds_it_by_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REFLOW_STORE_PATH", str(tmp_path / "team.db"))
    with pytest.raises(RunFailedError) as err:
        flaky_pipeline(tmp_path / "flag").run_local(tmp_path / "r")
    assert f"`reflow status {err.value.run_id} --errors`" in str(err.value)


def test_continue_skips_dependants_and_retry_completes_with_history(
    tmp_path, store_url
) -> None:
    flag = tmp_path / "flag"
    wf = flaky_pipeline(flag)
    run = wf.run_local(tmp_path / "r", store=store_url, on_error="continue")
    assert run.state == "FAILED"
    assert [i["state"] for i in latest(run, "work")] == ["SUCCESS", "FAILED", "SUCCESS"]
    (skipped,) = latest(run, "total")
    assert skipped["state"] == "CANCELLED" and skipped["reason"] == "skipped"
    assert "upstream task 'work' failed" in skipped["error_text"]
    assert skipped["identity"] is None and skipped["input_hash"] is None  # never "" as a hash
    text = run.status()
    assert "[1]  FAILED  job=-" in text

    flag.write_text("fixed")
    assert run.retry("work") == 1
    assert run.state == "SUCCESS"
    work = latest(run, "work")
    assert [i["state"] for i in work] == ["SUCCESS"] * 3
    assert work[1]["attempt"] == 2 and work[1]["reason"] == "retry"
    (tot,) = latest(run, "total")
    assert tot["state"] == "SUCCESS"
    history = [(t["attempt"], t["from_state"], t["to_state"])
               for t in run.transitions()
               if t["task_name"] == "work" and t["array_index"] == 1]
    assert history == [(1, None, "PENDING"), (1, "PENDING", "RUNNING"), (1, "RUNNING", "FAILED"),
                       (2, None, "RETRYING"), (2, "RETRYING", "RUNNING"),
                       (2, "RUNNING", "SUCCESS")]
    assert run.status(as_dict=True)["summary"]["work"] == {"SUCCESS": 3}


def test_retry_with_nothing_to_retry_changes_nothing(tmp_path, sqlite_url) -> None:
    flag = tmp_path / "flag"
    flag.write_text("ok")
    run = flaky_pipeline(flag).run_local(tmp_path / "r", store=sqlite_url)
    before = run.record()
    assert run.retry() == 0
    after = run.record()
    assert after.status == "SUCCESS" and after.updated_at == before.updated_at
    assert run.cancel() == 0 and run.state == "SUCCESS"
    assert run.retry("work", task_name="work") == 0  # the synonyms may agree
    with pytest.raises(ValueError, match=r"task='work', task_name='total'.*synonyms"):
        run.retry("work", task_name="total")


def test_retry_reruns_upstream_whose_output_fails_verification(tmp_path, sqlite_url) -> None:
    wf = Workflow("rv")
    flag = tmp_path / "flag"
    produced: list[int] = []

    @wf.job()
    def make(run_dir) -> Path:
        produced.append(1)
        p = Path(run_dir) / "data.txt"
        p.write_text("data")
        return p

    @wf.job()
    def use(p: Annotated[Path, Result(step="make")]) -> str:
        if not flag.exists():
            raise RuntimeError("not yet")
        return p.read_text()

    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    (tmp_path / "r" / "data.txt").unlink()
    flag.write_text("go")
    assert run.retry("use") == 2
    assert len(produced) == 2 and run.state == "SUCCESS"
    fails = run.store.verify_failures(run.run_id)
    assert [f.task_name for f in fails] == ["make"] and "missing" in fails[0].reason


def checked_up_down(name: str, trusted: Path, ready: Path) -> Workflow:
    """``up`` (whose output passes its check while ``trusted`` exists) -> ``down`` (which
    fails until ``ready`` exists)."""
    wf = Workflow(name)

    @wf.job(verify=lambda out: trusted.exists())
    def up() -> int:
        return 7

    @wf.job()
    def down(x: Annotated[int, Result(step="up")]) -> int:
        if not ready.exists():
            raise RuntimeError("not yet")
        return x

    return wf


def test_a_retried_instance_whose_inputs_did_not_change_is_a_retry(tmp_path) -> None:
    """The upstream is recomputed (its check failed) to the same value: the downstream runs
    again on the very inputs of its failed attempt, which is a retry, with or without verify."""
    trusted, ready = tmp_path / "trusted", tmp_path / "ready"
    wf = checked_up_down("same", trusted, ready)
    for verify in (True, False):
        trusted.touch()
        ready.unlink(missing_ok=True)
        store = f"sqlite:///{tmp_path}/m-{verify}.db"  # nothing cached from the other round
        run = wf.run_local(tmp_path / f"r{verify}", store=store, on_error="continue")
        trusted.unlink()
        ready.touch()
        run.retry(verify=verify)
        (row,) = latest(run, "down")
        assert (row["state"], row["attempt"], row["reason"]) == ("SUCCESS", 2, "retry")
        head, cause = run.why("down").splitlines()
        assert head.startswith("down: retry")
        assert cause == "  attempt 1 ended FAILED: RuntimeError: not yet"  # what it retried


def test_a_retry_keeps_the_runs_force_options_as_the_driver_does(tmp_path) -> None:
    """A task re-planned by a retry (its upstream was recomputed) in a run made with
    force_tasks is planned forced again: the driver path did so, run_local did not."""
    trusted, ready = tmp_path / "trusted", tmp_path / "ready"
    trusted.touch()
    wf = checked_up_down("forced_retry", trusted, ready)
    store = f"sqlite:///{tmp_path}/m.db"
    wf.run_local(tmp_path / "warm", store=store, on_error="continue")  # up's output cached
    run = wf.run_local(tmp_path / "r", store=store, on_error="continue", force_tasks=["down"])
    assert [r["reason"] for r in latest(run, "down")] == ["forced"]
    trusted.unlink()
    ready.touch()
    run.retry()
    (row,) = latest(run, "down")
    assert (row["state"], row["attempt"], row["reason"]) == ("SUCCESS", 2, "forced")


def test_bad_run_options_are_reflow_errors_naming_the_fix(tmp_path, sqlite_url) -> None:
    from reflow.errors import OptionError, ReflowError

    wf = Workflow("opts")

    @wf.job()
    def a() -> int:
        return 1

    (tmp_path / "file").write_text("")
    cases = {
        "on_error='cont' is not valid; use 'stop' or 'continue'": {"on_error": "cont"},
        "max_workers=0 must be a whole number of at least 1": {"max_workers": 0},
        "store=42 is not a store; pass a Store": {"store": 42},
        f"run dir {tmp_path / 'file'} is a file, not a directory": {"run_dir": tmp_path / "file"},
        "run dir is empty; give the directory": {"run_dir": ""},
    }
    for message, bad in cases.items():
        kwargs = {"run_dir": tmp_path / "r", "store": sqlite_url, **bad}
        with pytest.raises(OptionError) as caught:
            wf.run_local(**kwargs)
        assert isinstance(caught.value, ReflowError) and isinstance(caught.value, ValueError)
        assert message in str(caught.value) and "\n" not in str(caught.value)
    assert not (tmp_path / "r").exists()  # refused before anything was created


def test_a_run_dir_that_cannot_be_written_to_records_no_run(tmp_path, sqlite_url) -> None:
    """sysfs refuses new files even to root, as a read-only mount does (the submit path:
    test_local_executor)."""
    from reflow.errors import OptionError
    from reflow.store import Store

    unwritable = Path("/sys/kernel")
    if not unwritable.is_dir():
        pytest.skip("no sysfs on this machine")
    with pytest.raises(OptionError, match="run dir /sys/kernel cannot be written to"):
        flaky_pipeline(tmp_path / "flag").run_local(unwritable, store=sqlite_url)
    with Store.open(sqlite_url) as store:
        assert store.list_runs() == []


def test_unknown_run_id_suggests_closest(tmp_path, sqlite_url) -> None:
    flag = tmp_path / "flag"
    flag.write_text("ok")
    run = flaky_pipeline(flag).run_local(tmp_path / "r", store=sqlite_url)
    typo = run.run_id[:-1] + ("0" if run.run_id[-1] != "0" else "1")
    with pytest.raises(UnknownRunError) as err:
        Run.load(typo, store=sqlite_url)
    assert isinstance(err.value, KeyError)
    assert typo in str(err.value) and run.run_id in str(err.value)


def test_loading_a_run_from_a_mistyped_store_path_creates_no_store(tmp_path) -> None:
    from reflow.errors import StoreError

    missing = tmp_path / "typo" / "manifst.db"
    with pytest.raises(StoreError, match=f"no reflow store at {missing}"):
        Run.load("demo-20261126-aaaaaaaa", store=str(missing))
    assert not missing.exists() and not missing.parent.exists()


def test_run_ids_have_the_documented_shape(tmp_path, sqlite_url) -> None:
    import re

    flag = tmp_path / "flag"
    flag.write_text("ok")
    run = flaky_pipeline(flag, name="shape").run_local(tmp_path / "r", store=sqlite_url)
    assert re.fullmatch(r"shape-\d{8}-[0-9a-f]{8,}", run.run_id)
    rec = run.record()
    assert rec.entrypoint is not None and rec.run_dir == str((tmp_path / "r").resolve())


def test_submit_refuses_a_workflow_other_processes_cannot_import(tmp_path, sqlite_url) -> None:
    from reflow.errors import ReflowError

    wf = Workflow("local_only")  # built inside a function: no worker could import it

    @wf.job()
    def a() -> int:
        return 1

    with pytest.raises(ReflowError, match="not a module-level name") as err:
        wf.submit(tmp_path / "r", store=sqlite_url, executor="local")
    assert "wf.run_local" in str(err.value)
    from reflow import Store

    assert Store.open(sqlite_url).list_runs() == []  # nothing recorded


def source_checked_pipeline(source: Path, flag: Path) -> Workflow:
    """``make`` returns the number in ``source`` and fails verify once it changed; ``consume``
    fails until ``flag`` exists; ``report`` depends on ``consume``."""
    wf = Workflow("stale")

    @wf.job(verify=lambda v: v == int(source.read_text()))
    def make() -> int:
        return int(source.read_text())

    @wf.job()
    def consume(x: Annotated[int, Result(step="make")]) -> int:
        if not flag.exists():
            raise RuntimeError("not yet")
        return x * 100

    @wf.job()
    def report(y: Annotated[int, Result(step="consume")]) -> str:
        return f"y={y}"

    return wf


def test_retry_after_a_failed_upstream_check_runs_on_the_recomputed_output(
    tmp_path, sqlite_url
) -> None:
    source, flag = tmp_path / "source", tmp_path / "flag"
    source.write_text("1")
    wf = source_checked_pipeline(source, flag)
    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    (stale_make,) = latest(run, "make")
    source.write_text("2")
    flag.write_text("go")
    assert run.retry() == 2  # consume's failure, and make whose output failed its check
    make, consume, report = (latest(run, t)[0] for t in ("make", "consume", "report"))
    assert (make["output"], make["attempt"], make["reason"]) == (2, 2, "verify-failed:callable")
    # consume ran on the recomputed value and is recorded under that value's identity
    assert consume["input"] == {"x": 2} and consume["output"] == 200
    assert make["output_hash"] in consume_preimage(run)
    assert stale_make["output_hash"] not in consume_preimage(run)
    assert consume["reason"] == "upstream-changed:x"
    assert (consume["attempt"], report["attempt"]) == (2, 2)  # planned again, counted on
    assert report["output"] == "y=200" and run.state == "SUCCESS"
    # the failed attempt of consume and the check that rejected make's output are kept
    history = [(t["task_name"], t["to_state"]) for t in run.transitions()
               if t["task_name"] == "consume"]
    assert ("consume", "FAILED") in history and history[-1] == ("consume", "SUCCESS")
    # the history reads in the order things happened: the retried make (a change to a stored
    # instance) before the consume attempt planned after it (a new row of the same batch)
    times = [t["at"] for t in run.transitions()]
    assert times == sorted(times)
    assert "verify-failed:callable" in run.why("make")
    assert "verify" in run.why("make").splitlines()[1]


def consume_preimage(run: Run) -> str:
    (row,) = run.store.latest_instances(run.run_id, "consume")
    return row.preimage


def test_an_unencodable_parameter_names_it_and_its_task_before_anything_is_recorded(
    tmp_path, sqlite_url
) -> None:
    from reflow.errors import EncodeError

    wf = Workflow("badparam")

    @wf.job()
    def takes(cfg: Any = None, opts: Any = frozenset({1})) -> int:
        return 1

    with pytest.raises(EncodeError, match=r"parameter 'cfg' of task 'takes'.*'set'"):
        wf.run_local(tmp_path / "r", store=sqlite_url, cfg={1, 2}, opts=[1])
    with pytest.raises(EncodeError, match=r"parameter 'opts' of task 'takes'.*'frozenset'"):
        wf.run_local(tmp_path / "r", store=sqlite_url)
    from reflow import Store

    assert Store.open(sqlite_url).list_runs() == []


def test_a_task_that_was_only_ever_skipped_runs_as_new(tmp_path, sqlite_url) -> None:
    flag = tmp_path / "flag"
    wf = flaky_pipeline(flag, "onlyskipped")
    wf.run_local(tmp_path / "a", store=sqlite_url, on_error="continue")  # total skipped
    flag.write_text("fixed")
    run = wf.run_local(tmp_path / "b", store=sqlite_url)
    (total,) = latest(run, "total")
    assert total["reason"] == "new"  # not "version-changed" against the skip marker
    assert "no earlier run" in run.why("total")


def test_a_skip_note_says_what_happened_to_the_upstream_task(tmp_path, sqlite_url) -> None:
    wf = Workflow("notes")

    @wf.job()
    def broken() -> int:
        raise ValueError("no")

    @wf.job()
    def middle(x: Annotated[int, Result(step="broken")]) -> int:
        return x

    @wf.job()
    def last(x: Annotated[int, Result(step="middle")]) -> int:
        return x

    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    notes = {r.task_name: r.error_text for r in run.store.latest_instances(run.run_id)
             if r.reason == "skipped"}
    assert notes == {"middle": "skipped: upstream task 'broken' failed",
                     "last": "skipped: upstream task 'middle' was skipped"}


def test_cancel_runs_takes_ids_or_one_id_and_leaves_finished_runs_alone(
    tmp_path, sqlite_url
) -> None:
    flag = tmp_path / "flag"
    flag.write_text("fixed")
    wf = flaky_pipeline(flag, "cancelruns")
    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    assert wf.cancel_runs(run.run_id, sqlite_url) == 0  # one id, not its characters
    assert wf.cancel_runs([run.run_id], sqlite_url) == 0
    assert run.state == "SUCCESS"
    with pytest.raises(UnknownRunError, match="no run 'cancelruns-20000101-deadbeef'"):
        wf.cancel_runs(["cancelruns-20000101-deadbeef"], sqlite_url)
    typo = tmp_path / "typo" / "m.db"
    with pytest.raises(StoreError, match="no reflow store at"):
        wf.cancel_runs([run.run_id], str(typo))
    assert not typo.parent.exists()  # no empty store left behind


def add_failing_b(wf: Workflow, data: Path) -> None:
    """Task b of the retry pipelines: fails while ``data/fail`` exists, else returns 1."""

    @wf.job()
    def b() -> int:
        if (data / "fail").exists():
            raise RuntimeError("b told to fail")
        return 1


def test_retry_verifies_what_skipped_dependants_will_read(tmp_path, sqlite_url) -> None:
    """c reads a and b; b failed, so c was skipped: a's file is checked before c runs."""
    data = tmp_path / "data"
    data.mkdir()
    wf = Workflow("retry_reads")

    @wf.job()
    def a() -> Path:
        path = data / "a.txt"
        path.write_text("a")
        return path

    add_failing_b(wf, data)

    @wf.job()
    def c(x: Annotated[Path, Result(step="a")], y: Annotated[int, Result(step="b")]) -> str:
        return x.read_text()

    (data / "fail").touch()
    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    assert [i["reason"] for i in latest(run, "c")] == ["skipped"]
    (data / "fail").unlink()
    (data / "a.txt").write_text("rewritten behind reflow's back")
    assert run.retry() == 2  # b, and a whose file no longer checks out
    assert run.state == "SUCCESS"
    (a_row,) = latest(run, "a")
    assert a_row["attempt"] == 2 and a_row["reason"].startswith("verify-failed:")
    assert [i["output"] for i in latest(run, "c")] == ["a"]  # the recomputed file, not the edit


def report_pipeline(name: str, data: Path) -> Workflow:
    """b fails while ``data/fail`` exists; c writes a report from b's output."""
    wf = Workflow(name)
    add_failing_b(wf, data)

    @wf.job()
    def c(x: Annotated[int, Result(step="b")]) -> Path:
        path = data / f"report-{len(list(data.glob('report-*')))}.json"
        path.write_text(str(x))
        return path

    return wf


@pytest.mark.parametrize("retry_verify", [True, False])
def test_retry_verifies_the_cache_hits_it_takes(tmp_path, sqlite_url, retry_verify) -> None:
    """SPEC §3: verification is on by default on retry, for cache hits too. c of the first run
    is the hit the retried run finds; its report was deleted, so c is recomputed."""
    data = tmp_path / "data"
    data.mkdir()
    wf = report_pipeline("retry_hits", data)
    wf.run_local(tmp_path / "r1", store=sqlite_url)
    (data / "fail").touch()
    run = wf.run_local(tmp_path / "r2", store=sqlite_url, force_tasks="b", on_error="continue")
    assert [i["reason"] for i in latest(run, "c")] == ["skipped"]
    (data / "fail").unlink()
    (data / "report-0.json").unlink()
    assert run.retry(verify=retry_verify) == 1
    (c_row,) = latest(run, "c")
    if retry_verify:
        assert (c_row["cached"], c_row["reason"]) == (False, "verify-failed:missing")
        assert decode(c_row["output"]).read_text() == "1"  # written again
        assert [f.check for f in run.store.verify_failures(run.run_id)] != []
    else:  # --no-verify trusts the store, as a normal run does
        assert (c_row["cached"], c_row["reason"]) == (True, "cached")


def unwired_pipeline(name: str) -> Workflow:
    """a's output cannot be fanned out (not a list): found only once a has run."""
    wf = Workflow(name)

    @wf.job()
    def a() -> list[int]:
        return 5  # type: ignore[return-value]

    @wf.array_job()
    def m(x: Annotated[int, Result(step="a")]) -> int:
        return x

    return wf


@pytest.mark.parametrize("on_error", ["continue", "stop"])
def test_inputs_that_cannot_be_wired_fail_the_task_as_on_the_driver_path(
    tmp_path, sqlite_url, on_error
) -> None:
    wf = unwired_pipeline(f"unwired_{on_error}")
    if on_error == "stop":
        with pytest.raises(RunFailedError) as err:  # not a bare WiringError without a run
            wf.run_local(tmp_path / "r", store=sqlite_url, on_error="stop")
        assert err.value.task == "m"
        run = Run(err.value.run_id, store=sqlite_url, workflow=wf)
    else:
        run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    assert run.state == "FAILED"
    (m,) = latest(run, "m")
    assert m["state"] == "FAILED"
    assert "task 'a' returned int, but array task 'm' fans out over it" in m["error_text"]
    # Retried, the task is planned afresh; a's recorded output still cannot be fanned out.
    assert run.retry() == 1
    (m,) = latest(run, "m")
    assert (m["state"], m["attempt"], run.state) == ("FAILED", 2, "FAILED")
    assert "fans out over it as 'x'; return a list" in run.why("m")


@pytest.mark.parametrize(("where", "workers"), [
    ("writing", 1), ("writing", 2), ("planning", 1)])
def test_a_store_outage_mid_run_leaves_a_run_retry_can_finish(
        tmp_path, sqlite_url, monkeypatch, where, workers) -> None:
    """The store stops answering once (past its deadline): while writing after element 1 ran
    (with one worker, and with two, which hung: queued bodies waited for the buffer's lock
    while leaving the pool waited for them), or while planning the last task. The error names
    the run; nothing is left PENDING or RUNNING (rows left PENDING could be neither retried
    nor resumed), the unplanned task gets a marker, and a retry finishes the run."""
    import threading

    import reflow.engine.local_runner as runner
    from reflow.errors import StoreError
    from reflow.store import Store

    outage = threading.Event()
    broken = StoreError("store sqlite:///m.db stayed locked for 30 s")
    real_record, real_plan = Store.record, runner.plan_task

    def record(self: Store, *args: Any, **kwargs: Any) -> Any:
        if where == "writing" and outage.is_set():
            outage.clear()  # once: the store is back for the run's last write
            raise broken
        return real_record(self, *args, **kwargs)

    def plan_task(store: Store, workflow: str, run_id: Any, spec: Any, *args: Any,
                  **kwargs: Any) -> Any:
        if where == "planning" and spec.name == "total" and not outage.is_set():
            outage.set()
            raise broken
        return real_plan(store, workflow, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(Store, "record", record)
    monkeypatch.setattr(runner, "plan_task", plan_task)
    wf = Workflow(f"outage_{where}_{workers}")

    @wf.job()
    def items() -> list[int]:
        return list(range(4))

    @wf.array_job()
    def work(x: Annotated[int, Result(step="items")]) -> int:
        if x == 1 and where == "writing":
            outage.set()
        return x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="work")]) -> int:
        return sum(xs)

    store = Store.open(sqlite_url)
    with monkeypatch.context() as m:
        m.setattr("reflow.engine.write_behind.WriteBehind.due", lambda self: True)
        with pytest.raises(StoreError) as err:
            wf.run_local(tmp_path / "r", store=store, max_workers=workers)
    assert err.value.run_id is not None and "`reflow retry" in str(err.value)
    run = Run(err.value.run_id, store=store, workflow=wf)
    states = {i["state"] for i in run.status(as_dict=True)["instances"]}
    assert states <= {"SUCCESS", "CANCELLED"} and run.state == "CANCELLED"
    (marker,) = latest(run, "total")
    assert "interrupted: the in-process run stopped on StoreError" in marker["error_text"]
    assert run.retry() >= 1 and run.state == "SUCCESS"
    assert [i["output"] for i in latest(run, "work")] == [0, 1, 2, 3]
    assert [i["output"] for i in latest(run, "total")] == [6]


def test_a_retry_records_an_upstream_end_before_the_start_it_allowed(
    tmp_path, sqlite_url, monkeypatch
) -> None:
    """A start dated at its input's very end was written first when the end belonged to a
    retried row and the start to a new one: the history showed `use[0]` RUNNING before
    `make` SUCCESS. Every start here follows an end closely, as fast tasks do."""
    import reflow.engine.local_runner as runner

    monkeypatch.setattr(runner, "START_REUSE_SECONDS", 3600.0)
    wf = Workflow("order")
    out, flag = tmp_path / "out", tmp_path / "flag"

    @wf.job()
    def make() -> list[Path]:
        out.mkdir(exist_ok=True)
        for i in range(2):
            (out / f"f{i}.txt").write_text("y" * (i + 1))
        return [out / f"f{i}.txt" for i in range(2)]

    @wf.array_job()
    def use(p: Annotated[Path, Result(step="make")]) -> int:
        if flag.exists() and p.name == "f1.txt":
            raise RuntimeError("flagged")
        return len(p.read_text())

    flag.write_text("")
    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    flag.unlink()
    (out / "f0.txt").unlink()  # the retry verifies make's output and recomputes it
    assert run.retry() == 2
    assert run.state == "SUCCESS"
    latest = {(r.task_name, r.array_index): r.attempt
              for r in run.store.latest_instances(run.run_id)}
    moves = [(t["task_name"], t["to_state"]) for t in run.transitions()
             if t["attempt"] == latest[(t["task_name"], t["array_index"])]]
    make_done = moves.index(("make", "SUCCESS"))
    assert all(i > make_done for i, m in enumerate(moves) if m == ("use", "RUNNING")), moves


def counted_failures(tmp_path: Path, name: str, fails: int, **options: Any) -> Workflow:
    """items -> flaky[array] -> total, where element 1 fails its first ``fails`` runs."""
    wf = Workflow(name)

    @wf.job()
    def items() -> list[int]:
        return [0, 1, 2]

    @wf.array_job(**options)
    def flaky(x: Annotated[int, Result(step="items")]) -> int:
        tries = tmp_path / f"tries-{x}"
        n = int(tries.read_text()) if tries.exists() else 0
        tries.write_text(str(n + 1))
        if x == 1 and n < fails:
            raise RuntimeError(f"attempt {n + 1} fails")
        return x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="flaky")]) -> int:
        return sum(xs)

    return wf


@pytest.mark.parametrize("workers", [1, 2])
def test_run_local_retries_a_failure_its_task_allows(tmp_path, sqlite_url, workers) -> None:
    """`retries=` worked only through a driver: in-process the first failure was final."""
    wf = counted_failures(tmp_path, f"autoretry{workers}", fails=2, retries=2)
    run = wf.run_local(tmp_path / "r", store=sqlite_url, max_workers=workers)
    assert run.state == "SUCCESS"
    assert (tmp_path / "tries-1").read_text() == "3"  # each attempt ran once
    attempts = run.store.history(run.run_id, "flaky", 1)
    assert [(r.attempt, r.state) for r in attempts] == [
        (1, "FAILED"), (2, "FAILED"), (3, "SUCCESS")]
    assert [t["detail"] for t in run.transitions() if t["array_index"] == 1
            and t["to_state"] == "RETRYING"] == ["automatic retry 1/2 after FAILED",
                                                 "automatic retry 2/2 after FAILED"]
    assert decode(json.loads(run.store.latest_instances(run.run_id, "total")[0].output)) == 3


@pytest.mark.parametrize("options", [{"retries": 1}, {"retries": 3, "retry_on": ("TIMEOUT",)}])
def test_run_local_gives_up_when_its_retries_do_not_cover_the_failure(
    tmp_path, sqlite_url, options
) -> None:
    wf = counted_failures(tmp_path, "autoretrynot", fails=5, **options)
    with pytest.raises(RunFailedError, match="task 'flaky' failed"):
        wf.run_local(tmp_path / "r", store=sqlite_url)
    tries = int((tmp_path / "tries-1").read_text())
    assert tries == (2 if "retry_on" not in options else 1)


def test_file_names_with_undecodable_bytes_are_recorded(tmp_path, store_url) -> None:
    """Common on old HPC file systems: ``os.fsdecode`` gives lone surrogates, which the
    store could not write (the run ended with a bare UnicodeEncodeError, left RUNNING)."""
    import os

    odd = os.fsdecode(b"data_\xff.nc")
    wf = Workflow("odd_names")

    @wf.job()
    def listing() -> list[str]:
        return [odd, "plain.nc"]

    @wf.job()
    def reader(names: Annotated[list[str], Result(step="listing")]) -> int:
        raise ValueError(f"cannot read {names[0]}")

    run = wf.run_local(tmp_path / "r", store=store_url, on_error="continue")
    assert run.state == "FAILED"
    (listed,) = latest(run, "listing")
    assert listed["output"] == [odd, "plain.nc"]
    (failed,) = latest(run, "reader")
    assert failed["state"] == "FAILED"
    assert "cannot read data_\\udcff.nc" in failed["error_text"]


def test_hints_name_a_postgresql_store_the_cli_would_not_find(tmp_path, pg_url,
                                                              monkeypatch) -> None:
    """Pasted without it, `reflow resume ID` looked in the default store and found nothing."""
    with pytest.raises(RunFailedError) as err:
        flaky_pipeline(tmp_path / "flag").run_local(tmp_path / "r", store=pg_url)
    assert f"`reflow status {err.value.run_id} --store '{pg_url}' --errors`" in str(err.value)
    monkeypatch.setenv("REFLOW_STORE", pg_url)  # the CLI finds it: nothing to add
    with pytest.raises(RunFailedError) as again:
        flaky_pipeline(tmp_path / "flag").run_local(tmp_path / "r2")
    assert f"`reflow status {again.value.run_id} --errors`" in str(again.value)
