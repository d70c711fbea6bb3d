"""Instructions per instance, counted by valgrind: a figure machine noise cannot move.

    .venv/bin/python benchmarks/count_instructions.py wide 2000
    .venv/bin/python benchmarks/count_instructions.py chain 300 --base /tmp/base

Wall-clock figures on a shared 2-core machine drift by tens of percent within minutes, more
than most single changes gain. The number of CPU instructions a run executes hardly drifts, so
this counts them (valgrind's cachegrind, without cache simulation) for the same scenarios as
``run_benchmarks.py``: once with the workflow built but not run, once with a cold run, once
with a cold and a fully cached run; the differences, divided by the size, are what one
instance costs. Time-driven behaviour is switched off in the child (hash seed fixed, no
write-behind flushes by age), so two counts of one checkout agree to a fraction of a percent.
With ``--base`` the same is counted for another checkout (e.g. a ``git worktree``) and the
ratio printed. Counts include SQLite's own work and the interpreter's; instructions are not
time, but for one program they move together.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
STAGES = ("built", "cold", "cached")


def child(checkout: Path, scenario: str, size: int, stage: str) -> None:
    """The measured process: build the workflow and run it as far as ``stage`` says."""
    sys.path[:0] = [str(checkout), str(checkout / "benchmarks")]
    from run_benchmarks import chain_workflow, wide_workflow  # type: ignore[import-not-found]

    import reflow.engine.local_runner as runner
    from reflow.store import Store
    from reflow.store.checkpoints import CHECKPOINTER

    runner.BATCH_SECONDS = 1e9  # no flush by age: the count must not depend on speed
    make = wide_workflow if scenario == "wide" else chain_workflow
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/m.db"
        Store.open(url).close()
        make("warm", 3).run_local(Path(d) / "warm", store=url)  # lazy imports, first queries
        wf = make("measured", size)
        if stage in ("cold", "cached"):
            wf.run_local(Path(d) / "cold", store=url)
        if stage == "cached":
            make("measured", size).run_local(Path(d) / "cached", store=url)
        CHECKPOINTER.wait_idle(600)  # its thread must not touch the store while it is removed


def count(checkout: Path, scenario: str, size: int, stage: str) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--child", str(checkout), scenario, str(size), stage],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode or not found:
        raise SystemExit(f"counting {checkout} {scenario} {size} {stage} failed:\n"
                         f"{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def per_instance(checkout: Path, scenario: str, size: int) -> dict[str, float]:
    stages = STAGES if scenario == "wide" else STAGES[:2]
    counts = {stage: count(checkout, scenario, size, stage) for stage in stages}
    figures = {"cold_instructions_per_instance": (counts["cold"] - counts["built"]) / size}
    if "cached" in counts:
        figures["cached_instructions_per_instance"] = (counts["cached"] - counts["cold"]) / size
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenario", choices=["wide", "chain"])
    ap.add_argument("size", type=int)
    ap.add_argument("--base", type=Path, help="another checkout to count and compare with")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("stage", nargs="?", choices=STAGES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.scenario, args.size, args.stage)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed; install it (Debian: apt-get install "
                         "valgrind) to count instructions")
    this = per_instance(HERE, args.scenario, args.size)
    base = per_instance(args.base.resolve(), args.scenario, args.size) if args.base else None
    print(f"{args.scenario} {args.size}: instructions per instance (valgrind)")
    for key, value in this.items():
        line = f"  {key:34s} this {value:12,.0f}"
        if base is not None:
            line += f"  base {base[key]:12,.0f}  ratio {value / base[key]:6.3f}"
        print(line)


if __name__ == "__main__":
    main()
