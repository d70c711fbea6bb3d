"""``Run``: a handle on one recorded run, whichever path created it.

It holds only the run id and a store; every method reads the store or calls the shared
verbs in ``reflow.actions``, so a Run reopened with ``Run.load`` days later behaves exactly
like the one ``run_local`` returned.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.errors import OptionError
from reflow.states import RunState

# How often ``Run.wait`` asks whether anything still works on the run (a chained Slurm run
# asks the scheduler, so not on every poll).
STALL_CHECK_SECONDS = 10.0

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.store import RunRecord, Store


class Run:
    """One run in the manifest store."""

    def __init__(self, run_id: str, *, store: Any = None,
                 workflow: Workflow | None = None) -> None:
        from reflow.store import Store

        self.run_id = run_id
        self.store: Store = Store.open(store)
        self._workflow = workflow

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    @classmethod
    def load(cls, run_id: str, store: Any = None) -> Run:
        """Reopen a recorded run; an unknown id raises ``UnknownRunError`` with a suggestion.

        A store that does not exist is an error naming it, not a new empty store (a mistyped
        path would otherwise leave one behind).
        """
        from reflow.store import Store

        run = cls(run_id, store=Store.open(store, create=False))
        run.record()
        return run

    def record(self) -> RunRecord:
        return self.store.get_run(self.run_id)

    @property
    def run_dir(self) -> Path:
        return Path(self.record().run_dir)

    @property
    def state(self) -> RunState:
        return RunState(self.record().status)

    def workflow(self) -> Workflow:
        """The workflow object, re-imported from the recorded entry point if needed."""
        if self._workflow is None:
            from reflow.engine.entrypoints import load_workflow

            rec = self.record()
            root = rec.option_values.get("import_root")
            self._workflow = load_workflow(rec.entrypoint, rec.workflow, root)
        return self._workflow

    def status(self, task: str | None = None, as_dict: bool = False,
               errors: bool = False) -> Any:
        """Text summary (or, with ``as_dict``, the full document of SPEC §2)."""
        from reflow import status_report
        from reflow.actions import check_run_task

        if task is not None:
            check_run_task(self.store, self.run_id, task)
        if as_dict:
            return status_report.status_document(self.store, self.run_id, task)
        return status_report.status_text(self.store, self.run_id, task, errors)

    def transitions(self) -> list[dict[str, Any]]:
        from reflow.status_report import transition_dict

        return [transition_dict(t) for t in self.store.transitions(self.run_id)]

    def why(self, task: str, index: int | None = None) -> str:
        from reflow.actions import why

        return why(self.store, self.run_id, task, index)

    def retry(self, task: str | None = None, *, task_name: str | None = None,
              verify: bool = True) -> int:
        """Re-run failed instances as new attempts; returns how many were marked.

        ``task`` and ``task_name`` are synonyms; two different names are refused rather than
        one of them silently winning.
        """
        from reflow.actions import retry

        if task is not None and task_name is not None and task != task_name:
            raise OptionError(f"retry(task={task!r}, task_name={task_name!r}): they are "
                              "synonyms; give one task")
        return retry(self, task or task_name, verify=verify)

    def cancel(self, task: str | None = None) -> int:
        from reflow.actions import cancel

        return cancel(self, task)

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> RunState:
        """Block until the run is terminal; ``TimeoutError`` after ``timeout`` seconds.

        A run whose driver (or in-process runner) is gone would never end: every
        ``STALL_CHECK_SECONDS`` the wait asks, and raises ``RunStalledError`` naming the fix.
        """
        from reflow.actions import stalled_reason
        from reflow.errors import RunStalledError

        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(poll, 0.05)
        next_check = time.monotonic()
        while True:
            state = self.state
            if state.terminal:
                return state
            now = time.monotonic()
            if now >= next_check:
                next_check = now + STALL_CHECK_SECONDS
                reason = stalled_reason(self.store, self.run_id)
                if reason is not None:
                    raise RunStalledError(
                        f"run {self.run_id} is stalled: {reason}; `reflow resume "
                        f"{self.run_id}{self.store.cli_option()}` restarts it",
                        run_id=self.run_id)
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"run {self.run_id} is still {state} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, poll * 10)
