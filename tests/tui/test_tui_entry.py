"""``run_tui``, the function behind ``reflow tui``: argument checks and the exit code."""

from __future__ import annotations

import pytest
from tui_demo import Demo

from reflow.errors import UnknownRunError
from reflow.tui.app import ReflowApp, run_tui


def test_unknown_run_is_refused_before_the_screen_opens(sqlite_url: str) -> None:
    with pytest.raises(UnknownRunError):
        run_tui("no-such-run", sqlite_url, readonly=False)


def test_run_tui_opens_the_run_and_returns_the_exit_code(
        runs: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, bool]] = []

    def fake_run(app: ReflowApp) -> None:
        seen.append((app.start_run, app.readonly))

    monkeypatch.setattr(ReflowApp, "run", fake_run)
    assert run_tui(runs.second, runs.url, readonly=True) == 0
    assert seen == [(runs.second, True)]
