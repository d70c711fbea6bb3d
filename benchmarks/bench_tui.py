"""TUI refresh tick on a 100,000-instance run (SPEC §10: each tick ≤ 50 ms of query time).

    python benchmarks/bench_tui.py [--url URL] [--big 100000] [--repeats 20]

A tick is exactly what the run screen reads through ``reflow.tui.data.Reader``: the run row,
per-task counts, cache counts, one page of the selected task's instances (at the first page
and deep into the array) and the transitions since the last tick. The figure printed is the
median (and worst) of several ticks after the feed caught up. Then the real app is opened
headless on the run, pages through it and refreshes; its peak RSS is printed to show memory
stays bounded (no tick ever loads the whole array).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reflow.states import TaskState
from reflow.store import NewInstance, NewRun, NewTaskSpec, StateChange, Store
from reflow.tui.data import PAGE_SIZE, Reader

RUN = "bench-tui"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build(store: Store, big: int) -> None:
    """One run: a singleton, a ``big``-element array (some failed, some cached), a gather."""
    store.create_run(
        NewRun(RUN, "bench", "bench.py", "/tmp/bench", "me", "login1", "RUNNING", "{}", "{}",
               "0", datetime.now(UTC)),
        [NewTaskSpec("prepare", 0, False, "1", '{"after": []}', "[]", "list[str]"),
         NewTaskSpec("convert", 1, True, "1", '{"after": []}', '["prepare"]', "str"),
         NewTaskSpec("gather", 2, False, "1", '{"after": []}', '["convert"]', "int")],
    )  # fmt: skip
    now = datetime.now(UTC)
    for start in range(0, big, 10_000):
        rows = []
        for i in range(start, min(big, start + 10_000)):
            state = TaskState.FAILED if i % 97 == 0 else TaskState.SUCCESS
            rows.append(NewInstance(
                run_id=RUN, workflow="bench", task_name="convert", array_index=i, attempt=1,
                state=state, identity=_hash(f"id-{i}"), input_hash=_hash(f"in-{i}"),
                preimage='{"task":"convert","version":"1"}', input="{}",
                reason="cached" if i % 3 == 0 else "new", cached=i % 3 == 0,
                output='"x"' if state == TaskState.SUCCESS else None,
                started_at=now, finished_at=now, detail="bench",
            ))  # fmt: skip
        store.insert_instances(rows)


def bench_ticks(store: Store, big: int, repeats: int) -> None:
    reader = Reader(store)
    start = time.perf_counter()
    while reader.new_transitions(RUN):  # catch up with the run's history, batch by batch
        pass
    print(
        f"catch up with {big:,} transitions (once, at open)   "
        f"{(time.perf_counter() - start) * 1e3:8.1f} ms"
    )
    (pending,) = store.insert_instances([NewInstance(
        run_id=RUN, workflow="bench", task_name="gather", array_index=None, attempt=1,
        state="PENDING", identity=_hash("g"), input_hash=_hash("g"), preimage="{}", input="{}",
        reason="new")])  # fmt: skip
    deep = (big // 2) // PAGE_SIZE * PAGE_SIZE
    for live in (True, False):
        samples: list[float] = []
        for rep in range(repeats):
            if live:  # something happens between ticks, as in a running run
                store.apply(
                    [
                        StateChange(
                            pending,
                            frozenset({"PENDING", "RUNNING"}),
                            "RUNNING" if rep % 2 == 0 else "PENDING",
                            "tick",
                        )
                    ]
                )
            offset = 0 if rep % 2 == 0 else deep
            t0 = time.perf_counter()
            reader.run(RUN)
            tasks = reader.tasks(RUN)
            page = reader.instances(RUN, "convert", offset)
            new = reader.new_transitions(RUN)
            samples.append(time.perf_counter() - t0)
            assert len(page) == PAGE_SIZE and len(tasks) == 3 and bool(new) == live
        median, worst = statistics.median(samples) * 1e3, max(samples) * 1e3
        what = "live run (a change per tick)" if live else "idle run (no change)      "
        print(
            f"refresh tick, {big:,} instances, {what}  {median:8.1f} ms "
            f"(worst {worst:.1f})  [<= 50 ms]"
        )


def bench_app(store: Store, big: int) -> None:
    from reflow.tui.app import ReflowApp

    async def drive() -> float:
        app = ReflowApp(store, RUN, refresh_interval=None, user="me")
        async with app.run_test(size=(120, 40)) as pilot:
            t0 = time.perf_counter()
            await pilot.press("down")  # select the array
            await app.workers.wait_for_complete()
            for _ in range(20):
                await pilot.press("n")
                await app.workers.wait_for_complete()
            screen = app.screen
            for _ in range(10):
                await screen.reload()  # type: ignore[attr-defined]
            elapsed = time.perf_counter() - t0
            await pilot.press("q")
        return elapsed

    elapsed = asyncio.run(drive())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"app: select, 20 pages, 10 refreshes on {big:,}     {elapsed * 1e3:8.1f} ms, "
        f"peak RSS {rss:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="store URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'manifest.db'}"
        print(f"store: {url}")
        with Store.open(url) as store:
            build(store, args.big)
            bench_ticks(store, args.big, args.repeats)
            bench_app(store, args.big)


if __name__ == "__main__":
    main()
