"""Snapshots of every TUI screen, from pinned real runs (fixed clock, theme, ids; no timers)."""

from __future__ import annotations

from typing import Any

from tui_demo import Demo

RUN_B = "demo-20300101-bbbbbbbbbb"
RUN_C = "demo-20300101-cccccccccc"


async def select_work(pilot: Any) -> None:
    """Select task ``work`` and wait until its instance page has loaded."""
    await pilot.app.screen.loaded.wait()
    await pilot.press("down")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def loaded(pilot: Any) -> None:
    await pilot.app.screen.loaded.wait()
    await pilot.pause()


def test_runs_screen(snap_compare: Any, pinned: Demo) -> None:
    assert snap_compare(pinned.app(), run_before=loaded, terminal_size=(100, 24))


def test_run_screen_mid_run(snap_compare: Any, pinned: Demo) -> None:
    """Cached (items), recomputed and failed (work), skipped (total), running (report)."""
    assert snap_compare(pinned.app(RUN_B), run_before=select_work, terminal_size=(120, 34))


def test_run_screen_80x24(snap_compare: Any, pinned: Demo) -> None:
    assert snap_compare(pinned.app(RUN_B), run_before=select_work, terminal_size=(80, 24))


def test_instance_detail_of_failure(snap_compare: Any, pinned: Demo) -> None:
    async def run_before(pilot: Any) -> None:
        await select_work(pilot)
        await pilot.press("enter", "down", "enter")
        await loaded(pilot)

    assert snap_compare(pinned.app(RUN_B), run_before=run_before, terminal_size=(100, 34))


def test_verify_failures_view(snap_compare: Any, pinned: Demo) -> None:
    async def run_before(pilot: Any) -> None:
        await pilot.app.screen.loaded.wait()
        await pilot.press("v")
        await loaded(pilot)

    assert snap_compare(pinned.app(RUN_C), run_before=run_before, terminal_size=(100, 24))


def test_help_screen(snap_compare: Any, pinned: Demo) -> None:
    async def run_before(pilot: Any) -> None:
        await loaded(pilot)
        await pilot.press("question_mark")

    assert snap_compare(pinned.app(RUN_B), run_before=run_before, terminal_size=(80, 24))
