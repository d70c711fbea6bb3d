"""A retried in-process run carried on by a detached process (the TUI's `r` and `f`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from reflow import Run, Store
from reflow.actions import retry, stalled_reason

PIPELINE = '''
import sys
from pathlib import Path

from reflow import RunDir, Workflow

wf = Workflow("carried")


@wf.job()
def flaky(run_dir: RunDir = RunDir()) -> int:
    if not (Path(run_dir) / "fixed").exists():
        raise RuntimeError("not fixed yet")
    return 1


if __name__ == "__main__":
    wf.run_local(sys.argv[1], store=sys.argv[2], on_error="continue", progress=False)
'''


def test_a_background_retry_names_its_process_at_once(tmp_path: Path) -> None:
    script = tmp_path / "carried.py"
    script.write_text(PIPELINE)
    store = str(tmp_path / "m.db")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "r"), store],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # the process that ran the run has exited
    (tmp_path / "r" / "fixed").touch()
    run = Run.load(Store.open(store).list_runs()[0].run_id, store=store)
    assert run.state == "FAILED"
    assert retry(run, background=True) == 1
    # Before the spawned process has even started Python: not called stalled for the
    # process that exited above.
    assert stalled_reason(run.store, run.run_id) is None
    assert run.wait(60) == "SUCCESS"
