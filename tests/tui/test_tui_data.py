"""The TUI's reads: incremental, and sized for runs with 100,000 instances."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from reflow import Result, Workflow
from reflow.tui.data import FEED_LINES, Reader, task_state


def test_the_feed_starts_at_the_newest_transitions_then_follows(
    tmp_path: Path, sqlite_url: str
) -> None:
    wf = Workflow("feed")

    @wf.job()
    def items() -> list[int]:
        return list(range(FEED_LINES))

    @wf.array_job()
    def work(x: Annotated[int, Result(step="items")]) -> int:
        return x

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    every = run.store.transitions(run.run_id)
    assert len(every) > FEED_LINES
    reader = Reader(run.store)
    first = reader.new_transitions(run.run_id)
    assert [t.id for t in first] == [t.id for t in every[-FEED_LINES:]]
    assert reader.new_transitions(run.run_id) == []
    run.store.set_run_status(run.run_id, "FAILED")  # no transition: still nothing new
    assert reader.new_transitions(run.run_id) == []


def test_an_idle_runs_screen_tick_reads_no_counts_of_settled_runs(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = Workflow("idle")

    @wf.job()
    def one() -> int:
        return 1

    runs = [wf.run_local(tmp_path / f"r{i}", store=sqlite_url) for i in range(3)]
    store = runs[0].store
    reader = Reader(store)
    asked: list[str] = []
    counts = store.status_counts

    def counting(run_id: str) -> dict[str, dict[str, int]]:
        asked.append(run_id)
        return counts(run_id)

    monkeypatch.setattr(store, "status_counts", counting)
    first = reader.runs()
    assert len(asked) == 3  # just finished: not yet settled, so asked every time
    monkeypatch.setattr("reflow.tui.data.SETTLED_S", 0.0)
    asked.clear()
    reader.runs()
    assert len(asked) == 3
    asked.clear()
    assert reader.runs() == reader.runs() and asked == []  # settled and unchanged
    store.set_run_status(runs[1].run_id, "RUNNING")  # a retry moves the run row
    again = reader.runs()
    assert asked == [runs[1].run_id]
    assert [s.total for s in again] == [s.total for s in first]


def test_the_tui_never_asks_the_scheduler_whether_a_run_is_stalled(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chained driver waits in the scheduler's queue: only sacct could say whether it still
    does, and the TUI refreshes every 2 s (SPEC §7: it never calls the scheduler)."""
    import json
    import sqlite3

    import reflow.engine.driver_host as host
    from reflow.engine.results import run_state_dir

    wf = Workflow("chained")

    @wf.job()
    def one() -> int:
        return 1

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE runs SET status = 'RUNNING', options = ? WHERE id = ?",
                     (json.dumps({"executor": "slurm", "host": host.CHAINED}), run.run_id))
    host.write_heartbeat(run_state_dir(tmp_path / "r", run.run_id), host.CHAINED, job_id="4242")

    def no_scheduler(*args: object, **kwargs: object) -> None:
        raise AssertionError("the TUI called the scheduler")

    monkeypatch.setattr(host, "make_executor", no_scheduler)
    reader = Reader(run.store)
    assert reader.stalled(reader.run(run.run_id)) is None


@pytest.mark.parametrize(("counts", "state"), [
    ({}, "WAITING"),
    ({"PENDING": 50}, "PENDING"),
    ({"SUCCESS": 70, "PENDING": 50}, "RUNNING"),  # an in-process batch not written yet
    ({"SUCCESS": 70, "PENDING": 49, "FAILED": 1}, "FAILED"),
    ({"SUCCESS": 3, "SUBMITTED": 2}, "SUBMITTED"),
    ({"SUCCESS": 3, "CANCELLED": 1}, "CANCELLED"),
    ({"SUCCESS": 3}, "SUCCESS"),
])
def test_one_state_per_task_worst_news_first(counts: dict[str, int], state: str) -> None:
    assert task_state(counts) == state
