"""Live progress of a run in a terminal: one line per task, redrawn from aggregate counts.

Shared by ``run_local`` and ``submit --wait`` so both look alike. The display reads the
store's per-task state counts at most once per second from a background thread — never one
query per instance, never the scheduler — and rich is imported only when a display is shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from reflow.states import STATE_STYLES

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from reflow.store import RunRecord, Store

REFRESH_SECONDS = 1.0
_DONE = ("SUCCESS", "FAILED", "CANCELLED")


def styled_state(state: str) -> str:
    """Rich markup for a task or run state, coloured the same way everywhere."""
    style = STATE_STYLES.get(state)
    return f"[{style}]{state}[/]" if style else state


def progress_view(record: RunRecord, summary: dict[str, dict[str, int]]) -> RenderableType:
    """One line per task: a bar of finished instances and the counts by state."""
    from rich.markup import escape
    from rich.progress_bar import ProgressBar
    from rich.table import Table

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
    outer = Table.grid()
    outer.add_row(f"[bold]{escape(record.run_id)}[/]  {styled_state(record.status)}")
    outer.add_row(table)
    return outer


def silence_stdout() -> None:
    """Send what is left of this process's output nowhere, its reader being gone; the
    interpreter's final flush then does not raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class LiveProgress:
    """Follows one run once its id is known (``follow``), drawing it until the block ends.

    ``announce`` turns the run's record into lines printed once when it is first seen (the
    CLI's ``run_id = ...`` lines); ``live=False`` keeps only that, for piped output.
    """

    def __init__(
        self,
        store: Store,
        *,
        live: bool = True,
        announce: Callable[[RunRecord], list[str]] | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self._store = store
        self._live_wanted = live
        self._announce = announce
        self._echo = echo
        self._live: Live | None = None
        self._run_id: str | None = None
        self._announced = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reflow-progress", daemon=True)

    def follow(self, run_id: str) -> None:
        """Start showing ``run_id`` (called as soon as the run is recorded)."""
        self._run_id = run_id
        self._tick()

    def __enter__(self) -> LiveProgress:
        if self._live_wanted:
            from rich.console import Console
            from rich.live import Live

            console = Console(highlight=False, soft_wrap=False)
            self._live = Live(console=console, auto_refresh=False, transient=False)
            self._live.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._live is not None:
            with contextlib.suppress(Exception):
                self._tick()  # the final state, not the last sampled one
            self._live.stop()

    def _loop(self) -> None:
        from reflow.errors import ReflowError

        while not self._stop.wait(REFRESH_SECONDS):
            # A busy or briefly unreachable store only delays the display.
            with contextlib.suppress(ReflowError):
                self._tick()

    def _tick(self) -> None:
        from reflow.status_report import ordered_summary

        if self._run_id is None:
            return
        record = self._store.get_run(self._run_id)
        if not self._announced:
            self._announced = True
            for line in self._announce(record) if self._announce else ():
                if self._live is not None:
                    self._live.console.print(line, markup=False, highlight=False)
                else:
                    try:
                        self._echo(line)
                    except BrokenPipeError:
                        # The reader went away (`submit --wait | head -1`): the run it was
                        # told about must still be driven to its end, silently.
                        silence_stdout()
        if self._live is not None:
            view = progress_view(record, ordered_summary(self._store, self._run_id))
            self._live.update(view, refresh=True)
