"""``run_tui``, the function behind ``reflow tui``: argument checks and the exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_demo import Demo

from reflow.errors import StoreError, UnknownRunError
from reflow.store import Store
from reflow.tui.app import ReflowApp, run_tui


def test_unknown_run_is_refused_before_the_screen_opens(sqlite_url: str) -> None:
    Store.open(sqlite_url).close()
    with pytest.raises(UnknownRunError):
        run_tui("no-such-run", sqlite_url, readonly=False)


def test_a_store_that_does_not_exist_is_refused_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no reflow store at"):
        run_tui(None, str(tmp_path / "typo.db"), readonly=True)
    assert not (tmp_path / "typo.db").exists()


def test_run_tui_opens_the_run_and_returns_the_exit_code(
        runs: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str | None, bool]] = []

    def fake_run(app: ReflowApp) -> None:
        seen.append((app.start_run, app.readonly))

    monkeypatch.setattr(ReflowApp, "run", fake_run)
    assert run_tui(runs.second, runs.url, readonly=True) == 0
    assert seen == [(runs.second, True)]


def test_whose_runs_may_be_changed_is_not_taken_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import pwd

    from reflow.tui.app import current_user

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(name, "someone-else")
    assert current_user() == pwd.getpwuid(os.getuid()).pw_name
