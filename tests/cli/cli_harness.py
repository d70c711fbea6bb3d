"""A small real pipeline, and helpers that run the real CLI against a real store.

Commands run in subprocesses (``python pipeline.py ...`` and ``python -m reflow.cli.main``)
with stdout piped, so they print the stable text; ``in_pty`` runs one in a pseudo-terminal
for the rich output and the confirmation prompt. Runs to inspect are created in this process
with ``run_local`` (fast, in-process), on the same store file the subprocesses open.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PIPELINE = """
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from reflow import Param, Result, RunDir, Workflow

wf = Workflow("demo")


@wf.job()
def prepare(
    label: Annotated[str, Param(help="Label of the run")],
    n: Annotated[int, Param(help="How many [items]", short="n")] = 3,
    tags: Annotated[list[str], Param(help="Tags")] = [],
    model: Annotated[Literal["era5", "icon"], Param(help="Model")] = "era5",
    fast: Annotated[bool, Param(help="Go fast")] = False,
    start: Annotated[datetime | None, Param(help="Start time")] = None,
    out: Annotated[Path, Param(help="Output folder")] = Path("out"),
    run_dir: RunDir = RunDir(),
) -> list[int]:
    print(f"preparing {n} items for {label}")
    return list(range(n))


@wf.array_job()
def square(
    x: Annotated[int, Result(step="prepare")],
    fail_on: Annotated[int, Param(help="Index that fails", namespace="local")] = -1,
    run_dir: RunDir = RunDir(),
) -> int:
    print(f"squaring {x}")
    if x == fail_on and not (Path(run_dir) / "fixed").exists():
        raise RuntimeError(f"boom on {x}")
    return x * x


@wf.job()
def total(xs: Annotated[list[int], Result(step="square")]) -> int:
    return sum(xs)


if __name__ == "__main__":
    wf.cli()
"""

OTHER_PIPELINE = """
from typing import Annotated
from reflow import Param, Workflow

wf = Workflow("other")


@wf.job()
def only(k: Annotated[int, Param(help="k")] = 1) -> int:
    return k


if __name__ == "__main__":
    wf.cli()
"""


BLOCKING_PIPELINE = """
import time
from pathlib import Path
from reflow import RunDir, Workflow

wf = Workflow("blocking")


@wf.job()
def hold(run_dir: RunDir = RunDir()) -> str:
    while not (Path(run_dir) / "go").exists():  # released by the test
        time.sleep(0.05)
    return "released"
"""


@dataclass
class Project:
    """A pipeline script and a store in a temporary directory."""

    root: Path
    script: Path
    store: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, argv: Sequence[str], cwd: Path | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=cwd or self.root,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def cli(
        self, *args: str, cwd: Path | None = None, store: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python pipeline.py ARGS`` (with ``--store-path`` appended unless store=False)."""
        extra = ["--store-path", str(self.store)] if store else []
        return self.run([str(self.script), *args, *extra], cwd=cwd, input=input)

    def reflow(
        self, *args: str, cwd: Path | None = None, store: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``python -m reflow.cli.main ARGS`` (the ``reflow`` console script's code)."""
        extra = ["--store-path", str(self.store)] if store else []
        return self.run(["-m", "reflow.cli.main", *args, *extra], cwd=cwd)

    def workflow(self, script: Path | None = None) -> Any:
        """The pipeline's Workflow, imported here the way ``reflow submit`` imports it."""
        from reflow.cli.loading import load_pipeline

        return load_pipeline(str(script or self.script))

    def run_local(self, run_dir: str, **params: Any) -> Any:
        return self.workflow().run_local(self.root / run_dir, store=str(self.store), **params)


@dataclass
class Runs:
    """One successful and one failed run of the demo pipeline."""

    ok: str
    failed: str


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a user error prints; fails if there is more (a traceback, say)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def in_pty(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    answer: str | None = None,
    timeout: float = 60,
) -> tuple[int, str]:
    """Run a command with a terminal on stdin/stdout/stderr; answer a prompt if asked."""
    master, slave = pty.openpty()
    env = {**env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    answered = answer is None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if not answered and b"[y/N]" in output:
                    os.write(master, answer.encode() + b"\n")  # type: ignore[union-attr]
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode(errors="replace")
