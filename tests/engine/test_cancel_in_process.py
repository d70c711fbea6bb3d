"""Cancelling a run that ``run_local`` is executing in another process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflow import Run, Store
from reflow.errors import ReflowError

SCRIPT = '''
import sys
import time
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow

ctl = Path(sys.argv[1])
wf = Workflow("cancel_me")


@wf.job()
def items() -> list[int]:
    return list(range(6))


@wf.array_job()
def work(x: Annotated[int, Result(step="items")]) -> int:
    (ctl / f"started-{x}").write_text("")
    while not (ctl / "release").exists():  # held until the test has cancelled the run
        time.sleep(0.02)
    return x


@wf.job()
def total(xs: Annotated[list[int], Result(step="work")]) -> int:
    return sum(xs)


wf.run_local(ctl / "run", store=sys.argv[2])
'''


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def test_cancel_stops_an_in_process_run_after_the_running_task(tmp_path: Path) -> None:
    store_path = tmp_path / "m.db"
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    Store.open(str(store_path)).close()
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(store_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        store = Store.open(str(store_path))
        run_id = wait_for(lambda: [r.run_id for r in store.list_runs()], "the run")[0]
        run = Run.load(run_id, store=store)
        # the write-behind records the running batch within half a second
        wait_for(lambda: store.latest_instances(run_id, "work", states=["RUNNING"]),
                 "work recorded RUNNING")
        with pytest.raises(ReflowError, match="cannot be cancelled alone"):
            run.cancel("work")
        assert run.cancel() == 6
        assert run.state == "CANCELLED"
        (tmp_path / "release").write_text("")
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1 and f"run {run_id} was cancelled while it ran" in err
    # only the element that was running when the run was cancelled ever started
    assert sorted(p.name for p in tmp_path.glob("started-*")) == ["started-0"]
    rows = store.latest_instances(run_id)
    assert {(r.task_name, r.state) for r in rows} == {
        ("items", "SUCCESS"), ("work", "CANCELLED"), ("total", "CANCELLED")}
    (total,) = [r for r in rows if r.task_name == "total"]  # never planned: shown, not absent
    assert total.reason == "skipped" and total.error_text == "cancelled by user"
    assert run.state == "CANCELLED" and run.cancel() == 0
