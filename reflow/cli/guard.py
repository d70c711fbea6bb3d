"""Turn user errors into one line on stderr and exit code 1, for every command.

SPEC §9: a user error (an invalid graph, a missing parameter, an unknown run id, a malformed
config) is never shown as a traceback; ``--debug`` (or ``REFLOW_DEBUG=1``) shows it for bug
reports. Usage errors stay typer's (exit code 2). The wrapper adds ``--debug`` to each command
itself, so no command has to declare an option it does not use.
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TextIO, TypeVar

import typer

from reflow.errors import DEBUG_ENV, ReflowError, ReflowWarning
from reflow.progress import silence_stdout

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

# Validation raises the built-in types as well as ReflowError subclasses (SPEC §9), a wait
# that runs out raises TimeoutError, and the file system OSError (a run dir that is a file, a
# folder without write permission): all are the user's to act on, not bugs to report.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ReflowError,
    ValueError,
    TypeError,
    KeyError,
    TimeoutError,
    OSError,
)

DebugOption = Annotated[
    bool,
    typer.Option("--debug", help="Show the full traceback of an error.", show_default=False),
]


def error_message(exc: BaseException) -> str:
    """One line for an exception; a plain KeyError would otherwise print its repr."""
    if isinstance(exc, KeyError) and not isinstance(exc, ReflowError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}; check the path and its permissions"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise (``raise fail(...)``)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _debug_wanted(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def report(exc: BaseException, debug: bool) -> typer.Exit:
    """Print a user error (with its traceback under --debug); returns the exit to raise."""
    if _debug_wanted(debug):
        traceback.print_exception(exc)
    return fail(error_message(exc))


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show reflow's own warnings as ``warning: <message>``: on the command line the source
    line Python would print is reflow's, not the user's."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, ReflowWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def guarded(func: F) -> F:
    """Wrap a command function: user errors exit 1 with one line; adds ``--debug``."""
    signature = inspect.signature(func, eval_str=True)

    @functools.wraps(func)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        try:
            with one_line_warnings():
                return func(*args, **kwargs)
        except BrokenPipeError:  # an OSError, but no user error: caught first
            # The reader went away (`... | head`): stop quietly, as other Unix tools do.
            silence_stdout()
            raise typer.Exit(EXIT_ERROR) from None
        except USER_ERRORS as exc:
            raise report(exc, debug) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    debug = inspect.Parameter(
        "debug", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=DebugOption
    )
    parameters = [*signature.parameters.values(), debug]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper  # type: ignore[return-value]
