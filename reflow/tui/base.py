"""What every TUI screen shares: the store banner, the message line and the refresh loop.

Screens load data off the event loop (``asyncio.to_thread``) and then apply it, so a slow or
unreachable store never freezes the keyboard. A screen refreshes only while it is the one on
top; one hidden under a detail view costs nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from reflow.errors import ReflowError
from reflow.tui.data import StoreUnavailable

if TYPE_CHECKING:
    from reflow.tui.app import ReflowApp


@dataclass(frozen=True)
class Selection:
    """What the app-level keys (r, f, c, w, v, l) act on."""

    run_id: str | None = None
    task: str | None = None
    index: int | None = None
    instance_id: int | None = None
    has_index: bool = False


class Table(DataTable[Any]):
    """A row-cursor table whose ``enter`` is listed in the footer as the way to drill in."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open"),
    ]

    @property
    def padding_width(self) -> int:
        """Characters a column takes beyond its text (its cell padding, left and right)."""
        return 2 * self.cell_padding

    @property
    def room(self) -> int:
        """Characters the columns may take; the screen's width before the first layout."""
        return self.size.width or self.app.size.width

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)


class FilterBox(Input):
    """The ``/`` filter line: hidden until opened; ``enter`` keeps the filter and returns to
    the table it filters, ``esc`` (through the screen's back action) clears and hides it."""

    def __init__(self, what: str, table_id: str) -> None:
        super().__init__(placeholder=f"filter {what} (enter to apply, esc to clear)",
                         id="filter")
        self.table_id = table_id
        self.display = False

    def open(self) -> None:
        self.display = True
        self.focus()

    def close(self) -> bool:
        """Clear and hide the filter; False when it was not open (nothing to close)."""
        if not self.display:
            return False
        self.value = ""
        self.display = False
        self._focus_table()
        return True

    def on_input_submitted(self) -> None:
        self._focus_table()

    def _focus_table(self) -> None:
        self.screen.query_one(f"#{self.table_id}", Table).focus()


class ReflowScreen(Screen[None]):
    """Banner + message line + a reload that survives a lost store connection."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        # set once the first load reached the screen (or failed): keys pressed by scripts
        # and tests before that would act on empty tables
        self.loaded = asyncio.Event()
        self._reloading = False

    @property
    def rapp(self) -> ReflowApp:
        from reflow.tui.app import ReflowApp

        assert isinstance(self.app, ReflowApp)
        return self.app

    def selection(self) -> Selection:
        return Selection()

    def banner(self) -> Static:
        return Static("", id="banner")

    def message_line(self) -> Static:
        return Static("", id="message")

    def say(self, text: str, *, error: bool = False) -> None:
        self.rapp.last_message = text
        line = self.query("#message")
        if line:
            widget = line.first(Static)
            widget.update(text)
            widget.set_class(error, "error")

    def load(self) -> Any:
        """Read everything this screen shows (runs in a worker thread)."""
        return None

    def show(self, data: Any) -> None:
        """Put freshly loaded data on screen (runs on the event loop)."""

    async def reload(self) -> None:
        self._reloading = True
        try:
            data = await asyncio.to_thread(self.load)
        except StoreUnavailable as exc:
            problem = f"store unreachable: {exc} (retrying)"
        except ReflowError as exc:
            problem = str(exc).strip("'\"")
        else:
            problem = ""
        finally:
            self._reloading = False
        if self.is_attached and self.app.is_running:
            self._set_banner(problem)
            if not problem:
                self.show(data)
        self.loaded.set()

    def _set_banner(self, text: str) -> None:
        found = self.query("#banner")
        if found:
            banner = found.first(Static)
            banner.update(text)
            banner.display = bool(text)

    async def on_mount(self) -> None:
        self._set_banner("")
        await self.reload()
        interval = self.rapp.refresh_interval
        if interval:
            self.set_interval(interval, self._tick)

    def _tick(self) -> None:
        # A tick still waiting for the store is left to finish: replacing it would cancel it
        # before its deadline ran out, and the banner saying the store is gone never showed.
        if self.app.screen is self and not self._reloading:
            self.reload_soon()

    def reload_soon(self, *, exclusive: bool = False) -> None:
        """Reload in a worker of the "tick" group (``exclusive``: replacing the one running).

        The worker is given ``reload`` itself, not a coroutine made now: one cancelled before
        it started would leave a coroutine never awaited (a RuntimeWarning).
        """
        # textual's annotation makes mypy solve a coroutine function's result as Never.
        self.run_worker(self.reload, group="tick", exclusive=exclusive)  # type: ignore[arg-type]

    async def on_screen_resume(self) -> None:
        if self.is_mounted:
            await self.reload()

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()


def sync_rows(table: DataTable[Any], rows: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Show ``rows`` (key, cells) keeping the cursor; unchanged keys are updated in place."""
    current = [str(k.value) for k in table.rows]
    if current == [key for key, _ in rows]:
        columns = [c.key for c in table.ordered_columns]
        for key, cells in rows:
            old = table.get_row(key)
            for col, new, was in zip(columns, cells, old, strict=True):
                if new != was:
                    table.update_cell(key, col, new)
        return
    keep = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows:
        table.move_cursor(row=min(max(keep, 0), len(rows) - 1), scroll=True)
