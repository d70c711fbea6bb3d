"""Verify failures (``v``): every failed check of a run's recorded outputs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from reflow.store import VerifyFailureRecord
from reflow.tui.base import ReflowScreen, Selection, Table, sync_rows
from reflow.tui.fmt import stamp

# The reason last: it is the long one, and the line under the table shows it whole.
COLUMNS = ("task", "index", "check", "at", "reason")


class VerifyScreen(ReflowScreen):
    """Failed verifications of one run, oldest first; ``enter`` opens the failed instance."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.failures: dict[str, VerifyFailureRecord] = {}

    def compose(self) -> ComposeResult:
        yield self.banner()
        yield Static(f"verify failures · {self.run_id}", id="title")
        yield Table(id="failures")
        yield Static("", id="failure-detail")
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
        self.failures = {str(f.id): f for f in data}
        sync_rows(self.query_one("#failures", Table), [
            (str(f.id), (f.task_name, "-" if f.array_index is None else f.array_index,
                         f.check, stamp(f.at, tz), f.reason))
            for f in data
        ])
        self._show_detail()
        self.say(f"{len(data)} failed check(s)" if data else "no verify failures in this run")

    def _selected(self) -> VerifyFailureRecord | None:
        table = self.query_one("#failures", Table)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.failures.get(str(key))

    def _show_detail(self) -> None:
        failure = self._selected()
        detail = Text()
        if failure is not None:
            detail.append(failure.check, style="bold")
            detail.append(f": {failure.reason}")
        self.query_one("#failure-detail", Static).update(detail)

    def on_data_table_row_highlighted(self, event: Table.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: Table.RowSelected) -> None:
        failure = self.failures.get(str(event.row_key.value))
        if failure is not None:
            self.rapp.open_instance(failure.instance_id)

    def selection(self) -> Selection:
        """The failed instance under the cursor, so ``w`` and ``l`` act on it."""
        failure = self._selected()
        if failure is None:
            return Selection(self.run_id)
        return Selection(self.run_id, failure.task_name, failure.array_index,
                         failure.instance_id, has_index=True)
