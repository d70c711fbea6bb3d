"""Small modal screens: the key map (``?``), a yes/no confirmation, and a text viewer."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYMAP: tuple[tuple[str, str], ...] = (
    ("enter", "open the selected run, task or instance"),
    ("esc", "back (or close the filter / this window)"),
    ("/", "filter runs or tasks"),
    ("r", "retry failed instances (selected task, or whole run on the runs screen)"),
    ("f", "force-rerun the selected task and what depends on it (asks first)"),
    ("c", "cancel the run's active work (selected task, asks first)"),
    ("w", "why the selected instance was cached or recomputed"),
    ("v", "verify failures of the run"),
    ("l", "open the selected instance's full log in $PAGER"),
    ("n / p", "next / previous page of instances"),
    ("N / P", "last / first page of instances"),
    ("tab", "move between the task and instance tables"),
    ("?", "this help"),
    ("q", "quit (the run goes on)"),
)


def keymap_text() -> Text:
    out = Text()
    for i, (key, what) in enumerate(KEYMAP):
        out.append(("\n" if i else "") + f"{key:>7}  ", style="bold")
        out.append(what)
    return out


class HelpScreen(ModalScreen[None]):
    """The key map; any of esc, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static(Text("reflow tui · keys", style="bold"))
            yield Static(keymap_text())
            yield Static(Text("esc closes", style="dim"))


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a destructive action; only ``y`` says yes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="dialog"):
            yield Static(self.question)
            yield Static(Text("y: yes   n/esc: no", style="bold"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TextScreen(ModalScreen[None]):
    """A scrollable block of text, e.g. the output of ``why``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,w", "dismiss", "Close")]

    def __init__(self, title: str, body: str) -> None:
        super().__init__()
        self.title_text = title
        self.body = body

    def compose(self) -> ComposeResult:
        with Vertical(id="text", classes="dialog"):
            yield Static(Text(self.title_text, style="bold"))
            with VerticalScroll():
                yield Static(Text(self.body))
            yield Static(Text("esc closes", style="dim"))
