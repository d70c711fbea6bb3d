"""run_local records behind the work: complete history, real times, and slow work visible."""

from __future__ import annotations

import itertools
import time
from typing import Annotated

from reflow import Result, Workflow
from reflow.core.codec import loads
from reflow.store import Store


def _states_in_store(url: str, workflow: str) -> dict[str, str]:
    with Store.open(url) as store:
        runs = store.list_runs(workflow=workflow)
        if not runs:
            return {}
        return {i.task_name: i.state for i in store.latest_instances(runs[0].run_id)}


def test_fast_chain_is_recorded_with_both_transitions_at_their_times(tmp_path, sqlite_url) -> None:
    wf = Workflow("wb_chain")

    @wf.job()
    def a() -> int:
        return 1

    @wf.job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x + 1

    @wf.job()
    def c(x: Annotated[int, Result(step="b")]) -> int:
        return x + 1

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    store = Store.open(sqlite_url)
    rows = {i.task_name: i for i in store.latest_instances(run.run_id)}
    assert {t: (r.state, r.exit_code) for t, r in rows.items()} == {
        "a": ("SUCCESS", 0), "b": ("SUCCESS", 0), "c": ("SUCCESS", 0)}
    history = store.transitions(run.run_id)
    assert [(t.task_name, t.from_state, t.to_state) for t in history] == [
        (task, *change) for task in "abc"
        for change in ((None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCESS"))
    ]
    for t in history:
        row = rows[t.task_name]
        assert t.instance_id == row.id
        assert t.at == {"PENDING": row.created_at, "RUNNING": row.started_at,
                        "SUCCESS": row.finished_at}[t.to_state]
    assert [t.at for t in history] == sorted(t.at for t in history)
    store.close()


def test_each_element_starts_when_its_body_starts_not_when_its_batch_does(
    tmp_path, sqlite_url
) -> None:
    wf = Workflow("wb_starts")

    @wf.job()
    def items() -> list[int]:
        return [0, 1, 2]

    @wf.array_job()
    def nap(x: Annotated[int, Result(step="items")]) -> int:
        time.sleep(0.05)  # the work being timed, not synchronisation
        return x

    run = wf.run_local(tmp_path / "r", store=sqlite_url)  # one worker: one element at a time
    with Store.open(sqlite_url) as store:
        rows = store.latest_instances(run.run_id, "nap")
        running = {t.instance_id: t.at for t in store.transitions(run.run_id)
                   if t.to_state == "RUNNING"}
    for before, after in itertools.pairwise(rows):
        assert after.started_at is not None and before.finished_at is not None
        assert after.started_at >= before.finished_at  # queued, not RUNNING, until its turn
    for row in rows:
        assert running[row.id] == row.started_at
        assert row.created_at <= row.started_at < row.finished_at


def test_slow_task_shows_running_and_earlier_work_is_written_while_it_runs(
    tmp_path, sqlite_url
) -> None:
    wf = Workflow("wb_slow")

    @wf.job()
    def fast() -> int:
        return 1

    @wf.job()
    def slow(x: Annotated[int, Result(step="fast")]) -> dict[str, str]:
        deadline = time.monotonic() + 20
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            seen = _states_in_store(sqlite_url, "wb_slow")
            if seen.get("slow") == "RUNNING":
                break
            time.sleep(0.05)
        return seen

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    with Store.open(sqlite_url) as store:
        rows = {i.task_name: i for i in store.latest_instances(run.run_id)}
    seen = loads(rows["slow"].output or "null")
    assert seen == {"fast": "SUCCESS", "slow": "RUNNING"}
    assert rows["slow"].state == "SUCCESS"
    with Store.open(sqlite_url) as store:
        slow_history = [(t.from_state, t.to_state) for t in store.transitions(run.run_id)
                        if t.task_name == "slow"]
    assert slow_history == [(None, "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "SUCCESS")]


def test_with_several_workers_a_finished_element_is_written_while_a_slow_one_runs(
    tmp_path, sqlite_url
) -> None:
    wf = Workflow("wb_parallel")

    @wf.job()
    def items() -> list[int]:
        return [0, 1]

    @wf.array_job()
    def work(x: Annotated[int, Result(step="items")]) -> str:
        if x == 0:
            return "fast"
        deadline = time.monotonic() + 20  # element 1 waits to see element 0 in the store
        while time.monotonic() < deadline:
            with Store.open(sqlite_url) as store:
                runs = store.list_runs(workflow="wb_parallel")
                rows = store.latest_instances(runs[0].run_id, "work") if runs else []
            if [r.state for r in rows if r.array_index == 0] == ["SUCCESS"]:
                return "saw element 0 recorded"
            time.sleep(0.05)
        return "element 0 was held back"

    run = wf.run_local(tmp_path / "r", store=sqlite_url, max_workers=2)
    with Store.open(sqlite_url) as store:
        outputs = [loads(r.output or "null") for r in store.latest_instances(run.run_id, "work")]
    assert outputs == ["fast", "saw element 0 recorded"]
