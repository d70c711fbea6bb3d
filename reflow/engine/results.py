"""Started and result files: how a worker reports back without ever opening the store.

A worker on a compute node writes ``<state dir>/results/<instance id>.started`` when it
begins and ``<instance id>.result`` when it ends, each atomically (temporary file, then
rename), so the driver never sees half a file from a healthy worker. There is no fsync: a
result lost with a crashed node is found by reconciliation and recomputed, while an fsync per
element would cost more than a trivial task itself. The instance id already
names one attempt, and the attempt number is repeated inside, so a late file from a
superseded attempt can be recognised and ignored. Anything that does not parse is reported
as a ``BadFile`` and moved aside instead of crashing the driver (SPEC §9).

This module is imported by workers: stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reflow.core.codec import storable_text

# 128 + SIGTERM: what a worker reports for a task stopped by SIGTERM (TaskInterrupted).
INTERRUPTED_EXIT = 143
STARTED = ".started"
RESULT = ".result"
BAD = ".bad"


def run_state_dir(run_dir: Path, run_id: str) -> Path:
    """Where the driver and the workers of one run keep their files inside its run dir.

    One folder per run: runs may share a run dir, and an instance id is unique only within
    its store, so a driver must never see (or clean up) another run's files.
    """
    return run_dir / ".reflow" / "runs" / run_id


def results_dir(state_dir: Path) -> Path:
    return state_dir / "results"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so that readers see either nothing or the whole document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
    os.replace(tmp, path)


def write_started(state_dir: Path, instance_id: int, attempt: int) -> None:
    write_atomic(results_dir(state_dir) / f"{instance_id}{STARTED}", {
        "instance_id": instance_id, "attempt": attempt, "started_at": _now(),
        "host": socket.gethostname(), "pid": os.getpid(),
    })


def write_result(state_dir: Path, instance_id: int, attempt: int, *, state: str,
                 output: str | None = None, output_hash: str | None = None,
                 fingerprints: str | None = None, error_text: str | None = None,
                 exit_code: int = 0) -> None:
    write_atomic(results_dir(state_dir) / f"{instance_id}{RESULT}", {
        "instance_id": instance_id, "attempt": attempt, "state": state, "output": output,
        "output_hash": output_hash, "fingerprints": fingerprints, "error_text": error_text,
        "exit_code": exit_code, "finished_at": _now(),
    })


@dataclass(frozen=True)
class Started:
    path: Path
    instance_id: int
    attempt: int
    started_at: datetime


@dataclass(frozen=True)
class Finished:
    path: Path
    instance_id: int
    attempt: int
    state: str
    output: str | None
    output_hash: str | None
    fingerprints: str | None
    error_text: str | None
    exit_code: int
    finished_at: datetime


@dataclass(frozen=True)
class BadFile:
    path: Path
    problem: str


Report = Started | Finished | BadFile

_STATES = frozenset({"SUCCESS", "FAILED"})
_HEX = frozenset("0123456789abcdef")
_INT_RANGE = range(-(2**31), 2**31)  # an INTEGER column on every store


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value not in _INT_RANGE:
        raise ValueError(f"{key} = {value!r} is not a 32-bit integer")
    return value


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} = {value!r} is not text")
    return value


def _json_text(data: dict[str, Any], key: str) -> str | None:
    value = _text(data, key)
    if value is not None:
        try:
            json.loads(value)
        except ValueError:
            raise ValueError(f"{key} is not JSON text") from None
    return value


def _time(data: dict[str, Any], key: str) -> datetime:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} = {value!r} is not an ISO time")
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"{key} = {value!r} has no time zone")
    return at


def _parse(path: Path) -> Report:
    """One file, checked field by field: a bad value must not reach the store, where it would
    fail the driver's transaction (or, as an output, every later step that reads it)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        instance_id, attempt = _int(data, "instance_id"), _int(data, "attempt")
        if path.name != f"{instance_id}{path.suffix}":
            raise ValueError(f"names instance {instance_id}, not the one in its file name")
        if path.suffix == STARTED:
            return Started(path, instance_id, attempt, _time(data, "started_at"))
        state = data.get("state")
        if state not in _STATES:
            raise ValueError(f"state {state!r} is not SUCCESS or FAILED")
        output, output_hash = _json_text(data, "output"), _text(data, "output_hash")
        if state == "SUCCESS" and (output is None or output_hash is None
                                   or len(output_hash) != 64 or not _HEX.issuperset(output_hash)):
            raise ValueError("a SUCCESS result needs JSON output and a SHA-256 hex output_hash")
        return Finished(path, instance_id, attempt, state, output, output_hash,
                        _json_text(data, "fingerprints"), _error_text(data),
                        _int(data, "exit_code", 0), _time(data, "finished_at"))
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        return BadFile(path, f"{type(exc).__name__}: {exc}")


def _error_text(data: dict[str, Any]) -> str | None:
    """A traceback may quote a file name with undecodable bytes, which the store cannot keep
    as they are (``storable_text``)."""
    text = _text(data, "error_text")
    return None if text is None else storable_text(text)


def scan(state_dir: Path) -> Iterator[Report]:
    """Every started/result file waiting to be ingested (started files first per instance)."""
    directory = results_dir(state_dir)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in sorted(names, key=lambda n: (not n.endswith(STARTED), n)):
        if name.startswith(".") or not name.endswith((STARTED, RESULT)):
            continue
        yield _parse(directory / name)


@dataclass(frozen=True)
class Waiting:
    """Worker reports not yet recorded in the store: between two steps of a chained driver
    (which runs again only once the work it submitted has ended) the store still says
    SUBMITTED for work that is running or done; these files say how far it got."""

    started: int
    finished: int

    def __bool__(self) -> bool:
        return bool(self.started or self.finished)

    def text(self) -> str:
        return (f"{self.finished} finished and {self.started} started, not yet recorded "
                "(the next driver step records them)")


NOTHING_WAITING = Waiting(0, 0)


# The last count per results directory, with the directory's mtime: the TUI asks every
# refresh, and listing 100,000 files on a network filesystem each time would be slow.
_COUNTED: dict[Path, tuple[int, Waiting]] = {}


def waiting(state_dir: Path) -> Waiting:
    """Count the reports waiting in ``state_dir`` (a directory listing; nothing is parsed).

    An instance that started and finished leaves both files; it counts once, as finished.
    """
    directory = results_dir(state_dir)
    try:
        stamp = directory.stat().st_mtime_ns
        known = _COUNTED.get(directory)
        if known is not None and known[0] == stamp:
            return known[1]
        names = os.listdir(directory)
    except OSError:
        return NOTHING_WAITING
    finished = {n[:-len(RESULT)] for n in names if n.endswith(RESULT) and n[0] != "."}
    started = {n[:-len(STARTED)] for n in names if n.endswith(STARTED) and n[0] != "."}
    count = Waiting(len(started - finished), len(finished))
    if len(_COUNTED) > 64:
        _COUNTED.clear()
    _COUNTED[directory] = (stamp, count)
    return count


def read_one(state_dir: Path, instance_id: int) -> Report | None:
    """The result file of one instance, if it has appeared since the last scan."""
    path = results_dir(state_dir) / f"{instance_id}{RESULT}"
    return _parse(path) if path.exists() else None


def set_aside_path(state_dir: Path, instance_id: int) -> Path:
    """Where an unreadable result file of ``instance_id`` is kept (``set_aside``)."""
    return results_dir(state_dir) / f"{instance_id}{RESULT}{BAD}"


def set_aside(bad: BadFile) -> None:
    """Rename a malformed file so that later scans do not report it again."""
    with contextlib.suppress(OSError):
        os.replace(bad.path, bad.path.with_name(bad.path.name + BAD))


def consume(report: Started | Finished) -> None:
    """Remove a file whose content is now in the store (or that was rightly ignored)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(report.path)
