"""Public state enums for task instances and runs.

They are ``str`` enums so that ``TaskState.SUCCESS == "SUCCESS"`` and rows in the store stay
readable by plain SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class TaskState(StrEnum):
    """State of one attempt of one task instance."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    RETRYING = "RETRYING"

    @property
    def terminal(self) -> bool:
        """Terminal states never move again except through a retry (a new attempt)."""
        return self in TERMINAL_TASK_STATES

    @property
    def active(self) -> bool:
        """States in which work is still expected to happen."""
        return not self.terminal


TERMINAL_TASK_STATES = frozenset({TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCELLED})


class RunState(StrEnum):
    """State of a whole run."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self is not RunState.RUNNING

    @classmethod
    def unfinished(cls, counts: Mapping[str, Mapping[str, int]]) -> RunState:
        """How a run that did not complete ended, from its latest instances' counts per task.

        FAILED only when a task failed; a run a user cancelled part of (and whose dependants
        were skipped for it) ended CANCELLED, so `status` does not send anyone looking for an
        error that never happened.
        """
        failed = any(by_state.get(TaskState.FAILED.value) for by_state in counts.values())
        return cls.FAILED if failed else cls.CANCELLED


# Rich style per state, shared by the CLI tables, the progress display and the TUI so that a
# state looks the same everywhere. "WAITING" is a task (not a state) with no instances yet,
# "SKIPPED" one skipped because its upstream did not succeed, "STALLED" a RUNNING run that
# nothing carries on.
STATE_STYLES: dict[str, str] = {
    "PENDING": "dim",
    "WAITING": "dim",
    "SUBMITTED": "cyan",
    "RUNNING": "blue",
    "SUCCESS": "green",
    "FAILED": "bold red",
    "CANCELLED": "yellow",
    "SKIPPED": "dim yellow",
    "STALLED": "bold magenta",
    "RETRYING": "magenta",
}
