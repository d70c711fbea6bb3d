"""What the rows of one in-process instance cost SQLite, and what leaner schemas would save.

    .venv/bin/python benchmarks/store_floor_variants.py [--n 10000] [--repeats 5]

SPEC §10 asks for <= 25 µs per instance beyond the task bodies for a cold ``run_local``; SPEC §4
asks for an instance row and one transition row per state change. This records a real run of
the wide pipeline, then times bare sqlite3 writing that run's rows again into copies of its
store (as ``run_benchmarks.py``'s store floor does), with variants that leave indexes or
columns out, so the part of the target the data model alone takes can be judged. Figures are
µs per instance, medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run_benchmarks import (  # noqa: E402
    _rows_without_null_columns,
    rewrite_seconds,
    wide_workflow,
)

Rows = tuple[list[str], list[tuple[Any, ...]]]
NARROW_TRANSITIONS = ("id", "instance_id", "from_state", "to_state", "at", "detail")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        database = Path(d) / "m.db"
        run = wide_workflow("floors", args.n).run_local(Path(d) / "run",
                                                        store=f"sqlite:///{database}")
        source = sqlite3.connect(database)
        source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        instances = _rows_without_null_columns(source, "instances", run.run_id)
        transitions = _rows_without_null_columns(source, "transitions", run.run_id)
        source.close()
        count = len(instances[1])
        keep = [transitions[0].index(name) for name in NARROW_TRANSITIONS]
        narrow: Rows = (list(NARROW_TRANSITIONS),
                        [tuple(row[i] for i in keep) for row in transitions[1]])
        narrow_table = ("CREATE TABLE narrow_transitions (id INTEGER PRIMARY KEY, "
                        "instance_id INTEGER, from_state TEXT, to_state TEXT, at TEXT, "
                        "detail TEXT)")
        variants: list[tuple[str, Sequence[str], Sequence[tuple[str, Rows]]]] = [
            ("instance + transitions, as recorded", (),
             [("instances", instances), ("transitions", transitions)]),
            ("instance rows only", (), [("instances", instances)]),
            ("  without the lineage index", ("DROP INDEX ix_instances_lineage",),
             [("instances", instances)]),
            ("  without the summary index", ("DROP INDEX ix_instances_summary",),
             [("instances", instances)]),
            ("  without the unique latest index", ("DROP INDEX uq_instances_latest",),
             [("instances", instances)]),
            ("  without the cache index", ("DROP INDEX ix_instances_cache",),
             [("instances", instances)]),
            ("transition rows only (3 per instance)", ("PRAGMA foreign_keys = OFF",),
             [("transitions", transitions)]),
            ("  only SPEC §4's columns, no index", (narrow_table,),
             [("narrow_transitions", narrow)]),
        ]
        print(f"rows of {count:,} in-process instances written again, µs per instance "
              f"(median of {args.repeats}); SPEC §10 allows 25 for everything")
        for label, setup, tables in variants:
            take = partial(rewrite_seconds, database, run.run_id, tables, setup)
            figure = statistics.median(take() for _ in range(args.repeats)) * 1e6 / count
            print(f"  {label:42s} {figure:7.2f}")


if __name__ == "__main__":
    main()
