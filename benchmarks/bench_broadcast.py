"""A large value broadcast to an array (decision 57): store size, memory and time.

    .venv/bin/python benchmarks/bench_broadcast.py                   # this checkout
    .venv/bin/python benchmarks/bench_broadcast.py --checkout /tmp/base   # another one

Runs ``files -> pick[elements]``, where every element receives the whole list of ``--items``
file names (about 40 bytes each), cold and then fully cached, in a fresh process per
checkout, and prints the store's size after both runs, the peak RSS and the two wall times.
Before shared inputs, the list was stored (and held in memory) once per element.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, resource, sqlite3, sys, tempfile, time
from pathlib import Path
from typing import Annotated
sys.path.insert(0, sys.argv[1])
from reflow import Result, Workflow

elements, items = int(sys.argv[2]), int(sys.argv[3])
wf = Workflow("broadcast")

@wf.job()
def files() -> list[str]:
    return [f"/scratch/project/data/file-{i:07d}.nc" for i in range(items)]

@wf.job()
def indices() -> list[int]:
    return list(range(elements))

@wf.array_job()
def pick(i: Annotated[int, Result(step="indices")],
         names: Annotated[list[str], Result(step="files", broadcast=True)]) -> str:
    return names[i % len(names)]

d = tempfile.mkdtemp()
store = f"{d}/m.db"
t = time.perf_counter()
wf.run_local(Path(d) / "a", store=store)
cold = time.perf_counter() - t
t = time.perf_counter()
wf.run_local(Path(d) / "b", store=store)
cached = time.perf_counter() - t
sqlite3.connect(store).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
size = sum(os.path.getsize(store + s) for s in ("", "-wal") if os.path.exists(store + s))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
print(f'{{"cold_s": {cold}, "cached_s": {cached}, "store_mb": {size / 1e6}, "rss_mb": {rss}}}')
"""


def measure(checkout: Path, elements: int, items: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(checkout), str(elements), str(items)],
                         capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, default=HERE)
    parser.add_argument("--elements", type=int, default=200)
    parser.add_argument("--items", type=int, default=25_000)
    args = parser.parse_args()
    figures = measure(args.checkout, args.elements, args.items)
    print(f"== broadcast of {args.items} names to {args.elements} elements ({args.checkout})")
    for key, value in figures.items():
        print(f"  {key:12s} {value:10.2f}")


if __name__ == "__main__":
    main()
