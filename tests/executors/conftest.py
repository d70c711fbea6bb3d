"""Fixtures of the executor tests (helpers live in fakes.py, importable by name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeScheduler


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeScheduler:
    scheduler = FakeScheduler(tmp_path)
    monkeypatch.setenv("REFLOW_FAKE_LOG", str(scheduler.log))
    monkeypatch.setenv("REFLOW_FAKE_RESPONSES", str(scheduler.replies))
    return scheduler
