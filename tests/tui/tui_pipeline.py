"""A small pipeline for the TUI tests, importable by module path so retry can re-import it.

``work[1]`` fails until the file named by ``$REFLOW_TUI_FLAG`` exists. Run twice with a new
``factor`` it gives a run with cached (``items``), recomputed (``work``), failed (``work[1]``)
and skipped (``total``) tasks, plus an ordering-only edge (``report`` after ``items``).
``stamp``'s recorded output fails verification while ``$REFLOW_TUI_STALE`` is 1.
Run as a script (``python tui_pipeline.py RUN_DIR STORE_URL``) it submits one run to the
local executor and prints its id; the tmux smoke test uses that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

from reflow import Param, Result, Workflow

demo = Workflow("demo")


def flag_ok() -> bool:
    flag = os.environ.get("REFLOW_TUI_FLAG")
    return bool(flag) and Path(str(flag)).exists()


@demo.job()
def items(n: Annotated[int, Param(help="count")] = 3) -> list[int]:
    return list(range(n))


@demo.array_job()
def work(x: Annotated[int, Result(step="items")],
         factor: Annotated[int, Param(help="factor")] = 2) -> int:
    if x == 1 and not flag_ok():
        print("work[1]: the flag file is missing", file=sys.stderr)
        raise RuntimeError("boom: flag missing")
    return x * factor


@demo.job()
def total(xs: Annotated[list[int], Result(step="work")]) -> int:
    return sum(xs)


@demo.job(after=["items"])
def report() -> str:
    return "ok"


def still_valid(out: str) -> bool:
    return os.environ.get("REFLOW_TUI_STALE") != "1"


@demo.job(verify=still_valid)
def stamp() -> str:
    return "v1"


if __name__ == "__main__":
    run = demo.submit(sys.argv[1], store=sys.argv[2], executor="local")
    print(run.run_id, flush=True)


slow = Workflow("slow")


@slow.job()
def sleepy() -> int:
    """Runs until cancelled (or a minute passes): something to cancel from the TUI."""
    import time

    time.sleep(60)
    return 0
