"""Resuming a ``run_local`` run whose process was killed mid-array.

``run_local`` records an array's elements batch by batch as they start, so a killed process
leaves the elements of later batches unrecorded; resuming must plan them too, or the run
ends SUCCESS with part of the array missing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from reflow import Run, Store
from reflow.actions import resume

PIPELINE = '''
import time
from pathlib import Path
from typing import Annotated

from reflow import Param, Result, RunDir, Workflow

wf = Workflow("killed")


@wf.job()
def produce(n: Annotated[int, Param()] = 1000) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(x: Annotated[int, Result(step="produce")], run_dir: RunDir = RunDir()) -> int:
    while x == 40 and not (Path(run_dir) / "go").exists():  # held until the test kills us
        time.sleep(0.02)
    return x + 1


@wf.job()
def gather(xs: Annotated[list[int], Result(step="work")]) -> int:
    return sum(xs)
'''

STARTER = (
    "import sys\n"
    "from reflow.cli.loading import load_pipeline\n"
    "load_pipeline(sys.argv[1]).run_local(sys.argv[2], store=sys.argv[3])\n"
)


def test_resume_plans_the_elements_a_killed_process_never_recorded(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(PIPELINE)
    store_path = tmp_path / "m.db"
    proc = subprocess.Popen([sys.executable, "-c", STARTER, str(script), str(tmp_path / "r"),
                             str(store_path)])
    try:
        deadline = time.monotonic() + 60
        run_id = None
        while run_id is None:
            assert time.monotonic() < deadline, "element 40 was never recorded as running"
            assert proc.poll() is None, "the run ended before it could be killed"
            if store_path.exists():
                with Store.open(str(store_path)) as store:
                    runs = store.list_runs(workflow="killed")
                    if runs and store.count_latest(runs[0].run_id, "work", states=["RUNNING"]):
                        run_id = runs[0].run_id
            time.sleep(0.02)  # polling with a deadline
    finally:
        proc.kill()
        proc.wait()
    run = Run.load(run_id, store=str(store_path))
    recorded = run.store.count_latest(run_id, "work")
    assert 40 < recorded < 1000  # the batch that started, not the whole array
    (tmp_path / "r" / "go").touch()

    assert resume(run)
    assert run.state == "SUCCESS"
    assert run.store.count_latest(run_id, "work", states=["SUCCESS"]) == 1000
    (gather,) = run.store.latest_instances(run_id, "gather")
    assert gather.output == str(sum(range(1, 1001)))
