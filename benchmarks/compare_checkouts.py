"""Side-by-side figures of two checkouts, for a machine too noisy for absolute numbers.

    git worktree add /tmp/base main~3
    .venv/bin/python benchmarks/compare_checkouts.py /tmp/base wide 10000 --rounds 5

Runs one scenario of ``run_benchmarks.py`` from each checkout in alternation, first one side
first, then the other (each in a fresh
interpreter that imports that checkout's reflow), then prints the median of every figure per
checkout and their ratio: drift of the machine between rounds hits both sides alike.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def run_child(checkout: Path, scenario: str, size: int, repeats: int) -> dict[str, Any]:
    script = checkout / "benchmarks" / "run_benchmarks.py"
    out = subprocess.run(
        [sys.executable, str(script), "--child", scenario, str(size), str(repeats)],
        capture_output=True, text=True, check=False, cwd=checkout,
    )
    if out.returncode:
        raise SystemExit(f"{script} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree)")
    ap.add_argument("scenario", choices=["wide", "chain", "status"])
    ap.add_argument("size", type=int)
    ap.add_argument("--repeats", type=int, default=3, help="repeats inside each child")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per checkout")
    args = ap.parse_args()
    sides = {"base": args.base.resolve(), "this": HERE}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        # Swap which side goes first every round, so neither always runs on a warmer machine.
        order = list(sides.items()) if round_ % 2 == 0 else list(sides.items())[::-1]
        for name, checkout in order:
            results[name].append(run_child(checkout, args.scenario, args.size, args.repeats))
    print(f"{args.scenario} {args.size}: medians of {args.rounds} rounds")
    for key in results["this"][0]:
        if key == "scenario" or key not in results["base"][0]:
            continue
        base = statistics.median(r[key] for r in results["base"])
        this = statistics.median(r[key] for r in results["this"])
        ratio = f"{this / base:6.3f}" if base else "     -"
        print(f"  {key:34s} base {base:10.4f}  this {this:10.4f}  ratio {ratio}")


if __name__ == "__main__":
    main()
