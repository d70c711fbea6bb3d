"""Example pipeline: generate input files, process each in an array task, gather a report.

Run it end to end on the embedded defaults (SQLite store in the XDG cache, local worker
processes; without ``--executor`` a scheduler found on PATH, such as ``sbatch``, is used):

    python examples/fanout.py submit --run-dir /tmp/reflow-demo --executor local --wait
    python examples/fanout.py status <run id>

or from Python: ``wf.run_local("/tmp/reflow-demo", samples=8)``. Run it twice: the second run
is fully cached; change ``--scale`` and only the work that depends on it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from reflow import Param, Result, RunDir, Workflow

wf = Workflow("fanout_demo")


@wf.job(cpus=1, time="00:05:00", mem="1G")
def generate(
    samples: Annotated[int, Param(help="How many input files to create")] = 8,
    seed: Annotated[int, Param(help="Seed for the synthetic data")] = 1,
    run_dir: RunDir = RunDir(),
) -> list[Path]:
    """Write one small CSV per sample (stands in for raw instrument files)."""
    raw = Path(run_dir) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(samples):
        path = raw / f"sample_{i:04d}.csv"
        digest = hashlib.sha256(f"{seed}-{i}".encode()).digest()
        rows = [f"{j},{b}" for j, b in enumerate(digest[:16])]
        path.write_text("t,value\n" + "\n".join(rows) + "\n")
        files.append(path)
    return files


@wf.array_job(cpus=1, mem="2G", array_parallelism=4)
def measure(
    csv: Annotated[Path, Result(step="generate")],
    scale: Annotated[float, Param(help="Multiplier applied to every value")] = 1.0,
    method: Annotated[Literal["mean", "max"], Param(help="Statistic to compute")] = "mean",
) -> dict[str, float]:
    """Compute one statistic per input file."""
    values = [float(line.split(",")[1]) * scale for line in csv.read_text().splitlines()[1:]]
    stat = sum(values) / len(values) if method == "mean" else max(values)
    return {"file": csv.name, "value": round(stat, 6)}  # type: ignore[dict-item]


@wf.job()
def report(
    stats: Annotated[list[dict[str, float]], Result(step="measure")],
    run_dir: RunDir = RunDir(),
) -> Path:
    """Gather every measurement into one JSON report (a Path output: verified by size/mtime)."""
    out = Path(run_dir) / "report.json"
    out.write_text(json.dumps({"n": len(stats), "stats": stats}, indent=2) + "\n")
    return out


if __name__ == "__main__":
    wf.cli()
