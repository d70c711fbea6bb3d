"""``reflow tui``: the Textual app, its app-wide keys, and the entry point the CLI calls.

The keys that change a run (r, f, c) call the same verbs as the CLI (``actions.retry``,
``Run.cancel``, ``actions.force_rerun``) in a worker thread, so the screen stays live and
reports the outcome on its message line. An in-process run's retried work is handed to a
detached process (``engine.inline_host``), never run here: quitting the app, or losing its
terminal, never stops a run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, ClassVar

from textual.app import App, SuspendNotSupported
from textual.binding import Binding, BindingType

from reflow.errors import ReflowError
from reflow.states import TERMINAL_TASK_STATES, TaskState
from reflow.store import RunRecord, Store
from reflow.tui.base import ReflowScreen, Selection
from reflow.tui.data import Reader, StoreUnavailable
from reflow.tui.fmt import label
from reflow.tui.instance_screen import InstanceScreen
from reflow.tui.modals import ConfirmScreen, HelpScreen, TextScreen
from reflow.tui.run_screen import RunScreen
from reflow.tui.runs_screen import RunsScreen
from reflow.tui.verify_screen import VerifyScreen

DEFAULT_REFRESH_S = 2.0
# What `r` and `c` find in a task before they act on it rather than on the whole run.
_RETRYABLE = frozenset({TaskState.FAILED.value, TaskState.CANCELLED.value})
_ACTIVE = frozenset(s.value for s in TaskState if s not in TERMINAL_TASK_STATES)

CSS = """
#banner { background: $error; color: $text; height: auto; max-height: 3; display: none; }
#title { height: 1; background: $boost; padding: 0 1; }
#message { height: auto; min-height: 1; max-height: 3; color: $text-muted; padding: 0 1; }
#message.error { color: $error; text-style: bold; }
#filter { height: 3; }
#runs { height: 1fr; }
#top { height: 8; }
#tasks { width: 1fr; }
#dag { width: 40%; min-width: 30; border-left: solid $primary; padding: 0 1; overflow: hidden;
       text-wrap: nowrap; text-overflow: ellipsis; }
#page { height: 1; padding: 0 1; background: $boost; }
#instances { height: 1fr; }
#feed { height: 5; border-top: solid $primary; padding: 0 1; overflow: hidden;
        text-wrap: nowrap; text-overflow: ellipsis; }
#failures { height: 1fr; }
#failure-detail { height: auto; max-height: 6; padding: 0 1; border-top: solid $primary; }
#detail-scroll { height: 1fr; padding: 0 1; }
.dialog { width: 76; height: auto; max-height: 22; border: thick $primary;
          background: $surface; padding: 0 1; }
ModalScreen { align: center middle; }
"""


def _now() -> datetime:
    return datetime.now().astimezone()


def current_user() -> str:
    from reflow.engine.run_records import current_user as user

    return user()


class ReflowApp(App[int]):
    """Runs → run → instance, with the run-changing keys available everywhere."""

    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    TITLE = "reflow"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "retry", "Retry"),
        Binding("f", "force", "Force"),
        Binding("c", "cancel_work", "Cancel"),
        Binding("w", "why", "Why"),
        Binding("v", "verify", "Verify"),
        Binding("l", "log", "Log"),
    ]

    def __init__(self, store: Store, run_id: str | None = None, *, readonly: bool = False,
                 refresh_interval: float | None = DEFAULT_REFRESH_S,
                 clock: Callable[[], datetime] = _now, user: str | None = None) -> None:
        super().__init__()
        self.store = store
        self.reader = Reader(store)
        self.start_run = run_id
        self.readonly = readonly
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.user = user if user is not None else current_user()
        self.last_message = ""

    async def on_mount(self) -> None:
        await self.push_screen(RunsScreen())
        if self.start_run is not None:
            await self.push_screen(RunScreen(self.start_run))

    # -- navigation ------------------------------------------------------------------------
    def open_run(self, run_id: str) -> None:
        self.push_screen(RunScreen(run_id))

    def open_instance(self, instance_id: int) -> None:
        self.push_screen(InstanceScreen(instance_id))

    def selection(self) -> Selection:
        screen = self.screen
        return screen.selection() if isinstance(screen, ReflowScreen) else Selection()

    def say(self, text: str, *, error: bool = False) -> None:
        """Report on the current screen's message line (and keep it for tests)."""
        self.last_message = text
        for screen in reversed(self.screen_stack):
            if isinstance(screen, ReflowScreen):
                screen.say(text, error=error)
                return

    def refusal(self, run: RunRecord) -> str | None:
        """Why r/f/c are disabled for this run, or None when they are allowed."""
        if self.readonly:
            return f"read-only (--readonly): run {run.run_id} cannot be changed from here"
        if self.store.read_only:
            return (f"read-only: store {self.store.url} is not writable by you; copy it "
                    "somewhere writable to change its runs")
        if run.user != self.user:
            return (f"read-only: run {run.run_id} belongs to {run.user}, not {self.user}; "
                    "ask them, or use the CLI as that user")
        return None

    # -- app-wide keys ---------------------------------------------------------------------
    def action_quit(self) -> None:  # type: ignore[override]
        self.exit(0)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_verify(self) -> None:
        sel = self.selection()
        if sel.run_id is None:
            self.say("select a run first", error=True)
        elif not isinstance(self.screen, VerifyScreen):
            self.push_screen(VerifyScreen(sel.run_id))

    def _allowed(self, sel: Selection, verb: str, need_task: bool) -> str | None:
        """The run id to act on, or None (with the reason on the message line)."""
        if sel.run_id is None:
            self.say(f"{verb}: select a run first", error=True)
            return None
        if need_task and sel.task is None:
            self.say(f"{verb}: open the run (enter) and select a task first", error=True)
            return None
        try:
            run = self.reader.run(sel.run_id)
        except (StoreUnavailable, ReflowError) as exc:
            self.say(f"{verb}: {exc}", error=True)
            return None
        refusal = self.refusal(run)
        if refusal:
            self.say(f"{verb} refused: {refusal}", error=True)
            return None
        return run.run_id

    def _scope(self, sel: Selection, run_id: str, states: Collection[str]) -> str | None:
        """The task a run-wide key acts on: the selected one, unless none of its instances
        is in ``states``; then the whole run (None). The task table's cursor always rests on
        some task, usually the first, which rarely is the one that failed or still runs."""
        task = sel.task
        if task is None:
            return None
        try:
            found = self.reader.call(lambda: self.store.count_latest(run_id, task, states))
        except StoreUnavailable:
            return task
        return task if found else None

    def action_retry(self) -> None:
        sel = self.selection()
        run_id = self._allowed(sel, "retry", need_task=False)
        if run_id is None:
            return
        task = self._scope(sel, run_id, _RETRYABLE)
        target = f"task '{task}'" if task else "the whole run"

        def verb(run: Any) -> str:
            from reflow.actions import retry

            # In-process runs carry on in a process of their own: quitting stops nothing.
            n = retry(run, task, background=True)
            if not n:
                return f"retry: nothing failed in {target} of {run_id}"
            return f"retry: {n} instance(s) of {target} got a new attempt"

        self.say(f"retrying {target}…")
        self._perform(run_id, verb)

    def action_force(self) -> None:
        sel = self.selection()
        run_id = self._allowed(sel, "force", need_task=True)
        if run_id is None:
            return

        task = str(sel.task)

        def verb(run: Any) -> str:
            from reflow.actions import force_rerun

            n = force_rerun(run, task, background=True)
            return (f"force: {n} instance(s) of '{sel.task}' recomputed; its dependants are "
                    "planned again (reused where their inputs come out unchanged)")

        self._confirm(f"Force-rerun task '{sel.task}' and everything that depends on it in "
                      f"run {run_id}?", run_id, verb)

    def action_cancel_work(self) -> None:
        sel = self.selection()
        run_id = self._allowed(sel, "cancel", need_task=False)
        if run_id is None:
            return
        task = self._scope(sel, run_id, _ACTIVE)
        target = f"task '{task}'" if task else "the whole run"

        def verb(run: Any) -> str:
            n = run.cancel(task)
            return (f"cancel: {n} instance(s) of {target} cancelled" if n else
                    f"cancel: nothing active in {target} of {run_id}")

        self._confirm(f"Cancel the active work of {target} in run {run_id}?", run_id, verb)

    def action_why(self) -> None:
        sel = self.selection()
        if sel.run_id is None or sel.task is None:
            self.say("why: open a run and select a task or instance first", error=True)
            return
        from reflow.actions import why

        run_id, task, index = sel.run_id, sel.task, sel.index
        title = f"why {label(task, index)} · {run_id}"
        self.run_worker(lambda: self._background(
            lambda: why(self.store, run_id, task, index),
            lambda text: self.push_screen(TextScreen(title, text))),
            thread=True, group="action")

    def action_log(self) -> None:
        sel = self.selection()
        if sel.instance_id is None:
            self.say("log: select an instance first", error=True)
            return
        instance_id = sel.instance_id
        try:
            rec = self.reader.call(lambda: self.store.instance(instance_id, values=False))
        except StoreUnavailable as exc:
            self.say(f"log: {exc}", error=True)
            return
        paths = [p for p in (rec.stdout_path, rec.stderr_path) if p and os.path.exists(p)]
        where = label(rec.task_name, rec.array_index)
        if not paths:
            why = (f"a cache hit: it reused the output of instance {rec.cache_source}"
                   if rec.cached else "inline runs keep none")
            self.say(f"log: no log file recorded for {where} ({why})", error=True)
            return
        command = [*shlex.split(os.environ.get("PAGER") or "less"), *paths]
        try:
            with self.suspend():
                subprocess.run(command, check=False)
        except SuspendNotSupported:
            self.say(f"log: cannot suspend this terminal; the log is {paths[0]}", error=True)
            return
        except OSError as exc:
            self.say(f"log: cannot start pager {command[0]!r}: {exc.strerror}; set $PAGER",
                     error=True)
            return
        self.say(f"log: closed {where}")

    # -- running verbs ---------------------------------------------------------------------
    def _confirm(self, question: str, run_id: str, verb: Callable[[Any], str]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._perform(run_id, verb)
            else:
                self.say("not confirmed: nothing changed")

        self.push_screen(ConfirmScreen(question), answered)

    def _perform(self, run_id: str, verb: Callable[[Any], str]) -> None:
        def work() -> str:
            from reflow.run import Run

            return verb(Run(run_id, store=self.store))

        self.run_worker(lambda: self._background(work, self.say), thread=True, group="action")

    def _background(self, work: Callable[[], Any], done: Callable[[Any], object]) -> None:
        """Run ``work`` in this worker thread and hand the result (or error) to the UI."""
        try:
            result = work()
        except (ReflowError, KeyError, ValueError) as exc:
            text = str(exc).strip("'\"") if isinstance(exc, KeyError) else str(exc)
            self.call_from_thread(self.say, text, error=True)
            return
        except Exception as exc:
            self.call_from_thread(self.say, f"{type(exc).__name__}: {exc}", error=True)
            return
        if self.is_running:
            self.call_from_thread(done, result)
            self.call_from_thread(self._reload_screen)

    def _reload_screen(self) -> None:
        screen = self.screen
        if isinstance(screen, ReflowScreen):
            screen.reload_soon(exclusive=True)


# Seconds a TUI read waits for a lost or locked store before the banner says so (the next
# tick tries again); commands wait longer, but a screen must not look live while it is not.
STORE_DEADLINE_S = 5.0


def open_tui_store(run_id: str | None, store: Store | str | None) -> Store:
    """The store the TUI reads, with ``run_id`` checked in it: the errors a user can fix
    (a mistyped path or id) come first, before anything is drawn or a terminal is needed.

    A missing store is an error, as for every reading command: a mistyped path must not
    leave a new empty database behind.
    """
    st = Store.open(store, create=False, deadline=STORE_DEADLINE_S)
    if run_id is not None:
        st.get_run(run_id)  # an unknown id fails here with a suggestion
    return st


def run_tui(run_id: str | None, store: Store | str | None, readonly: bool) -> int:
    """Open the TUI on ``store`` (on ``run_id`` if given); returns the exit code."""
    st = open_tui_store(run_id, store)
    app = ReflowApp(st, run_id, readonly=readonly)
    app.run()
    return int(app.return_code or 0)
