"""Engine benchmarks (SPEC §10): one command, figures printed beside their floors.

    .venv/bin/python benchmarks/run_benchmarks.py            # everything (~1-2 min)
    .venv/bin/python benchmarks/run_benchmarks.py --quick    # smaller sizes

Each scenario runs in a fresh subprocess so its peak RSS is its own. Every figure is the
median of several repeats; the machine is small and noisy, so compare ratios, not absolutes.

Two floors are printed: ``floor_s``, a bare loop calling the task functions and hashing their
outputs, and ``*store_floor_s``, bare sqlite3 inserting the very rows the run recorded into a
copy of its store (same schema, indexes and pragmas). ``*engine_us_*`` is what is left beyond
both: the engine's own Python per instance. First come this machine's readings of the floors
SPEC §10 quotes for the development machines (a bare call, JSON plus SHA-256 of a small value,
one row in a batched SQLite transaction), so the absolute targets can be judged against it.
"""

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reflow import Param, Result, Workflow  # noqa: E402


def wide_workflow(name: str, n: int) -> Any:
    wf = Workflow(name)

    @wf.job()
    def produce(n: Annotated[int, Param()] = n) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def work(x: Annotated[int, Result(step="produce")]) -> int:
        return x + 1

    @wf.job()
    def gather(xs: Annotated[list[int], Result(step="work")]) -> int:
        return len(xs)

    return wf


def chain_workflow(name: str, length: int) -> Any:
    wf = Workflow(name)

    def first() -> int:
        return 0

    wf.job(name="t0")(first)
    for i in range(1, length):

        def step(x: int) -> int:
            return x + 1

        step.__annotations__["x"] = Annotated[int, Result(step=f"t{i - 1}")]
        wf.job(name=f"t{i}")(step)
    return wf


def floor_wide(n: int) -> float:
    """A bare loop calling the same functions and hashing every output."""
    from reflow.core.hashing import value_hash

    t = time.perf_counter()
    xs = list(range(n))
    value_hash(xs)
    outs = []
    for x in xs:
        out = x + 1
        value_hash(out)
        outs.append(out)
    value_hash(len(outs))
    return time.perf_counter() - t


def store_floor(database: Path, run_id: str) -> float:
    """Bare sqlite3 writing a run's rows again: the part of a run no engine code can remove.

    The run's instances and transitions are read back, deleted from a copy of the store (same
    size, same indexes, same pragmas as reflow's connections) and inserted again in one
    transaction with ``executemany``, as fast as Python can hand rows to SQLite (columns NULL
    in every row left out, as reflow does).
    """
    source = sqlite3.connect(database)
    source.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    tables = [(table, _rows_without_null_columns(source, table, run_id))
              for table in ("instances", "transitions")]
    source.close()
    return rewrite_seconds(database, run_id, tables)


def rewrite_seconds(database: Path, run_id: str,
                    tables: Sequence[tuple[str, tuple[list[str], list[tuple[Any, ...]]]]],
                    setup: Sequence[str] = ()) -> float:
    """Seconds to insert ``tables`` (name, (columns, rows)) in one transaction into a copy of
    the store from which the run's rows were deleted; ``setup`` runs first (schema variants)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as d:
        copy = Path(d) / "floor.db"
        shutil.copyfile(database, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 0"):
            conn.execute(f"PRAGMA {pragma}")
        # Without foreign keys: no index serves ON DELETE SET NULL of the copies' sources, so
        # the cascade would scan the table once per deleted row.
        conn.execute("DELETE FROM transitions WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM instances WHERE run_id = ?", (run_id,))
        conn.execute("PRAGMA foreign_keys = ON")  # the inserts check them, as reflow's do
        for statement in setup:
            conn.execute(statement)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        for table, (columns, rows) in tables:
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                             f"VALUES ({', '.join('?' * len(columns))})", rows)
        conn.execute("COMMIT")
        took = time.perf_counter() - t
        conn.close()
    return took


def _rows_without_null_columns(
    conn: sqlite3.Connection, table: str, run_id: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """A run's rows of ``table``, leaving out columns that are NULL in all of them."""
    cursor = conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))
    names = [c[0] for c in cursor.description]
    rows = cursor.fetchall()
    keep = [i for i in range(len(names)) if any(row[i] is not None for row in rows)]
    return [names[i] for i in keep], [tuple(row[i] for i in keep) for row in rows]


def scenario_wide(n: int, repeats: int) -> dict[str, Any]:
    cold, cached, floors, cold_store, cached_store = [], [], [], [], []
    for r in range(repeats):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as d:
            url = f"sqlite:///{d}/m.db"
            wf = wide_workflow(f"wide{r}", n)
            from reflow.store import Store

            Store.open(url).close()  # schema creation is not part of the run
            t = time.perf_counter()
            first = wf.run_local(Path(d) / "a", store=url)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            run = wf.run_local(Path(d) / "b", store=url)
            cached.append(time.perf_counter() - t)
            assert run.status(as_dict=False)
            cold_store.append(store_floor(Path(d) / "m.db", first.run_id))
            cached_store.append(store_floor(Path(d) / "m.db", run.run_id))
        floors.append(floor_wide(n))
    c, k, f, cs, ks = (statistics.median(v) for v in (cold, cached, floors, cold_store,
                                                       cached_store))
    return {
        "scenario": f"wide N={n}",
        "cold_s": c,
        "cached_s": k,
        "floor_s": f,
        "cold_store_floor_s": cs,
        "cached_store_floor_s": ks,
        "cold_overhead_us_per_instance": (c - f) / n * 1e6,
        "cold_engine_us_per_instance": (c - f - cs) / n * 1e6,
        "cached_us_per_instance": k / n * 1e6,
        "cached_engine_us_per_instance": (k - ks) / n * 1e6,
    }


def scenario_chain(length: int, repeats: int) -> dict[str, Any]:
    times, floors, stores = [], [], []
    for r in range(repeats):
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as d:
            url = f"sqlite:///{d}/m.db"
            wf = chain_workflow(f"chain{r}", length)
            from reflow.store import Store

            Store.open(url).close()
            t = time.perf_counter()
            run = wf.run_local(Path(d) / "a", store=url)
            times.append(time.perf_counter() - t)
            stores.append(store_floor(Path(d) / "m.db", run.run_id))
        from reflow.core.hashing import value_hash

        t = time.perf_counter()
        for x in range(1, length + 1):
            value_hash(x)
        floors.append(time.perf_counter() - t)
    c, f, st = (statistics.median(v) for v in (times, floors, stores))
    return {
        "scenario": f"chain of {length}",
        "cold_s": c,
        "floor_s": f,
        "store_floor_s": st,
        "overhead_us_per_task": (c - f) / length * 1e6,
        "engine_us_per_task": (c - f - st) / length * 1e6,
    }


def scenario_status(n: int, repeats: int) -> dict[str, Any]:
    """The summary (SPEC §10), a page of the whole run's instances from its middle (what the
    TUI and ``retry`` read), and the whole ``status --json`` document, written to nowhere."""
    from reflow.status_report import status_text, write_status_json

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as d:
        url = f"sqlite:///{d}/m.db"
        wf = wide_workflow("status", n)
        run = wf.run_local(Path(d) / "a", store=url)
        store = run.store
        counts, texts, pages = [], [], []
        for _ in range(repeats):
            t = time.perf_counter()
            store.status_counts(run.run_id)
            counts.append(time.perf_counter() - t)
            t = time.perf_counter()
            status_text(store, run.run_id)
            texts.append(time.perf_counter() - t)
            t = time.perf_counter()
            store.latest_instances(run.run_id, offset=n // 2, limit=100)
            pages.append(time.perf_counter() - t)
        t = time.perf_counter()
        write_status_json(store, run.run_id, None, lambda text: None)
        document = time.perf_counter() - t
    return {
        "scenario": f"status of {n} instances",
        "status_counts_ms": statistics.median(counts) * 1e3,
        "status_text_ms": statistics.median(texts) * 1e3,
        "instances_page_ms": statistics.median(pages) * 1e3,
        "status_json_document_s (once)": document,
    }


def machine_floors() -> dict[str, float]:
    """This machine's readings of the floors SPEC §10 quotes for the development machines.

    The targets are absolute microseconds; these readings say how this machine compares, so
    a figure can be judged against the hardware it was measured on. Minimum of repeats: a
    floor is the best the machine does, not its average under noise.
    """
    import hashlib
    import timeit

    def noop() -> None:
        return None

    value = {"name": "sample", "values": [1, 2, 3], "scale": 1.5}
    calls = min(timeit.repeat(noop, number=200_000, repeat=5)) / 200_000

    def encode_and_hash() -> str:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    hashing = min(timeit.repeat(encode_and_hash, number=20_000, repeat=5)) / 20_000
    rows = [(i, f"name-{i}", "x" * 64) for i in range(50_000)]
    took = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as d:
        conn = sqlite3.connect(Path(d) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, digest TEXT)")
        for _ in range(5):
            conn.execute("DELETE FROM t")
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
            took.append(time.perf_counter() - t)
        conn.close()
    return {
        "bare_call_us": calls * 1e6,
        "json_sha256_small_value_us": hashing * 1e6,
        "sqlite_batched_row_us": min(took) / len(rows) * 1e6,
    }


SCENARIOS = {"wide": scenario_wide, "chain": scenario_chain, "status": scenario_status}


def run_child(name: str, size: int, repeats: int) -> dict[str, Any]:
    """Run one scenario in a fresh interpreter and add its peak RSS."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, str(size), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("SCENARIO", "SIZE", "REPEATS"))
    args = ap.parse_args()
    if args.child:
        import resource

        name, size, repeats = args.child[0], int(args.child[1]), int(args.child[2])
        result = SCENARIOS[name](size, repeats)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    plan = (
        [("wide", 1000, 5), ("wide", 10000, 5), ("chain", 200, 5), ("chain", 1000, 5),
         ("status", 100000, 15)]
        if not args.quick
        else [("wide", 1000, 3), ("chain", 50, 3), ("status", 10000, 9)]
    )
    targets = {
        "cached_us_per_instance": ("<= 20 us (0.2 s for 10,000)", 20.0),
        "cold_overhead_us_per_instance": ("<= 25 us", 25.0),
        "overhead_us_per_task": ("<= 40 us", 40.0),
        "status_counts_ms": ("<= 15 ms", 15.0),
    }
    spec_floors = {"bare_call_us": "0.4", "json_sha256_small_value_us": "5",
                   "sqlite_batched_row_us": "2-3"}
    print("== this machine's floors (SPEC §10's development machines in brackets)")
    for key, value in machine_floors().items():
        print(f"  {key:34s} {value:10.4f}   [{spec_floors[key]}]")
    for name, size, repeats in plan:
        result = run_child(name, size, repeats)
        print(
            f"\n== {result.pop('scenario')}  (median of {repeats}, "
            f"peak RSS {result.pop('peak_rss_mb'):.0f} MB)"
        )
        for key, value in result.items():
            target = targets.get(key)
            mark = ""
            if target:
                mark = f"   target {target[0]}: {'OK' if value <= target[1] else 'MISSED'}"
            print(f"  {key:34s} {value:10.4f}{mark}")


if __name__ == "__main__":
    main()
