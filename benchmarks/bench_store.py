"""Manifest store hot paths against SPEC §10's budgets, on a SQLite file (or any store URL).

    python benchmarks/bench_store.py [--url URL] [--instances 10000] [--big 100000]

Prints the median (and minimum) of several repetitions for: recording a fully cached
10,000-instance task (find_cached + insert_instances with transitions), applying 10,000 state
changes, and status_counts on a run with 100,000 instances. On SQLite, inserts and state
changes are also timed through bare sqlite3 on the same file, so the ratio shows what the
store adds over the database's own cost on this machine. Rows carry realistic payloads (64-hex
hashes, a pre-image shaped like the engine's): row size, not row count, dominates SQLite writes.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url

from reflow.states import TaskState
from reflow.store import NewInstance, NewRun, NewTaskSpec, StateChange, Store


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _new_run(store: Store, run_id: str) -> None:
    store.create_run(
        NewRun(run_id, "bench", "bench.py", "/tmp/bench", "me", "login1", "RUNNING", "{}", "{}",
               "0", datetime.now(UTC)),
        [NewTaskSpec("prepare", 0, False, "1", "{}", "[]", "list[str]"),
         NewTaskSpec("convert", 1, True, "1", "{}", '["prepare"]', "str")],
    )  # fmt: skip


def _preimage(i: int) -> str:
    """The engine's pre-image shape for one fan-out element (canonical JSON, ~230 bytes)."""
    element = _hash(f"element-{i}")
    return (
        f'{{"after":{{}},"inputs":{{"nc_file":"{element}"}},'
        '"params":{"model":"era5","start":"2024-01-01"},'
        '"task":"convert","version":"1","workflow":"bench"}'
    )


def _rows(
    run_id: str, count: int, state: str, *, cached: bool = False, first: int = 0
) -> list[NewInstance]:
    now = datetime.now(UTC)
    return [
        NewInstance(
            run_id=run_id,
            workflow="bench",
            task_name="convert",
            array_index=i,
            attempt=1,
            state=state,
            identity=_hash(f"identity-{i}"),
            input_hash=_hash(f"input-{i}"),
            preimage=_preimage(i),
            input=f'{{"nc_file": "/data/in/file-{i:06d}.nc"}}',
            reason="cached" if cached else "new",
            cached=cached,
            output=f'"/data/out/file-{i:06d}.zarr"' if state == TaskState.SUCCESS else None,
            output_hash=_hash(f"output-{i}") if state == TaskState.SUCCESS else None,
            started_at=now,
            finished_at=now if state == TaskState.SUCCESS else None,
            detail="cached" if cached else "",
        )
        for i in range(first, first + count)
    ]


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e3:7.1f} ms (min {min(samples) * 1e3:6.1f})"


def _line(label: str, store: list[float], floor: list[float] | None, budget: str) -> None:
    text = f"{label:40s} {_ms(store)}"
    if floor:
        ratio = statistics.median(store) / statistics.median(floor)
        text += f"   plain sqlite3 {_ms(floor)}  x{ratio:.2f}"
    print(f"{text}   {budget}")


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


class PlainSqlite:
    """The same rows through bare sqlite3 ``executemany``: the floor the store is compared to.

    Tuples are built before the clock starts, so the difference to the store is everything
    the store adds (conversions, id allocation, the compare-and-set read, SQLAlchemy).
    """

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")

    def insert(self, rows: list[NewInstance]) -> float:
        top = self.conn.execute("SELECT coalesce(max(id), 0) FROM instances").fetchone()[0]
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        instances = [
            (top + n + 1, r.run_id, r.workflow, r.task_name, r.array_index, r.attempt, 1,
             r.state, r.identity, r.input_hash, r.preimage, r.input, r.output, r.output_hash,
             int(r.cached), r.reason, stamp, stamp, stamp, stamp)
            for n, r in enumerate(rows)
        ]  # fmt: skip
        transitions = [
            (top + n + 1, r.run_id, r.task_name, r.array_index, 1, r.state, stamp, r.detail)
            for n, r in enumerate(rows)
        ]
        start = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "INSERT INTO instances (id, run_id, workflow, task_name, array_index, attempt, "
            "latest, state, identity, input_hash, preimage, input, output, output_hash, cached, "
            "reason, created_at, started_at, finished_at, updated_at) "
            f"VALUES ({', '.join('?' * 20)})",
            instances,
        )
        self.conn.executemany(
            "INSERT INTO transitions (instance_id, run_id, task_name, array_index, attempt, "
            "to_state, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            transitions,
        )
        self.conn.execute("COMMIT")
        return time.perf_counter() - start

    def apply(self, run_id: str, ids: list[int]) -> float:
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        updates = [
            ("RUNNING", stamp, stamp, f"{1000 + n}", i, "PENDING") for n, i in enumerate(ids)
        ]
        transitions = [(i, run_id, "convert", n, 1, "PENDING", "RUNNING", stamp, "started")
                       for n, i in enumerate(ids)]  # fmt: skip
        start = time.perf_counter()
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "UPDATE instances SET state = ?, updated_at = ?, started_at = ?, job_id = ? "
            "WHERE id = ? AND state = ?",
            updates,
        )
        self.conn.executemany(
            "INSERT INTO transitions (instance_id, run_id, task_name, array_index, attempt, "
            "from_state, to_state, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            transitions,
        )
        self.conn.execute("COMMIT")
        return time.perf_counter() - start


def _changes(ids: list[int]) -> list[StateChange]:
    now = datetime.now(UTC)
    pending = frozenset({TaskState.PENDING.value})
    return [
        StateChange(i, pending, TaskState.RUNNING.value, "started",
                    {"started_at": now, "job_id": f"{1000 + n}"})
        for n, i in enumerate(ids)
    ]  # fmt: skip


def bench(url: str, count: int, big: int, repeats: int) -> None:
    with Store.open(url) as store:
        database = store.dialect == "sqlite" and make_url(url).database
        plain = PlainSqlite(Path(database)) if database else None
        _new_run(store, "source")
        store.insert_instances(_rows("source", count, TaskState.SUCCESS))
        identities = [_hash(f"identity-{i}") for i in range(count)]

        lookups: list[float] = []
        inserts: list[float] = []
        plain_inserts: list[float] = []
        for rep in range(repeats):
            _new_run(store, f"cached-{rep}")
            rows = _rows(f"cached-{rep}", count, TaskState.SUCCESS, cached=True)
            lookups.append(_timed(lambda: store.find_cached(identities)))
            inserts.append(_timed(functools.partial(store.insert_instances, rows)))
            if plain:
                _new_run(store, f"plain-{rep}")
                plain_rows = _rows(f"plain-{rep}", count, TaskState.SUCCESS, cached=True)
                plain_inserts.append(plain.insert(plain_rows))
        both = [a + b for a, b in zip(lookups, inserts, strict=True)]
        _line(f"find_cached({count:,})", lookups, None, "")
        _line(f"insert_instances({count:,}) + transitions", inserts, plain_inserts, "")
        _line("  both: a fully cached task recorded", both, None, "[budget < 100 ms]")

        applies: list[float] = []
        plain_applies: list[float] = []
        for rep in range(repeats):
            _new_run(store, f"apply-{rep}")
            changes = _changes(store.insert_instances(_rows(f"apply-{rep}", count, "PENDING")))
            applies.append(_timed(functools.partial(store.apply, changes)))
            if plain:
                _new_run(store, f"plain-apply-{rep}")
                ids = store.insert_instances(_rows(f"plain-apply-{rep}", count, "PENDING"))
                plain_applies.append(plain.apply(f"plain-apply-{rep}", ids))
        _line(f"apply({count:,})", applies, plain_applies, "[budget < 100 ms]")

        _new_run(store, "big")
        for start in range(0, big, 10_000):
            store.insert_instances(_rows("big", 10_000, TaskState.SUCCESS, first=start))
        summaries = [_timed(lambda: store.status_counts("big")) for _ in range(max(repeats, 5))]
        _line(f"status_counts({big:,} instances)", summaries, None, "[budget <= 15 ms]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="store URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'manifest.db'}"
        print(f"store: {url}")
        bench(url, args.instances, args.big, args.repeats)


if __name__ == "__main__":
    main()
