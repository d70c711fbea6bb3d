"""The runs screen: recent runs across workflows, filterable, ``enter`` opens one."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Input, Static
from textual.widgets.data_table import RowDoesNotExist

from reflow.states import STATE_STYLES
from reflow.tui.base import FilterBox, ReflowScreen, Selection, Table
from reflow.tui.data import RunSummary
from reflow.tui.fmt import age

# The SPEC's columns first; the cache counts after them only where the screen has room for
# them whole (cut, "301" read as "3").
COLUMNS = ("workflow", "run id", "user", "status", "progress", "age", "cached", "recomp")
OPTIONAL = 2
# Longest workflow name shown whole; a run id repeats it, so a longer one is cut in both.
NAME_WIDTH = 16
# Newest runs listed; the filter searches the whole store and lists as many of its matches.
RUNS_SHOWN = 100
TITLE = "reflow · runs"


def short_names(workflow: str, run_id: str) -> tuple[str, str]:
    """The workflow and run id cells: a long workflow name would push the status off screen.

    The run id keeps its date and random part, which tell runs of one workflow apart; the
    full id is on the run screen.
    """
    if len(workflow) <= NAME_WIDTH:
        return workflow, run_id
    cut = workflow[:NAME_WIDTH - 1] + "…"
    if run_id.startswith(workflow + "-"):
        run_id = "…" + run_id[len(workflow):]
    return cut, run_id


def matches(summary: RunSummary, needle: str) -> bool:
    run = summary.run
    hay = " ".join((run.workflow, run.run_id, run.user, summary.status)).lower()
    return all(word in hay for word in needle.lower().split())


class RunsScreen(ReflowScreen):
    """Recent runs, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=False),
        Binding("slash", "filter", "Filter"),
    ]

    def __init__(self) -> None:
        super().__init__(id="runs-screen")
        self.summaries: list[RunSummary] = []
        self.needle = ""

    def compose(self) -> ComposeResult:
        yield self.banner()
        yield Static(TITLE, id="title")
        yield FilterBox("runs", "runs")
        yield Table(id="runs")
        yield self.message_line()
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#runs", Table).focus()  # its columns come with the first rows

    def on_resize(self) -> None:
        self.call_after_refresh(self._fill)

    def load(self) -> list[RunSummary]:
        # One more than shown: whether the store holds runs the list leaves out.
        return self.rapp.reader.runs(limit=RUNS_SHOWN + 1, words=self.needle.split())

    def show(self, data: list[RunSummary]) -> None:
        self.summaries = data[:RUNS_SHOWN]
        more = len(data) > RUNS_SHOWN
        which = "matching runs" if self.needle.strip() else "runs"
        self.query_one("#title", Static).update(
            f"{TITLE} · newest {RUNS_SHOWN} {which} shown" + ("" if self.needle.strip()
                                                           else ", / searches all")
            if more else TITLE)
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#runs", Table)
        # The cursor stays on its run, not its row: a new run appearing at the top must not
        # move the selection onto another run that a key would then act on.
        keep_run = self.selection().run_id
        keep = table.cursor_row
        now = self.rapp.clock()
        rows = []
        for s in (s for s in self.summaries if matches(s, self.needle)):
            run = s.run
            rows.append((run.run_id, (
                *short_names(run.workflow, run.run_id), run.user,
                Text(s.status, style=STATE_STYLES.get(s.status, "")),
                f"{s.done}/{s.total}" + (f" ✘{s.failed}" if s.failed else ""),
                age(run.created_at, now), str(s.cached), str(s.recomputed),
            )))
        widths = [max([len(name), *(len(str(cells[i])) for _, cells in rows)])
                  + table.padding_width for i, name in enumerate(COLUMNS)]
        shown = len(COLUMNS)
        if sum(widths) > table.room:
            shown -= OPTIONAL
        if len(table.columns) != shown:
            table.clear(columns=True)
            for col in COLUMNS[:shown]:
                table.add_column(col, key=col)
        table.clear()
        for key, cells in rows:
            table.add_row(*cells[:shown], key=key)
        if table.row_count:
            try:
                row = table.get_row_index(keep_run) if keep_run else keep
            except RowDoesNotExist:  # filtered out or gone: the same place in the list
                row = keep
            table.move_cursor(row=min(row, table.row_count - 1))

    def selection(self) -> Selection:
        table = self.query_one("#runs", Table)
        if not table.row_count:
            return Selection()
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return Selection(run_id=key)

    def on_data_table_row_selected(self, event: Table.RowSelected) -> None:
        if event.row_key.value is not None:
            self.rapp.open_run(event.row_key.value)

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.needle = event.value
        self._fill()  # at once from the runs listed; then from the whole store
        self.reload_soon(exclusive=True)

    def action_back(self) -> None:
        self.query_one(FilterBox).close()
