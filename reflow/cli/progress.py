"""Follow a foreground submit (``submit --wait``): announce its run id, draw its progress.

``Workflow.submit(wait=True)`` drives the run in this process and returns only at the end, but
a person wants the run id at once and a live view meanwhile. A watcher thread finds the run
the submit records (same workflow and run directory, created after the submit began), prints
the SPEC §6 lines as soon as it exists and, in a terminal, redraws per-task progress from the
store's aggregate counts at most once per second (never per instance, never the scheduler).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from reflow.store import RunRecord, Store

REFRESH_SECONDS = 1.0
_DONE = ("SUCCESS", "FAILED", "CANCELLED")


def progress_view(record: RunRecord, summary: dict[str, dict[str, int]]) -> RenderableType:
    """One line per task: a bar of finished instances and the counts by state."""
    from rich.markup import escape
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    from reflow.cli.output import styled_state

    table = Table.grid(padding=(0, 2))
    table.add_column()
    table.add_column(width=30)
    table.add_column(justify="right")
    table.add_column()
    for task, states in summary.items():
        total = sum(states.values())
        done = sum(n for s, n in states.items() if s in _DONE)
        bar = ProgressBar(total=max(total, 1), completed=done if total else 0, width=30)
        text = ", ".join(f"{styled_state(s)}={n}" for s, n in states.items()) or "[dim]waiting[/]"
        table.add_row(escape(task), bar, f"{done}/{total}", text)
    title = f"[bold]{escape(record.run_id)}[/]  {styled_state(record.status)}"
    outer = Table.grid()
    outer.add_row(title)
    outer.add_row(table)
    return outer


class RunWatcher:
    """Background thread that discovers a run being recorded and follows it until stopped."""

    def __init__(
        self,
        store: Store,
        workflow: str,
        run_dir: str,
        since: datetime,
        announce: Callable[[RunRecord], list[str]],
        live: bool,
    ) -> None:
        self._store = store
        self._workflow = workflow
        self._run_dir = run_dir
        self._since = since
        self._announce = announce
        self._live_wanted = live
        self._live: Live | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reflow-progress", daemon=True)
        self.found: RunRecord | None = None

    def __enter__(self) -> RunWatcher:
        if self._live_wanted:
            from rich.live import Live

            from reflow.cli.output import console

            self._live = Live(console=console(), auto_refresh=False, transient=False)
            self._live.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.found is not None and self._live is not None:
            self._draw(self.found.run_id)  # the final state, not the last sampled one
        if self._live is not None:
            self._live.stop()

    def _loop(self) -> None:
        from reflow.errors import ReflowError

        while not self._stop.is_set():
            # A busy or briefly unreachable store only delays the display.
            with contextlib.suppress(ReflowError):
                self._tick()
            self._stop.wait(REFRESH_SECONDS)

    def _tick(self) -> None:
        if self.found is None:
            self.found = self._discover()
            if self.found is not None:
                self._print(self._announce(self.found))
        if self.found is not None and self._live is not None:
            self._draw(self.found.run_id)

    def _print(self, lines: list[str]) -> None:
        if self._live is not None:
            for line in lines:
                self._live.console.print(line, markup=False, highlight=False)
        else:
            import typer

            for line in lines:
                typer.echo(line)

    def _discover(self) -> RunRecord | None:
        runs = self._store.list_runs(workflow=self._workflow, since=self._since, limit=20)
        matches = [r for r in runs if r.run_dir == self._run_dir]
        return matches[-1] if matches else None  # the oldest new one: ours came first

    def _draw(self, run_id: str) -> None:
        from reflow.status_report import ordered_summary

        assert self._live is not None
        record = self._store.get_run(run_id)
        self._live.update(progress_view(record, ordered_summary(self._store, run_id)), refresh=True)
