"""Local executor cost per trivial instance (SPEC §10: <= 3 ms, long-lived workers).

    .venv/bin/python benchmarks/bench_local_executor.py [--n 2000] [--workers 2]

Runs produce -> work[n] -> total through ``submit(executor=LocalExecutor(...), wait=True)``
(real driver steps, supervisor, worker processes, result files, SQLite store) for a small and
a large n; the difference divided by the extra elements is the marginal cost per instance,
free of the fixed start-up (interpreters, imports, store creation).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIPELINE = '''
from typing import Annotated
from reflow import Param, Result, Workflow

wf = Workflow("bench_local")


@wf.job()
def produce(n: Annotated[int, Param()] = 10) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(x: Annotated[int, Result(step="produce")]) -> int:
    return x + 1


@wf.job()
def total(xs: Annotated[list[int], Result(step="work")]) -> int:
    return sum(xs)
'''


def timed_run(base: Path, n: int, workers: int) -> float:
    from reflow.engine.entrypoints import load_workflow
    from reflow.executors.local import LocalExecutor

    wf = load_workflow(str(base / "bench_pipeline.py"), "bench_local")
    start = time.perf_counter()
    run = wf.submit(base / f"run-{n}-{time.time_ns()}", store=str(base / "m.db"),
                    executor=LocalExecutor(max_workers=workers), wait=True, force=True, n=n)
    elapsed = time.perf_counter() - start
    assert run.state == "SUCCESS", run.status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        (base / "bench_pipeline.py").write_text(PIPELINE)
        small = min(timed_run(base, args.small, args.workers) for _ in range(2))
        large = min(timed_run(base, args.n, args.workers) for _ in range(2))
    per = (large - small) / (args.n - args.small) * 1000
    print(f"local executor: {args.small} elements {small:.2f} s, {args.n} elements "
          f"{large:.2f} s, workers={args.workers}")
    print(f"local executor: {per:.2f} ms per trivial instance (floor: <= 3 ms)")


if __name__ == "__main__":
    main()
