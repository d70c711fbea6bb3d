"""Public state enums for task instances and runs.

They are ``str`` enums so that ``TaskState.SUCCESS == "SUCCESS"`` and rows in the store stay
readable by plain SQL.
"""

from __future__ import annotations

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


# Rich style per state, shared by the CLI tables, the progress display and the TUI so that a
# state looks the same everywhere. "WAITING" is a task (not a state) with no instances yet.
STATE_STYLES: dict[str, str] = {
    "PENDING": "dim",
    "WAITING": "dim",
    "SUBMITTED": "cyan",
    "RUNNING": "blue",
    "SUCCESS": "green",
    "FAILED": "bold red",
    "CANCELLED": "yellow",
    "RETRYING": "magenta",
}
