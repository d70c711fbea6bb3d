"""The demo runs the TUI tests open, as one object (importable by name from the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reflow.store import Store
from reflow.tui.app import ReflowApp

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
USER = "alice"


@dataclass
class Demo:
    url: str
    store: Store
    first: str
    second: str
    flag: Path

    def app(self, run_id: str | None = None, **kw: Any) -> ReflowApp:
        kw.setdefault("refresh_interval", None)
        kw.setdefault("clock", lambda: NOW)
        kw.setdefault("user", USER)
        app = ReflowApp(self.store, run_id, **kw)
        app.theme = "textual-dark"
        return app
