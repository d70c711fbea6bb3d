"""Verify failures (``v``): every failed check of a run's recorded outputs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Static

from reflow.store import VerifyFailureRecord
from reflow.tui.base import ReflowScreen, Selection, Table, sync_rows
from reflow.tui.fmt import stamp

COLUMNS = ("task", "index", "check", "reason", "at")


class VerifyScreen(ReflowScreen):
    """Failed verifications of one run, oldest first."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield self.banner()
        yield Static(f"verify failures · {self.run_id}", id="title")
        yield Table(id="failures")
        yield self.message_line()
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one("#failures", Table)
        for col in COLUMNS:
            table.add_column(col, key=col)
        table.focus()

    def load(self) -> list[VerifyFailureRecord]:
        return self.rapp.reader.verify_failures(self.run_id)

    def show(self, data: list[VerifyFailureRecord]) -> None:
        tz = self.rapp.clock().tzinfo
        sync_rows(self.query_one("#failures", Table), [
            (str(f.id), (f.task_name, "-" if f.array_index is None else f.array_index,
                         f.check, f.reason, stamp(f.at, tz)))
            for f in data
        ])
        self.say(f"{len(data)} failed check(s)" if data else "no verify failures in this run")

    def selection(self) -> Selection:
        return Selection(self.run_id)
