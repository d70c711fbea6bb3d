"""The terminal UI (``reflow tui``); textual is imported only when it is opened."""

from __future__ import annotations


def run_tui(run_id: str | None, store: str | None, readonly: bool) -> int:
    from reflow.tui.app import run_tui as run

    return run(run_id, store, readonly)


__all__ = ["run_tui"]
