"""A pipeline script's definition errors as one line, like every other CLI error.

Decorators refuse a bad definition at once (SPEC §1), so a duplicate task name raises while
``python pipeline.py --help`` is still importing the script, before ``wf.cli()`` can catch it.
A workflow defined in ``__main__`` therefore installs an excepthook that prints a GraphError or
WiringError escaping the script as ``error: <message> (<file>:<line>)`` and exits 1. Every
other exception, and every error under ``REFLOW_DEBUG=1``, keeps Python's traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import TracebackType

from reflow.errors import DEBUG_ENV, GraphError, WiringError

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
_installed = False


def users_frame(frames: traceback.StackSummary) -> traceback.FrameSummary | None:
    """The innermost frame in the user's code: a reflow check that refused a decorator
    raises inside reflow, but the line to fix is the pipeline's."""
    outside = [f for f in frames if not f.filename.startswith(_PACKAGE_DIR)
               and "importlib" not in f.filename]
    found = outside or frames
    return found[-1] if found else None


def install_definition_error_hook() -> None:
    """Print definition errors that escape the main script as one line (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException,
             tb: TracebackType | None) -> None:
        # ``--debug`` is not parsed yet (the script is still being imported): look for it.
        debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in sys.argv[1:]
        if debug or not issubclass(kind, GraphError | WiringError):
            previous(kind, exc, tb)
            return
        frame = users_frame(traceback.extract_tb(tb))
        where = f" ({frame.filename}:{frame.lineno})" if frame else ""
        print(f"error: {exc}{where}", file=sys.stderr)

    sys.excepthook = hook
