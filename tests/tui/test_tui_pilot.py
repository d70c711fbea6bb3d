"""Pilot tests: keys against real runs in a real store; effects are asserted in the store."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Static
from textual.worker import WorkerCancelled
from tui_demo import Demo
from tui_pipeline import demo

import reflow.actions
from reflow.errors import StoreError
from reflow.store import InstanceRecord, StateChange, Store
from reflow.tui.app import ReflowApp
from reflow.tui.base import Table
from reflow.tui.instance_screen import InstanceScreen
from reflow.tui.modals import ConfirmScreen, HelpScreen, TextScreen
from reflow.tui.run_screen import RunScreen
from reflow.tui.runs_screen import RunsScreen
from reflow.tui.verify_screen import VerifyScreen

pytestmark = pytest.mark.asyncio


def latest(store: Store, run_id: str, task: str) -> list[InstanceRecord]:
    return store.latest_instances(run_id, task)


def static_text(app: ReflowApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settle(app: ReflowApp, pilot: object) -> None:
    """Wait for the current screen's first load and for running workers (actions, ticks)."""
    loaded = getattr(app.screen, "loaded", None)
    if loaded is not None:
        await loaded.wait()
    for worker in list(app.workers):
        # An exclusive tick replaced by a newer one ends cancelled: expected, not a failure.
        with contextlib.suppress(WorkerCancelled):
            await worker.wait()
    await pilot.pause()  # type: ignore[attr-defined]


def finished(store: Store, run_id: str, timeout: float = 60) -> str:
    """Poll until the run is terminal: the TUI hands in-process work to a detached process."""
    deadline = time.monotonic() + timeout
    while (status := store.get_run(run_id).status) == "RUNNING":
        assert time.monotonic() < deadline, f"run {run_id} still RUNNING after {timeout}s"
        time.sleep(0.05)
    return status


async def screen_reload(app: ReflowApp) -> None:
    screen = app.screen
    assert isinstance(screen, RunScreen | RunsScreen)
    await screen.reload()


async def open_work(app: ReflowApp, pilot: object) -> None:
    """Select task ``work`` on the run screen and wait for its instances."""
    await settle(app, pilot)
    await pilot.press("down")  # type: ignore[attr-defined]
    await settle(app, pilot)
    assert app.screen.task_name == "work"  # type: ignore[attr-defined]


async def test_retry_key_makes_a_new_attempt(runs: Demo, tmp_path: Path) -> None:
    runs.flag.write_text("fixed")
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert "1 instance(s) of task 'work' got a new attempt" in app.last_message
        assert finished(runs.store, runs.second) == "SUCCESS"
        work = latest(runs.store, runs.second, "work")
        assert [(w.attempt, w.state) for w in work] == [
            (1, "SUCCESS"), (2, "SUCCESS"), (1, "SUCCESS")]
        assert work[1].reason == "retry"
        # run by a detached process that recorded itself, not by the TUI's own process
        options = json.loads(runs.store.get_run(runs.second).options)
        assert options["pid"] != os.getpid()
        log = tmp_path / "b" / "logs" / "inline.log"
        deadline = time.monotonic() + 30  # the process logs its end after the run's status
        while "ended SUCCESS" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        await screen_reload(app)
        await settle(app, pilot)
        assert "SUCCESS" in static_text(app, "#title")


async def test_retry_on_a_task_with_nothing_failed_retries_the_whole_run(runs: Demo) -> None:
    """The run screen opens with its cursor on the first task, which had not failed: `r`
    said "nothing failed in task 'make'" while 'work' waited for its retry."""
    runs.flag.write_text("fixed")
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        assert app.screen.task_name != "work"  # type: ignore[attr-defined]
        await pilot.press("r")
        await settle(app, pilot)
        assert "1 instance(s) of the whole run got a new attempt" in app.last_message
        assert finished(runs.store, runs.second) == "SUCCESS"
        work = latest(runs.store, runs.second, "work")
        assert [w.attempt for w in work] == [1, 2, 1]


async def test_retry_from_runs_screen_retries_the_whole_run(runs: Demo) -> None:
    runs.flag.write_text("fixed")
    app = runs.app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#runs", Table)
        assert table.row_count == 2
        assert table.get_row_at(0)[1] == runs.second  # newest first
        await pilot.press("r")
        await settle(app, pilot)
        assert "the whole run" in app.last_message
        assert finished(runs.store, runs.second) == "SUCCESS"
        assert runs.store.get_run(runs.first).status == "FAILED"


async def test_the_runs_cursor_stays_on_its_run_when_a_new_run_appears(runs: Demo) -> None:
    """Kept by row number, the cursor slid onto another run, which `r` then retried."""
    app = runs.app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("down")
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.selection().run_id == runs.first
        columns = ("workflow, entrypoint, run_dir, username, host, status, parameters, "
                   "options, reflow_version, updated_at")
        with sqlite3.connect(runs.url.removeprefix("sqlite:///")) as conn:
            conn.execute(f"INSERT INTO runs (id, created_at, {columns}) SELECT "
                         f"'demo-20300102-0123456789', '2030-01-02 00:00:00', {columns} "
                         "FROM runs WHERE id = ?", (runs.second,))
        await screen_reload(app)
        table = screen.query_one("#runs", Table)
        assert table.row_count == 3 and table.get_row_at(0)[1] == "demo-20300102-0123456789"
        assert screen.selection().run_id == runs.first


async def test_readonly_refuses_with_a_message(runs: Demo) -> None:
    app = runs.app(runs.second, readonly=True)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        for key in ("r", "f", "c"):
            await pilot.press(key)
            await settle(app, pilot)
            assert "refused: read-only (--readonly)" in app.last_message
            assert not isinstance(app.screen, ConfirmScreen)
        assert [w.attempt for w in latest(runs.store, runs.second, "work")] == [1, 1, 1]
        assert "read-only" in static_text(app, "#title")


async def test_other_users_runs_are_readonly_by_default(runs: Demo) -> None:
    app = runs.app(runs.second, user="bob")
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert "belongs to alice, not bob" in app.last_message
        assert [w.attempt for w in latest(runs.store, runs.second, "work")] == [1, 1, 1]


@pytest.mark.skipif(not hasattr(reflow.actions, "force_rerun"),
                    reason="reflow.actions.force_rerun(run, task) -> int is not there yet")
async def test_force_key_asks_then_recomputes_task_and_dependants(runs: Demo) -> None:
    runs.flag.write_text("fixed")
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(app, pilot)
        assert app.last_message == "not confirmed: nothing changed"
        assert [w.reason for w in latest(runs.store, runs.second, "work")] == [
            "param-changed:factor"] * 3
        await pilot.press("f")
        await pilot.press("y")
        await settle(app, pilot)
        assert finished(runs.store, runs.second) == "SUCCESS"
        assert [w.reason for w in latest(runs.store, runs.second, "work")] == ["forced"] * 3
        assert all(w.state == "SUCCESS" for w in latest(runs.store, runs.second, "work"))
        (total,) = latest(runs.store, runs.second, "total")
        assert (total.state, total.attempt) == ("SUCCESS", 2)  # its skip marker was attempt 1
        assert "force:" in app.last_message


async def test_cancel_key_asks_and_leaves_a_finished_run_alone(runs: Demo) -> None:
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.last_message == "not confirmed: nothing changed"
        await pilot.press("c", "y")
        await settle(app, pilot)
        # 'work' has nothing active, so the key meant the whole run, which has nothing either
        assert "cancel: nothing active in the whole run" in app.last_message
        assert runs.store.get_run(runs.second).status == "FAILED"


async def test_cancel_key_cancels_a_local_executor_run(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("reflow.engine.dispatch", reason="the local executor path is not there")
    from tui_pipeline import slow

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the driver re-imports it

    run = slow.submit(tmp_path / "s", store=sqlite_url, executor="local")
    store = Store.open(sqlite_url)
    deadline = time.monotonic() + 30
    while not store.latest_instances(run.run_id, "sleepy", states=["RUNNING"]):
        assert time.monotonic() < deadline, "the local executor never started 'sleepy'"
        time.sleep(0.05)
    app = ReflowApp(store, run.run_id, refresh_interval=None, user=store.get_run(run.run_id).user)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("c", "y")
        await settle(app, pilot)
    assert "cancelled" in app.last_message
    assert {r.state for r in store.latest_instances(run.run_id, "sleepy")} == {"CANCELLED"}


async def test_why_key_explains_the_selected_instance(runs: Demo) -> None:
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("enter", "down", "w")
        await settle(app, pilot)
        assert isinstance(app.screen, TextScreen)
        assert app.screen.title_text.startswith("why work[1]")
        assert "work[1]: param-changed:factor" in app.screen.body
        assert "param:factor: 2 -> 3" in app.screen.body
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


async def test_enter_drills_in_and_esc_goes_back(runs: Demo) -> None:
    app = runs.app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == runs.second
        await open_work(app, pilot)
        await pilot.press("enter")  # into the instance table
        assert app.focused is app.screen.query_one("#instances")
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, InstanceScreen)
        text = static_text(app, "#detail")
        assert "work[1]  attempt 1  FAILED" in text
        assert "RuntimeError: boom: flag missing" in text
        assert "param:factor: 2 -> 3" in text
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")  # instance table -> task table
        assert app.focused is app.screen.query_one("#tasks")
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("escape")  # nothing above the runs screen: stays
        assert isinstance(app.screen, RunsScreen)


async def test_filter_narrows_runs_and_swallows_letter_keys(runs: Demo) -> None:
    app = runs.app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*runs.first[-6:], "q")  # q is text here, not quit
        assert app.is_running
        table = app.screen.query_one("#runs", Table)
        assert table.row_count == 0
        await pilot.press("backspace")
        assert [table.get_row_at(0)[1]] == [runs.first] and table.row_count == 1
        await pilot.press("enter")
        assert app.focused is app.screen.query_one("#runs")
        await pilot.press("escape")
        assert table.row_count == 2


async def test_filter_finds_runs_older_than_the_list_shows(
        runs: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list holds the newest RUNS_SHOWN runs (here 1 of 2) and says so; `/` searches
    the store, so the older run is found although it was not listed."""
    import reflow.tui.runs_screen

    monkeypatch.setattr(reflow.tui.runs_screen, "RUNS_SHOWN", 1)
    app = runs.app()
    async with app.run_test() as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#runs", Table)
        assert [table.get_row_at(0)[1]] == [runs.second] and table.row_count == 1
        title = str(app.screen.query_one("#title", Static).render())
        assert "newest 1 runs shown, / searches all" in title
        await pilot.press("slash", *runs.first[-6:])
        await settle(app, pilot)
        assert [table.get_row_at(0)[1]] == [runs.first] and table.row_count == 1


async def test_task_filter_on_run_screen(runs: Demo) -> None:
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"fail", "enter")
        tasks = app.screen.query_one("#tasks", Table)
        assert [str(k.value) for k in tasks.rows] == ["work"]


async def test_verify_key_lists_failed_checks(runs: Demo, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLOW_TUI_STALE", "1")
    third = demo.run_local(tmp_path / "c", store=runs.url, on_error="continue", verify=True)
    app = runs.app(third.run_id, user=third.record().user)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await settle(app, pilot)
        assert isinstance(app.screen, VerifyScreen)
        table = app.screen.query_one("#failures", Table)
        row = table.get_row_at(0)
        assert row[0] == "stamp" and row[1] == "-" and row[2] == "tui_pipeline:still_valid"
        assert "returned False" in row[4]
        assert app.last_message == "1 failed check(s)"
        # the whole reason under the table, whatever the width
        assert static_text(app, "#failure-detail") == f"{row[2]}: {row[4]}"
        # w and l act on the failed instance; enter opens it
        assert app.selection().task == "stamp" and app.selection().has_index
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, InstanceScreen)
        (stamp,) = latest(runs.store, third.run_id, "stamp")
        assert app.screen.instance_id == stamp.id


async def test_help_lists_every_key_and_q_quits_with_zero(runs: Demo) -> None:
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query(Static)[1].render())
        for key in ("enter", "esc", "/", "r", "f", "c", "w", "v", "l", "?", "q"):
            assert f" {key}  " in f" {text}", key
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_instances_are_paged(tmp_path: Path, sqlite_url: str) -> None:
    run = demo.run_local(tmp_path / "big", store=sqlite_url, on_error="continue", n=120)
    app = ReflowApp(run.store, run.run_id, refresh_interval=None, user=run.record().user)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        table = app.screen.query_one("#instances", Table)
        assert table.row_count == 50
        assert "instances 1-50 of 120" in static_text(app, "#page")
        for first, label in ((50, "51-100"), (100, "101-120")):
            await pilot.press("n")
            await settle(app, pilot)
            assert table.get_row_at(0)[0] == str(first)
            assert f"instances {label} of 120" in static_text(app, "#page")
        assert table.row_count == 20
        await pilot.press("n")
        assert app.last_message == "no more pages"
        await pilot.press("p")
        await settle(app, pilot)
        assert "instances 51-100 of 120" in static_text(app, "#page")
        await pilot.press("P")  # first page, then last, one key each
        await settle(app, pilot)
        assert "instances 1-50 of 120" in static_text(app, "#page")
        await pilot.press("N")
        await settle(app, pilot)
        assert "instances 101-120 of 120" in static_text(app, "#page")


async def test_live_refresh_shows_new_transitions(runs: Demo) -> None:
    app = runs.app(runs.second, refresh_interval=0.05)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        (failed,) = [w for w in latest(runs.store, runs.second, "work") if w.state == "FAILED"]
        (new_id,) = runs.store.new_attempts([failed.id], detail="retried elsewhere")
        runs.store.apply([StateChange(new_id, frozenset({"RETRYING"}), "RUNNING", "picked up")])
        deadline = time.monotonic() + 10
        while "work[1]#2 RETRYING → RUNNING" not in static_text(app, "#feed"):
            assert time.monotonic() < deadline, static_text(app, "#feed")
            await pilot.pause(0.05)
        feed = static_text(app, "#feed").splitlines()
        assert "work[1]#2 RETRYING → RUNNING  picked up" in feed[0]
        tasks = app.screen.query_one("#tasks", Table)
        while str(tasks.get_cell("work", "state")) != "RUNNING":
            assert time.monotonic() < deadline
            await pilot.pause(0.05)


async def test_lost_store_shows_a_banner_and_recovers(runs: Demo,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        banner = screen.query_one("#banner", Static)
        assert not banner.display

        def unreachable(run_id: str) -> dict[str, dict[str, int]]:
            raise StoreError("database is locked past the 30 s deadline")

        monkeypatch.setattr(runs.store, "status_counts", unreachable)
        await screen.reload()
        assert banner.display
        assert "store unreachable: database is locked" in str(banner.render())
        monkeypatch.undo()
        await screen.reload()
        assert not banner.display


async def test_log_key_reports_where_the_log_is_when_it_cannot_suspend(runs: Demo,
                                                                       tmp_path: Path) -> None:
    log = tmp_path / "work-1.err"
    log.write_text("line 1\nthe last line\n")
    (failed,) = [w for w in latest(runs.store, runs.second, "work") if w.state == "FAILED"]
    with sqlite3.connect(runs.url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE instances SET stderr_path = ? WHERE id = ?", (str(log), failed.id))
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await open_work(app, pilot)
        await pilot.press("enter", "down", "l")
        assert app.last_message == f"log: cannot suspend this terminal; the log is {log}"
        await pilot.press("up", "l")
        assert app.last_message.startswith("log: no log file recorded for work[0]")
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert "the last line" in static_text(app, "#detail")


async def test_a_stalled_run_is_flagged_with_the_way_to_resume_it(runs: Demo) -> None:
    """An in-process run whose process is gone (killed, node rebooted) while RUNNING."""
    import json
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with sqlite3.connect(runs.url.removeprefix("sqlite:///")) as conn:
        (options,) = conn.execute("SELECT options FROM runs WHERE id = ?",
                                  (runs.second,)).fetchone()
        options = json.dumps({**json.loads(options), "pid": int(gone),
                              "host": socket.gethostname()})
        conn.execute("UPDATE runs SET status = 'RUNNING', options = ? WHERE id = ?",
                     (options, runs.second))
    app = runs.app(runs.second)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        banner = app.screen.query_one("#banner", Static)
        assert banner.display
        text = str(banner.render())
        assert f"stalled: the process {gone} that ran it in-process is gone" in text
        assert f"reflow resume {runs.second}" in text
        # At 80 columns the banner wraps instead of cutting off the command to run.
        assert len(text) > app.size.width and banner.size.height >= 2
        await pilot.press("escape")  # the runs screen says it too, not a plain RUNNING
        await settle(app, pilot)
        table = app.screen.query_one("#runs", Table)
        row = table.get_row(runs.second)
        assert str(row[3]) == "STALLED"


async def test_a_slow_failing_read_is_not_replaced_by_the_next_tick(
    runs: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that waits for a lost store longer than the refresh interval must still end
    in the banner; a newer tick cancelling it would keep the stale screen looking live."""
    app = runs.app(runs.second, refresh_interval=0.05)
    async with app.run_test() as pilot:
        await settle(app, pilot)
        screen = app.screen
        banner = screen.query_one("#banner", Static)
        gave_up = threading.Event()

        def unreachable(run_id: str) -> dict[str, dict[str, int]]:
            time.sleep(0.4)  # the store's own retrying, as it waits for its deadline
            gave_up.set()
            raise StoreError("connection refused past the deadline")

        monkeypatch.setattr(runs.store, "status_counts", unreachable)
        deadline = time.monotonic() + 20
        while not (banner.display and "store unreachable" in str(banner.render())):
            assert time.monotonic() < deadline, "the banner never showed"
            await pilot.pause(0.05)
        assert gave_up.is_set()


@pytest.mark.parametrize(("size", "columns"), [
    ((80, 24), ["workflow", "run id", "user", "status", "progress", "age"]),
    ((120, 24), ["workflow", "run id", "user", "status", "progress", "age", "cached",
                 "recomp"]),
])
async def test_columns_that_do_not_fit_are_left_out_not_cut(
    runs: Demo, size: tuple[int, int], columns: list[str]
) -> None:
    """At 80 columns the cache counts were cut to their first digit ("301" read "3"), and
    on the run screen the failed count was off screen; left out, the DAG still shows them."""
    app = runs.app()
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#runs", Table)
        assert [str(c.key.value) for c in table.ordered_columns] == columns
        await pilot.press("enter")
        await settle(app, pilot)
        tasks = app.screen.query_one("#tasks", Table)
        shown = [str(c.key.value) for c in tasks.ordered_columns]
        assert shown[:4] == ["task", "state", "done", "failed"]
        assert sum(c.get_render_width(tasks) for c in tasks.ordered_columns) <= tasks.size.width
