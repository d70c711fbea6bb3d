"""``LocalExecutor``: jobs on this machine, with no scheduler installed.

Each submission gets a job directory and a small detached *supervisor* process (its own
session, so it outlives the driver that submitted it and can be signalled as a group). The
supervisor runs the elements on at most ``max_workers`` processes and appends one line per
event to ``events`` (``S i`` started, ``E i code`` ended, ``C i`` cancelled); ``query`` reads
that file and whether the supervisor is still alive, so any later process (a restarted
driver, ``reflow status``) sees the same truth without talking to it.

``max_workers`` bounds the machine, not one job: a supervisor runs an element only while it
holds one of ``max_workers`` slots (``_Slots``), shared by every local job, so two tasks of
one run, or two runs, together use at most that many processes.

Commands that speak reflow's worker stream protocol (``REFLOW_STREAMABLE=1`` in the job's
env) run on long-lived worker processes that receive indices on stdin: a trivial element then
costs about a millisecond, not an interpreter start. Other commands get one process per
element, with the index in the environment like on a real scheduler.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Self

from reflow.engine.results import INTERRUPTED_EXIT
from reflow.errors import ExecutorError
from reflow.executors.base import (
    INDEX_BASE_ENV,
    INDEX_PLACEHOLDER,
    INDEX_VAR_ENV,
    Executor,
    JobSpec,
    JobState,
    JobStatus,
)
from reflow.processes import process_alive

STREAMABLE_ENV = "REFLOW_STREAMABLE"
# Seconds between SIGTERM and SIGKILL for a cancelled element (Slurm's KillWait does the
# same): a task that catches Exception around its work also swallows TaskInterrupted.
KILL_AFTER_ENV = "REFLOW_LOCAL_KILL_AFTER"
KILL_AFTER_DEFAULT = 10.0
_INDEX_VAR = "REFLOW_LOCAL_INDEX"
_SINGLETON = -1  # the event-file index of a job that is not an array


def default_state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base else Path.home() / ".cache"
    return root / "reflow" / "local-jobs"


class LocalExecutor(Executor):
    """Runs jobs as local processes, at most ``max_workers`` at once on this machine."""

    name: ClassVar[str] = "local"
    index_base: ClassVar[int] = 0
    index_env_var: ClassVar[str] = _INDEX_VAR

    def __init__(self, max_workers: int | None = None, state_dir: Path | None = None) -> None:
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        self.state_dir = state_dir or default_state_dir()
        # What each job's events file said so far: a driver polling a 20,000-element array
        # reads only the lines added since its last poll, not the whole file each time.
        self._views: dict[str, _JobView] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Self:
        workers = (config or {}).get("max_workers")
        return cls(max_workers=int(workers) if workers else None)

    # -- the interface ---------------------------------------------------------------------
    def submit(self, job: JobSpec) -> str:
        job_id = f"local-{secrets.token_hex(5)}"
        directory = self.state_dir / job_id
        directory.mkdir(parents=True)
        parallel = min(self.max_workers, job.array_parallelism or self.max_workers)
        (directory / "job.json").write_text(json.dumps({
            "name": job.name, "command": list(job.command), "env": dict(job.env),
            "workdir": str(job.workdir), "stdout": str(job.stdout), "stderr": str(job.stderr),
            "indices": list(job.array_indices) if job.array_indices is not None else None,
            "parallel": parallel,
            "slots": self.max_workers,
            "after": [str(self.state_dir / _base(j)) for j in job.after_any],
        }), encoding="utf-8")
        try:
            with open(directory / "supervisor.log", "ab") as log:
                subprocess.Popen(
                    [sys.executable, "-m", "reflow.executors.local", str(directory)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True, cwd=job.workdir,
                )
        except OSError as exc:
            raise ExecutorError(
                f"local job {job.name}: cannot start its supervisor ({exc}); check that "
                f"{job.workdir} exists and {sys.executable} runs"
            ) from exc
        return job_id

    def cancel(self, job_ids: Sequence[str]) -> None:
        whole: set[str] = set()
        elements: dict[str, list[int]] = {}
        for job_id in job_ids:
            base, _, index = job_id.partition("_")
            if index:
                elements.setdefault(base, []).append(int(index))
            else:
                whole.add(base)
        for base, indices in elements.items():
            if base not in whole:
                with open(self.state_dir / base / "cancel", "a", encoding="utf-8") as handle:
                    handle.write("".join(f"{i}\n" for i in indices))
                _signal(self.state_dir / base, signal.SIGUSR1)
        for base in whole:
            (self.state_dir / base / "cancel").write_text("all\n", encoding="utf-8")
            _signal(self.state_dir / base, signal.SIGTERM, group=True)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for job_id in job_ids:
            base, _, index = job_id.partition("_")
            view = self._views.get(base)
            if view is None or not view.known:
                view = self._views[base] = _JobView.read(self.state_dir / base)
            else:
                view.refresh()
            if index:
                out[job_id] = view.status(job_id, int(index))
            elif view.indices is None:
                out[job_id] = view.status(job_id, _SINGLETON)
            else:
                for i in view.indices:
                    element = self.array_element_id(base, i)
                    out[element] = view.status(element, i)
        return out


def _base(job_id: str) -> str:
    return job_id.partition("_")[0]


def _alive(directory: Path) -> bool:
    """The supervisor still runs (pid file + the pid's command line, against pid reuse)."""
    try:
        pid = int((directory / "pid").read_text())
    except (OSError, ValueError):
        return not (directory / "done").exists() and _young(directory)
    return process_alive(pid, cmdline_marks=(str(directory).encode(),))


def _young(directory: Path) -> bool:
    """A just-submitted job whose supervisor has not written its pid yet counts as alive."""
    try:
        return time.time() - (directory / "job.json").stat().st_mtime < 30
    except OSError:
        return False


def _signal(directory: Path, signum: int, group: bool = False) -> None:
    if not _alive(directory):
        return
    try:
        pid = int((directory / "pid").read_text())
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (OSError, ValueError):
        pass


@dataclass
class _JobView:
    """What ``query`` knows about one job: the events so far and whether it still runs."""

    indices: list[int] | None
    started: set[int] = field(default_factory=set)
    ended: dict[int, int] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    alive: bool = False
    known: bool = True
    directory: Path | None = None
    offset: int = 0  # bytes of ``events`` taken in so far (whole lines only)
    # Each element's status as last computed, until an event about it (or the supervisor's
    # end) changes it: most elements of a big array stay queued or ended across many polls.
    known_status: dict[int, JobStatus] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> _JobView:
        try:
            job = json.loads((directory / "job.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(None, known=False)
        view = cls(job["indices"], directory=directory)
        view.refresh()
        return view

    def refresh(self) -> None:
        """Take in the events appended since the last look.

        Liveness is asked first: a supervisor that ends meanwhile has written all its events
        by then, so an element is never taken for lost while its end is still unread.
        """
        assert self.directory is not None
        alive = _alive(self.directory)
        if alive != self.alive:
            self.known_status.clear()
        self.alive = alive
        try:
            with open(self.directory / "events", "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            data = b""
        whole = data.rfind(b"\n") + 1  # a line being written is read next time
        self.offset += whole
        for line in data[:whole].decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "S":
                index = int(parts[1])
                self.started.add(index)
            elif len(parts) == 3 and parts[0] == "E":
                index = int(parts[1])
                self.ended[index] = int(parts[2])
            elif len(parts) == 2 and parts[0] == "C":
                index = int(parts[1])
                self.cancelled.add(index)
            else:
                continue
            self.known_status.pop(index, None)

    def status(self, job_id: str, index: int) -> JobStatus:
        known = self.known_status.get(index)
        if known is None or known.job_id != job_id:
            known = self.known_status[index] = self._status(job_id, index)
        return known

    def _status(self, job_id: str, index: int) -> JobStatus:
        if not self.known:
            return JobStatus(job_id, JobState.UNKNOWN, None, "UNKNOWN")
        if index in self.cancelled:
            return JobStatus(job_id, JobState.CANCELLED, None, "CANCELLED")
        if index in self.ended:
            code = self.ended[index]
            if code == 0:
                return JobStatus(job_id, JobState.COMPLETED, 0, "COMPLETED")
            raw = "KILLED" if code > 128 else "FAILED"
            return JobStatus(job_id, JobState.FAILED, code, raw,
                             f"worker logs in {self.directory}")
        if self.alive:
            state = JobState.RUNNING if index in self.started else JobState.PENDING
            return JobStatus(job_id, state, None, str(state))
        return JobStatus(job_id, JobState.NODE_FAIL, None, "LOST",
                         "the local supervisor ended without finishing this element; its "
                         f"logs are in {self.directory}")


# ------------------------------------------------------------------------------ supervisor


class _Slots:
    """Places for running elements on this machine: an ``flock`` on ``<dir>/<i>`` each.

    A supervisor of an executor with ``max_workers=N`` takes only slots below N, so all local
    jobs of that executor (and of any other with N or fewer) run at most N elements at once.
    A lock ends with its process, so a killed supervisor never keeps a slot.
    """

    def __init__(self, directory: Path, count: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = [directory / str(i) for i in range(count)]

    def take(self) -> int | None:
        """An open, locked slot file descriptor, or None while all N are in use."""
        for path in self.paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @staticmethod
    def give(fd: int) -> None:
        os.close(fd)  # closing the only descriptor releases the lock


class _Supervisor:
    """Runs one job's elements on a bounded set of processes and logs every event."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.job = json.loads((directory / "job.json").read_text(encoding="utf-8"))
        indices = self.job["indices"]
        self.queue: deque[int] = deque(indices if indices is not None else [_SINGLETON])
        self.events = open(directory / "events", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self.cancel_all = False
        self.cancelled: set[int] = set()
        self.cancels_applied = (False, 0)  # what drop_cancelled last took out of the queue
        self.kill_after = float(os.environ.get(KILL_AFTER_ENV) or KILL_AFTER_DEFAULT)
        self.signalled: dict[int, float] = {}  # pid -> when SIGTERM was sent
        count = int(self.job.get("slots") or self.job["parallel"])
        self.slots = _Slots(directory.parent / "slots", count)

    def log(self, line: str) -> None:
        self.events.write(line + "\n")

    def env_for(self, index: int | None) -> dict[str, str]:
        env = {**os.environ, **self.job["env"]}
        if index is not None and index != _SINGLETON:
            env.update({_INDEX_VAR: str(index), INDEX_VAR_ENV: _INDEX_VAR, INDEX_BASE_ENV: "0"})
        return env

    def path(self, key: str, index: int) -> str:
        text: str = self.job[key]
        return text.replace(INDEX_PLACEHOLDER, "" if index == _SINGLETON else str(index))

    def read_cancels(self) -> None:
        try:
            lines = (self.dir / "cancel").read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return
        if "all" in lines:
            self.cancel_all = True
        self.cancelled.update(int(x) for x in lines if x.lstrip("-").isdigit())

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM a cancelled element's process once, SIGKILL it if it outlives the grace."""
        first = self.signalled.get(proc.pid)
        if first is None:
            self.signalled[proc.pid] = time.monotonic()
            proc.terminate()
        elif time.monotonic() - first >= self.kill_after:
            proc.kill()

    def next_index(self) -> int | None:
        self.drop_cancelled()
        return self.queue.popleft() if self.queue else None

    def drop_cancelled(self) -> None:
        """Log queued elements cancelled meanwhile at once, not when a slot frees up.

        The queue is walked only when a cancel arrived since the last walk: this runs before
        every element and on every idle loop.
        """
        self.read_cancels()
        seen = (self.cancel_all, len(self.cancelled))
        if seen == self.cancels_applied:
            return
        self.cancels_applied = seen
        kept: deque[int] = deque()
        for index in self.queue:
            if self.cancel_all or index in self.cancelled:
                self.log(f"C {index}")
            else:
                kept.append(index)
        self.queue = kept

    def wait_for_dependencies(self) -> None:
        for dep in self.job["after"]:
            while not (Path(dep) / "done").exists() and _alive(Path(dep)):
                time.sleep(0.5)

    def run(self) -> None:
        self.wait_for_dependencies()
        if self.job["env"].get(STREAMABLE_ENV) == "1":
            self.run_streaming()
        else:
            self.run_processes()
        while self.queue:  # cancelled before they started
            self.log(f"C {self.queue.popleft()}")

    # one process per element: any command
    def run_processes(self) -> None:
        running: dict[int, subprocess.Popen[bytes]] = {}
        held: dict[int, int] = {}  # index -> slot
        while self.queue or running:
            self.drop_cancelled()
            while len(running) < self.job["parallel"] and self.queue:
                slot = self.slots.take()
                if slot is None:
                    break
                index = self.next_index()
                if index is None:
                    self.slots.give(slot)
                    break
                with open(self.path("stdout", index), "ab") as out, \
                        open(self.path("stderr", index), "ab") as err:
                    running[index] = subprocess.Popen(
                        self.job["command"], stdin=subprocess.DEVNULL, stdout=out,
                        stderr=err, env=self.env_for(index), cwd=self.job["workdir"],
                        preexec_fn=die_with_parent())
                held[index] = slot
                self.log(f"S {index}")
            for index, proc in list(running.items()):
                code = proc.poll()
                if code is not None:
                    del running[index]
                    self.slots.give(held.pop(index))
                    self.end(index, code)
                elif self.cancel_all or index in self.cancelled:
                    self.stop(proc)
            if running or self.queue:
                time.sleep(0.02)

    def end(self, index: int, code: int) -> None:
        if self.cancel_all or index in self.cancelled:
            self.log(f"C {index}")
        else:
            self.log(f"E {index} {128 - code if code < 0 else code}")

    # long-lived workers: the reflow worker's stream protocol
    def run_streaming(self) -> None:
        sel = selectors.DefaultSelector()
        busy: dict[int, _Stream] = {}
        spawned = 0
        while True:
            waiting = False  # for a slot another job holds
            while len(busy) < self.job["parallel"] and self.queue and not self.cancel_all:
                slot = self.slots.take()
                if slot is None:
                    waiting = True
                    break
                spawned += 1
                stream = _Stream.start(self, spawned, slot)
                index = self.next_index()
                if index is None:
                    stream.close()
                    break
                stream.send(index)
                busy[stream.proc.pid] = stream
                sel.register(stream.out, selectors.EVENT_READ, stream)
            if not busy:
                if not waiting:
                    return
                time.sleep(0.02)
                self.drop_cancelled()
                continue
            for key, _ in sel.select(timeout=0.05 if waiting else 0.5):
                stream = key.data
                line = stream.out.readline()
                if line:
                    code = int(line.split()[1])
                    self.end(stream.current, code)
                    stream.current = None
                    # An interrupted worker exits after reporting: its next element goes to
                    # a new worker, not into the pipe of a process that is gone.
                    index = self.next_index() if code != INTERRUPTED_EXIT else None
                    if index is not None:
                        stream.send(index)
                        continue
                sel.unregister(stream.out)
                del busy[stream.proc.pid]
                code = stream.close()
                if not line and stream.current is not None:  # died mid-element: kill -9, OOM
                    self.end(stream.current, code if code else 1)
            self.read_cancels()
            for stream in busy.values():
                if stream.current is not None and (self.cancel_all
                                                   or stream.current in self.cancelled):
                    self.stop(stream.proc)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has a worker killed when its supervisor dies (Linux only).

    A supervisor killed with -9 (the OOM killer, a user) left its workers running: the
    element was recorded lost, and a retry ran a second copy beside the first. A scheduler
    kills the whole job; ``PR_SET_PDEATHSIG`` does that here. Elsewhere (macOS) None.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:  # runs in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the signal was armed
            os._exit(1)

    return arm


_PR_SET_PDEATHSIG = 1


@dataclass
class _Stream:
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    sup: _Supervisor
    slot: int
    current: int | None = None

    @classmethod
    def start(cls, sup: _Supervisor, number: int, slot: int) -> _Stream:
        env = sup.env_for(None)
        env.update({"REFLOW_LOCAL_STREAM": "1", "REFLOW_LOCAL_STDOUT": sup.job["stdout"],
                    "REFLOW_LOCAL_STDERR": sup.job["stderr"]})
        with open(sup.dir / f"worker-{number}.log", "ab") as log:
            proc = subprocess.Popen(sup.job["command"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, env=env,
                                    cwd=sup.job["workdir"], preexec_fn=die_with_parent())
        assert proc.stdout is not None
        return cls(proc, proc.stdout, sup, slot)

    def send(self, index: int) -> None:
        self.current = index
        self.sup.log(f"S {index}")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"-\n" if index == _SINGLETON else f"{index}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died; its stdout reaches EOF and the element is recorded as lost

    def close(self) -> int:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        code = self.proc.wait()
        _Slots.give(self.slot)
        return 128 - code if code < 0 else code


def _supervise(directory: Path) -> None:
    sup = _Supervisor(directory)
    (directory / "pid").write_text(str(os.getpid()), encoding="utf-8")

    def stop(signum: int, frame: object) -> None:
        sup.read_cancels()  # SIGTERM to the group: workers get it too; stop feeding them

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, stop)
    try:
        sup.run()
    finally:
        (directory / "done").write_text("", encoding="utf-8")


if __name__ == "__main__":
    _supervise(Path(sys.argv[1]))
