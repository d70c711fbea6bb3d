"""``reflow logs``: print (or follow) the stdout/stderr files of one task instance.

Log paths come from the run's records (``reflow.actions.log_paths``), so this works from any
directory and for any scheduler. Following polls the files' sizes, like ``tail -f``, and stops
by itself once the instance has ended and everything it wrote has been printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from reflow.errors import ReflowError

Stream = Literal["both", "stdout", "stderr"]
POLL_SECONDS = 0.5
_ENDED = ("SUCCESS", "FAILED", "CANCELLED")


def choose(stdout: Path | None, stderr: Path | None, stream: Stream) -> list[Path]:
    """The files to show, without showing one file twice when a scheduler merged them."""
    wanted = {"both": [stdout, stderr], "stdout": [stdout], "stderr": [stderr]}[stream]
    out: list[Path] = []
    for path in wanted:
        if path is not None and path not in out:
            out.append(path)
    return out


class LogPrinter:
    """Copies new bytes of several files to stdout, with ``==> file <==`` headers as tail does."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._offsets = dict.fromkeys(paths, 0)
        self._last: Path | None = None

    def drain(self) -> bool:
        """Print whatever was appended since the last call; True if anything was."""
        wrote = False
        for path in self._paths:
            try:
                with path.open("rb") as handle:
                    handle.seek(self._offsets[path])
                    data = handle.read()
            except FileNotFoundError:
                continue  # not created yet: the job may not have started
            if not data:
                continue
            self._offsets[path] += len(data)
            if len(self._paths) > 1 and self._last != path:
                prefix = b"\n" if self._last is not None else b""
                sys.stdout.buffer.write(prefix + f"==> {path} <==\n".encode())
            self._last = path
            sys.stdout.buffer.write(data)
            wrote = True
        sys.stdout.buffer.flush()
        return wrote


def show(paths: list[Path], where: str) -> None:
    """Print the files as they are now."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        names = ", ".join(str(p) for p in paths) or "none recorded"
        raise ReflowError(
            f"no log file yet for {where} ({names}); the instance has not started, or it ran "
            "in-process (run_local), which writes no log files"
        )
    if not LogPrinter(existing).drain():
        _say_empty(where, existing)


def _say_empty(where: str, paths: list[Path]) -> None:
    """Silence would look like a broken command."""
    names = ", ".join(str(p) for p in paths)
    print(f"(the log files of {where} are empty: {names})", file=sys.stderr)


def follow(paths: list[Path], ended: Callable[[], bool], where: str) -> None:
    """Print the files and keep printing what is appended until the instance has ended."""
    if not paths:
        raise ReflowError("this instance records no log files to follow")
    printer = LogPrinter(paths)
    printed = False
    while True:
        finished = ended()  # checked before reading, so the last output is never lost
        wrote = printer.drain()
        printed = printed or wrote
        if not wrote and finished:
            if not printed:
                _say_empty(where, paths)
            return
        time.sleep(POLL_SECONDS)


def instance_ended(state: str) -> bool:
    return state in _ENDED
