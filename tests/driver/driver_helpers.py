"""Pipelines written to real files (workers and driver processes re-import them) and helpers.

Each task's behaviour is steered by marker files in ``<run_dir>/ctl`` so a test can make an
element fail, hang until released, or use more memory than it asked for, and then fix it.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reflow import Run, Workflow
from reflow.engine.entrypoints import load_workflow

PIPELINE = '''
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

from reflow import Param, Result, RunDir, Workflow

wf = Workflow({name!r})


@wf.job()
def produce(n: Annotated[int, Param()] = 3) -> list[int]:
    return list(range(n))


@wf.array_job(array_parallelism={parallelism!r}, retries={retries!r}, retry_on={retry_on!r},
              escalate={escalate!r}, mem={mem!r})
def work(x: Annotated[int, Result(step="produce")], run_dir: RunDir = RunDir()) -> int:
    ctl = Path(run_dir) / "ctl"
    ctl.mkdir(exist_ok=True)
    (ctl / f"pid-{{x}}").write_text(str(os.getpid()))
    if (ctl / f"fail-{{x}}").exists():
        raise RuntimeError(f"element {{x}} told to fail")
    if (ctl / f"hog-{{x}}").exists():
        hog = b"x" * (int((ctl / f"hog-{{x}}").read_text()) << 20)
        del hog
    if (ctl / f"childhog-{{x}}").exists():  # a program the task runs takes the memory
        size = int((ctl / f"childhog-{{x}}").read_text())
        subprocess.run([sys.executable, "-c", f"b = b'x' * ({{size}} << 20)"], check=True)
    while (ctl / f"hang-{{x}}").exists():
        time.sleep(0.05)
    return x * 10


@wf.job()
def total(xs: Annotated[list[int], Result(step="work")]) -> int:
    return sum(xs)
'''


def write_pipeline(directory: Path, **options: Any) -> Workflow:
    """Write a produce -> work[array] -> total pipeline file and import it like a worker."""
    values = {"name": f"p{secrets.token_hex(4)}", "parallelism": None, "retries": 0,
              "retry_on": (), "escalate": {}, "mem": "1G", **options}
    path = directory / f"pipeline_{values['name']}.py"
    path.write_text(PIPELINE.format(**values))
    return load_workflow(str(path), values["name"])


def ctl(run_dir: Path, name: str, text: str = "") -> Path:
    path = run_dir / "ctl" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def worker_pid(run_dir: Path, index: int, what: str) -> int:
    """The pid element ``index`` wrote once it started (its ``ctl/pid-<index>`` file)."""
    path = run_dir / "ctl" / f"pid-{index}"
    return int(wait_for(lambda: path.exists() and path.read_text(), what=what))


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (never a bare sleep as sync)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def states(run: Run, task: str) -> list[str]:
    rows = run.store.latest_instances(run.run_id, task)
    return [r.state for r in sorted(rows, key=lambda r: -1 if r.array_index is None
                                    else r.array_index)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
