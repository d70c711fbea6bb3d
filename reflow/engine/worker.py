"""The worker: run one payload element (or, for the local executor, a stream of them).

``python -m reflow.engine.worker PAYLOAD_DIR`` runs the element named by the scheduler's
array index (or the singleton), writing ``started`` and result files and never opening the
store. It imports only the codec, hashing, the payload/result formats and the user's module,
so that an array element starts in the time of a bare interpreter plus the user's imports.

With ``REFLOW_LOCAL_STREAM=1`` (set by the local executor's supervisor) the process stays
alive and reads array indices from stdin, one per line, answering ``<index> <exit code>`` on
the original stdout, while each element's own output goes to its log files; that is what
makes a trivial element cost about a millisecond instead of an interpreter start.

SIGTERM (scheduler cancel or time limit) raises ``TaskInterrupted`` inside the task so it can
clean up; the element then ends FAILED with a clear message, also when the task caught the
interrupt (a bare ``except Exception``) and returned: what it returned was cut short.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from reflow.engine.payloads import Element, Meta, read_element, read_meta, read_shared
from reflow.engine.results import INTERRUPTED_EXIT, write_result, write_started
from reflow.errors import EncodeError, TaskInterrupted

STREAM_ENV = "REFLOW_LOCAL_STREAM"
STDOUT_ENV = "REFLOW_LOCAL_STDOUT"
STDERR_ENV = "REFLOW_LOCAL_STDERR"
INTERRUPTED = "interrupted: the job was terminated (SIGTERM: cancelled or out of time)"


SWALLOWED = (" (the task caught TaskInterrupted and went on; re-raise it after cleaning up: "
             "what a terminated task returns is not recorded)")


class _Termination:
    """Whether SIGTERM arrived: the handler's exception can be caught by the task, this not."""

    seen = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _Termination.seen = True
    raise TaskInterrupted(INTERRUPTED)


class Worker:
    """One payload's task function, loaded once and applied to any number of elements."""

    def __init__(self, payload: Path) -> None:
        from reflow.engine.entrypoints import load_workflow

        self.payload = payload
        self.meta: Meta = read_meta(payload)
        wf = load_workflow(self.meta.entrypoint, self.meta.workflow, self.meta.import_root)
        spec = wf.tasks[self.meta.task]
        self.func: Callable[..., Any] = spec.func
        self.rundir_params = spec.rundir_params
        self._shared: dict[str, str] | None = None

    def shared(self, _digests: object = None) -> dict[str, str]:
        """The payload's shared input texts, read once for all the elements this worker runs
        (a stream worker may run thousands, each referring to the same megabyte)."""
        if self._shared is None:
            self._shared = read_shared(self.payload)
        return self._shared

    def run(self, index: int | None) -> int:
        """Run one element; returns the process exit code it deserves (0 or 1)."""
        from reflow.core.codec import loads
        from reflow.core.hashing import value_hash
        from reflow.core.shared import resolve

        element: Element = read_element(self.payload, index)
        run_dir, state_dir = self.meta.run_dir, self.meta.state_dir
        write_started(state_dir, element.instance_id, element.attempt)
        label = self.meta.task + (f"[{element.index}]" if element.index is not None else "")
        try:
            kwargs = loads(resolve(element.input_json, self.shared))
            for name in self.rundir_params:
                kwargs[name] = run_dir
            value = self.func(**kwargs)
            out = value_hash(value, where=f"output of task '{label}'")
        except EncodeError as exc:
            text = str(exc)
        except TaskInterrupted as exc:
            self._interrupted(element, "".join(traceback.format_exception(exc)))
        except Exception as exc:  # the task's own failure, recorded with its traceback
            text = "".join(traceback.format_exception(exc))
            if _Termination.seen:
                self._interrupted(element, f"{text}{INTERRUPTED}{SWALLOWED}\n")
        else:
            if _Termination.seen:
                self._interrupted(element, f"{INTERRUPTED}{SWALLOWED}\n")
            write_result(state_dir, element.instance_id, element.attempt, state="SUCCESS",
                         output=out.canonical, output_hash=out.digest,
                         fingerprints=json.dumps(out.fingerprints) if out.fingerprints
                         else None)
            return 0
        sys.stderr.write(text)
        write_result(state_dir, element.instance_id, element.attempt, state="FAILED",
                     error_text=text, exit_code=1)
        return 1

    def _interrupted(self, element: Element, text: str) -> NoReturn:
        """End ``element`` FAILED as terminated, and the worker with it (no next element)."""
        write_result(self.meta.state_dir, element.instance_id, element.attempt, state="FAILED",
                     error_text=text, exit_code=INTERRUPTED_EXIT)
        raise TaskInterrupted(INTERRUPTED)


def _redirect(template: str | None, index: int | None, fd: int) -> None:
    if not template:
        return
    path = template.replace("{index}", "" if index is None else str(index))
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, fd)
    os.close(target)


def serve(worker: Worker) -> int:
    """Stream mode: indices in on stdin, ``<index> <code>`` out on the saved stdout."""
    answer = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        index = None if text == "-" else int(text)
        sys.stdout.flush()
        sys.stderr.flush()
        _redirect(os.environ.get(STDOUT_ENV), index, 1)
        _redirect(os.environ.get(STDERR_ENV), index, 2)
        try:
            code = worker.run(index)
        except TaskInterrupted:
            answer.write(f"{text} {INTERRUPTED_EXIT}\n")
            return INTERRUPTED_EXIT
        sys.stdout.flush()
        sys.stderr.flush()
        answer.write(f"{text} {code}\n")
    return 0


def _report_load_failure(payload: Path, exc: Exception) -> None:
    """Record why the task could not even be loaded, so status shows it instead of a guess."""
    if os.environ.get(STREAM_ENV) == "1":
        return  # the supervisor reports the lost elements of a stream worker
    from reflow.executors.base import array_index_from_env

    try:
        meta = read_meta(payload)
        element = read_element(payload, array_index_from_env() if meta.is_array else None)
    except Exception:  # nothing to attach the error to: the job log has the traceback
        return
    text = ("could not load the task on this host: "
            + "".join(traceback.format_exception(exc)))
    write_result(meta.state_dir, element.instance_id, element.attempt, state="FAILED",
                 error_text=text, exit_code=1)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m reflow.engine.worker PAYLOAD_DIR\n")
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            worker = Worker(Path(args[0]))
        except Exception as exc:  # the pipeline cannot be imported here: say so per element
            _report_load_failure(Path(args[0]), exc)
            raise
        if os.environ.get(STREAM_ENV) == "1":
            return serve(worker)
        from reflow.executors.base import array_index_from_env

        index = array_index_from_env() if worker.meta.is_array else None
        return worker.run(index)
    except TaskInterrupted:
        return INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
