"""Is a recorded process still alive? One answer for drivers, supervisors and in-process runs.

A pid recorded in a file can outlive its process and be reused by an unrelated one, and an
exited child that nobody reaped still answers ``kill(pid, 0)``; both would make a dead driver
look alive and a stalled run look healthy, so both are checked.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: object, *, cmdline_marks: tuple[bytes, ...] = ()) -> bool:
    """Whether ``pid`` runs and is not a zombie; with ``cmdline_marks``, one must occur in its
    command line (so a reused pid of some other program counts as dead)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if cmdline_marks:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            cmdline = b""
        if cmdline and not any(mark in cmdline for mark in cmdline_marks):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
