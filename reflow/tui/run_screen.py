"""The run screen: task table, DAG, one page of the selected task's instances, live feed.

Each tick reads aggregate counts, one page of instances and the transitions recorded since
the last tick; nothing scales with the size of an array except the numbers in the cells.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import tzinfo
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static

from reflow.engine.results import NOTHING_WAITING, Waiting
from reflow.states import STATE_STYLES, TaskState
from reflow.store import InstanceRecord, RunRecord, TransitionRecord
from reflow.tui.base import FilterBox, ReflowScreen, Selection, Table, sync_rows
from reflow.tui.dag import render_dag
from reflow.tui.data import PAGE_SIZE, TaskSummary
from reflow.tui.fmt import clip, clock_time, count, duration, label

# "done" is done/total in one cell, and counts are compact (``fmt.count``). Rows are updated in
# place, which never widens a column: every column but the task name is as wide as its longest
# possible text (None: as the names need, within what the screen leaves). Where the table would
# not fit beside the DAG (80 columns), the last ``TASK_OPTIONAL`` columns are left out: the
# DAG shows those counts too.
TASK_COLUMNS = (("task", None), ("state", max(len(s) for s in TaskState)), ("done", 11),
                ("failed", 6), ("cached", 6), ("recomp", 6))
TASK_OPTIONAL = 2
MIN_NAME_WIDTH = 8
FAIR_NAME_WIDTH = 16  # names are cut to this before columns are left out
# Fixed widths: pages replace every row, and widths fitted to each page would make the
# columns jump while scrolling through an array.
INSTANCE_COLUMNS = (("index", 6), ("try", 3), ("state", 9), ("reason", 24), ("job", 12),
                    ("exit", 4), ("took", 6))
FEED_KEEP = 50


@dataclass(frozen=True)
class RunView:
    run: RunRecord
    tasks: list[TaskSummary]
    task: str | None
    offset: int
    instances: list[InstanceRecord]
    count: int
    transitions: list[TransitionRecord]
    stalled: str | None = None
    waiting: Waiting = NOTHING_WAITING


def job_tail(job_id: str | None, width: int = dict(INSTANCE_COLUMNS)["job"]) -> str:
    """The end of a long job id: an array element's index is its last part."""
    if not job_id:
        return "-"
    return job_id if len(job_id) <= width else "…" + job_id[-(width - 1):]


def feed_line(t: TransitionRecord, tz: tzinfo | None) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(clock_time(t.at, tz) + " ", style="dim")
    line.append(label(t.task_name, t.array_index) + f"#{t.attempt} ", style="bold")
    line.append(t.from_state or "new", style=STATE_STYLES.get(t.from_state or "", "dim"))
    line.append(" → ")
    line.append(t.to_state, style=STATE_STYLES.get(t.to_state, ""))
    if t.detail:
        line.append("  " + t.detail.splitlines()[0], style="dim")
    return line


class RunScreen(ReflowScreen):
    """One run, live."""

    # Paging keys are named on the page line when there is more than one page, and esc
    # everywhere: at 80 columns the footer keeps its room for the action keys (r f c w v l).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("n", "page(1)", "Next page", show=False),
        # A 20,000-element array is 400 pages: its end must be one key away.
        Binding("N", "page_to(-1)", "Last page", show=False),
        Binding("P", "page_to(0)", "First page", show=False),
        Binding("p", "page(-1)", "Prev page", show=False),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.task_name: str | None = None
        self.page_offset = 0
        self.page_count = 0
        self.needle = ""
        self.tasks: list[TaskSummary] = []
        self.feed: deque[TransitionRecord] = deque(maxlen=FEED_KEEP)
        self._task_layout = (0, 0)  # (columns shown, name width) of the task table

    def compose(self) -> ComposeResult:
        yield self.banner()
        yield Static("", id="title")
        yield FilterBox("tasks", "tasks")
        with Horizontal(id="top"):
            yield Table(id="tasks")
            yield Static("", id="dag")
        yield Static("", id="page")
        yield Table(id="instances")
        yield Static("", id="feed")
        yield self.message_line()
        yield Footer()

    async def on_mount(self) -> None:
        tasks = self.query_one("#tasks", Table)  # its columns come with the first rows
        inst = self.query_one("#instances", Table)
        for col, width in INSTANCE_COLUMNS:
            inst.add_column(col, key=col, width=width)
        self.query_one("#feed", Static).border_title = "transitions (newest first)"
        self.query_one("#dag", Static).border_title = "DAG"
        tasks.focus()

    # -- data ------------------------------------------------------------------------------
    def load(self) -> RunView:
        reader = self.rapp.reader
        run = reader.run(self.run_id)
        tasks = reader.tasks(self.run_id)
        task = self.task_name if self.task_name is not None else (tasks[0].name if tasks else None)
        offset = self.page_offset
        rows: list[InstanceRecord] = []
        count = 0
        if task is not None:
            count = next((t.total for t in tasks if t.name == task), 0)
            offset = max(0, min(offset, (max(count, 1) - 1) // PAGE_SIZE * PAGE_SIZE))
            rows = reader.instances(self.run_id, task, offset)
        return RunView(run, tasks, task, offset, rows, count,
                       reader.new_transitions(self.run_id), reader.stalled(run),
                       reader.waiting(run))

    def show(self, data: RunView) -> None:
        self.tasks = data.tasks
        if self.task_name is None or self.task_name == data.task:
            self.task_name, self.page_offset, self.page_count = data.task, data.offset, data.count
        self._show_title(data.run, data.waiting)
        if data.stalled:
            self._set_banner(f"stalled: {data.stalled}; `reflow resume {data.run.run_id}"
                             f"{self.rapp.store.cli_option()}` restarts it")
        self._show_tasks()
        self._show_dag()
        if data.task == self.task_name:
            self._show_instances(data.instances)
        self.feed.extend(data.transitions)
        tz = self.rapp.clock().tzinfo
        lines = [feed_line(t, tz) for t in reversed(self.feed)]
        self.query_one("#feed", Static).update(Text("\n").join(lines))

    def _show_title(self, run: RunRecord, waiting: Waiting) -> None:
        title = Text(no_wrap=True, overflow="ellipsis")
        # A run id starts with its workflow's name: shown once, a long name leaves room at 80
        # columns for the status.
        if not run.run_id.startswith(run.workflow + "-"):
            title.append(f"{run.workflow} ", style="bold")
        title.append(run.run_id + " ", style="bold")
        title.append(run.status, style=STATE_STYLES.get(run.status, ""))
        if waiting:  # the store lags a chained driver's work: say how far the workers got
            title.append(f" · workers: {waiting.finished} finished, {waiting.started} "
                         "started (not yet recorded)", style="yellow")
        title.append(f" · {run.user}@{run.host}", style="dim")
        refusal = self.rapp.refusal(run)
        if refusal:
            title.append(" · read-only", style="bold magenta")
        self.query_one("#title", Static).update(title)

    def _show_dag(self) -> None:
        dag = self.query_one("#dag", Static)
        region = dag.content_region
        dag.update(render_dag(self.tasks, self.task_name, region.height or None,
                              region.width or None))

    def on_resize(self) -> None:
        self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        if self.tasks:
            self._show_tasks()
            self._show_dag()

    def _show_tasks(self) -> None:
        needle = self.needle.lower()
        rows = []
        for t in self.tasks:
            if needle and needle not in t.name.lower() and needle not in t.state.lower():
                continue
            rows.append((t.name, (
                t.name + ("[]" if t.is_array else ""),
                Text(t.state, style=STATE_STYLES.get(t.state, "")),
                f"{count(t.done)}/{count(t.total)}", count(t.failed), count(t.cached),
                count(t.recomputed),
            )))
        table = self.query_one("#tasks", Table)
        layout = self._task_layout
        shown, name_width = self._fit_task_columns(table, [cells[0] for _, cells in rows])
        sync_rows(table, [(key, (clip(cells[0], name_width), *cells[1:shown]))
                          for key, cells in rows])
        keys = [key for key, _ in rows]
        if layout != self._task_layout and self.task_name in keys:  # rebuilt: cursor at 0
            table.move_cursor(row=keys.index(self.task_name))

    def _fit_task_columns(self, table: Table, names: list[str]) -> tuple[int, int]:
        """How many columns fit, and the name column's width; the columns are rebuilt when
        that changes (a resize, a longer name)."""
        room, pad = table.room, table.padding_width
        longest = max([len(TASK_COLUMNS[0][0]), *map(len, names)])

        def fixed(shown: int) -> int:
            return sum(int(w or 0) + pad for _, w in TASK_COLUMNS[1:shown])

        shown = len(TASK_COLUMNS)
        if min(longest, FAIR_NAME_WIDTH) + pad + fixed(shown) > room:
            shown -= TASK_OPTIONAL
        name_width = max(MIN_NAME_WIDTH, min(longest, room - fixed(shown) - pad))
        if (shown, name_width) != self._task_layout:
            self._task_layout = (shown, name_width)
            table.clear(columns=True)
            table.add_column(TASK_COLUMNS[0][0], key=TASK_COLUMNS[0][0], width=name_width)
            for col, width in TASK_COLUMNS[1:shown]:
                table.add_column(col, key=col, width=width)
        return shown, name_width

    def _show_instances(self, instances: list[InstanceRecord]) -> None:
        rows = []
        for r in instances:
            idx = "-" if r.array_index is None else str(r.array_index)
            rows.append((str(r.id), (
                idx, r.attempt, Text(r.state, style=STATE_STYLES.get(r.state, "")),
                r.reason, job_tail(r.job_id), "-" if r.exit_code is None else r.exit_code,
                duration(r.started_at, r.finished_at),
            )))
        sync_rows(self.query_one("#instances", Table), rows)
        end = self.page_offset + len(instances)
        where = f"{self.page_offset + 1}-{end} of {self.page_count}" if instances else "none yet"
        self.query_one("#page", Static).update(
            Text.assemble((f"{self.task_name or '-'}", "bold"), f" instances {where}",
                          ("  n/p: page, N/P: last/first" if self.page_count > PAGE_SIZE
                           else "", "dim")))

    # -- selection and keys ----------------------------------------------------------------
    def selection(self) -> Selection:
        inst = self.query_one("#instances", Table)
        if inst.row_count and self.task_name is not None:
            key = inst.coordinate_to_cell_key(inst.cursor_coordinate).row_key.value
            index_cell = inst.get_row_at(inst.cursor_row)[0]
            index = None if index_cell == "-" else int(index_cell)
            return Selection(self.run_id, self.task_name, index, int(str(key)), has_index=True)
        return Selection(self.run_id, self.task_name)

    def on_data_table_row_highlighted(self, event: Table.RowHighlighted) -> None:
        if event.data_table.id != "tasks" or event.row_key.value is None:
            return
        if event.row_key.value != self.task_name:
            self.task_name, self.page_offset = event.row_key.value, 0
            self._show_dag()
            self.query_one("#instances", Table).clear()
            self.reload_soon(exclusive=True)

    def on_data_table_row_selected(self, event: Table.RowSelected) -> None:
        if event.data_table.id == "tasks":
            self.query_one("#instances", Table).focus()
        elif event.row_key.value is not None:
            self.rapp.open_instance(int(event.row_key.value))

    def action_page(self, step: int) -> None:
        target = self.page_offset + step * PAGE_SIZE
        if target < 0 or target >= max(self.page_count, 1):
            self.say("no more pages")
            return
        self._go_to(target)

    def action_page_to(self, page: int) -> None:
        """The first page (0) or the last (-1)."""
        last = (max(self.page_count, 1) - 1) // PAGE_SIZE * PAGE_SIZE
        self._go_to(last if page < 0 else 0)

    def _go_to(self, offset: int) -> None:
        self.page_offset = offset
        self.reload_soon(exclusive=True)

    def action_filter(self) -> None:
        self.query_one(FilterBox).open()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.needle = event.value
        self._show_tasks()

    def action_back(self) -> None:
        if self.query_one(FilterBox).close():
            return
        if self.focused is self.query_one("#instances", Table):
            self.query_one("#tasks", Table).focus()
        else:
            super().action_back()
