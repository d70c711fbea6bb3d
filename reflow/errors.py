"""One exception hierarchy for every user-facing failure.

Each class also derives from the built-in type that older code catches (SPEC §9), so
``except ValueError`` around ``wf.validate()`` keeps working while new code can catch
``ReflowError`` alone. Messages are one line that names the thing, what was wrong and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# Set to show tracebacks of user errors (the CLI's --debug).
DEBUG_ENV = "REFLOW_DEBUG"


class ReflowWarning(UserWarning):
    """Something the user should change, though the work goes on (the CLI prints it as one
    ``warning:`` line)."""


class ReflowError(Exception):
    """Base of every error reflow raises on purpose; the CLI prints these as one line."""


class GraphError(ReflowError, ValueError):
    """The workflow graph is invalid: unknown step, cycle, duplicate name, bad decorator use."""


class WiringError(ReflowError, TypeError):
    """A data edge joins types that cannot be wired together."""


class MissingParameterError(ReflowError, TypeError):
    """Required run parameters were not given; the message lists them all as CLI flags."""


class ParameterError(ReflowError, TypeError):
    """A run parameter was given a value of the wrong type or an unknown name."""


class EncodeError(ReflowError, TypeError):
    """A value cannot be encoded by the typed JSON codec (so it cannot be hashed or stored)."""


class UnknownRunError(ReflowError, KeyError):
    """No run with this id exists in the store."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument
        return str(self.args[0]) if self.args else ""


class UnknownTaskError(ReflowError, KeyError, ValueError):
    """A task name that the workflow or run does not have.

    A ``KeyError`` like an unknown run id, and a ``ValueError`` like the other name errors
    of a graph (SPEC §9), so code catching either keeps working.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunFailedError(ReflowError, RuntimeError):
    """A run stopped at its first failure (``on_error="stop"``); carries the run id."""

    def __init__(self, message: str, run_id: str, task: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.task = task


class RunStalledError(ReflowError, RuntimeError):
    """A RUNNING run that nothing works on any more (its driver or process is gone).

    ``Run.wait()`` raises it instead of waiting for ever; ``reflow resume`` restarts the run.
    """

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class OptionError(ReflowError, ValueError):
    """An argument of a run (``on_error``, ``max_workers``, ``store``, the run directory) that
    cannot be used as given."""


class ConfigError(ReflowError, ValueError):
    """The configuration file or a REFLOW_* variable is malformed."""


class StoreError(ReflowError, RuntimeError):
    """The manifest store is unreachable, locked past the deadline, or too new for this version.

    ``run_id`` names the run it stopped, when it stopped one (``run_local``).
    """

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ExecutorError(ReflowError, RuntimeError):
    """A scheduler is missing, or refused or failed a command."""


# How alike a short word (an executor or mode name) must be to be suggested: ``bogus`` and
# ``pbs`` share half their characters.
SHORT_WORD_CUTOFF = 0.7


def suggestion(name: str, candidates: Iterable[str], cutoff: float = 0.5) -> str:
    """Return " Did you mean 'x'?" for the closest candidate, or "" when nothing is close.

    Half the characters in common suits names and ids; short words need more
    (``SHORT_WORD_CUTOFF``).
    """
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return f" Did you mean '{close[0]}'?" if close else ""


class TaskInterrupted(ReflowError, RuntimeError):
    """Raised inside a task when its job is being terminated (SIGTERM), so it can clean up."""
