"""Slurm: ``sbatch --parsable``, ``scancel``, and one ``sacct`` call per poll.

Indices are 0-based, as in reflow, so element ``123_4`` is reflow's element 4 unless the
array was shifted past MaxArraySize (then its id carries the offset, ``123@1000``).
``sacct`` is the source of truth because it remembers finished jobs for as long as the
accounting database lives; jobs it does not know yet (its records trail by about a
second) and clusters without accounting are answered by ``squeue -t all``, which knows
finished jobs for MinJobAge.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from reflow.core.resources import format_memory
from reflow.errors import ExecutorError
from reflow.executors.base import (
    INDEX_PLACEHOLDER,
    JobSpec,
    JobState,
    JobStatus,
)
from reflow.executors.commands import (
    Command,
    CommandRunner,
    compress_indices,
    error_line,
    exit_code_from_wait_status,
    expand_indices,
)
from reflow.executors.scheduler import SchedulerExecutor, option_flags, with_throttle

_STATES = {
    "PENDING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
}

_ROW_ID = re.compile(r"(?P<job>\d+)(?:_(?:(?P<index>\d+)|\[(?P<pending>[^\]]*)\]))?")
_NO_ACCOUNTING = re.compile(r"accounting storage is disabled", re.IGNORECASE)


def slurm_time(seconds: int) -> str:
    """'D-HH:MM:SS' past a day, else 'HH:MM:SS' (Slurm rounds seconds up to minutes)."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


# The batch script of every job: it runs its arguments, so the job's command reaches Slurm
# as an argv (``sbatch [options] script ARG...``), never as a shell string (``--wrap``).
JOB_SCRIPT = """#!/bin/sh
# Written by reflow: runs the job's command, given as this script's arguments.
exec "$@"
"""


def job_script(job: JobSpec) -> Path:
    return job.workdir / ".reflow" / "slurm-job.sh"


def write_job_script(job: JobSpec) -> None:
    """The script ``sbatch`` reads at submission (Slurm keeps its own copy with the job)."""
    path = job_script(job)
    try:
        if path.read_text(encoding="utf-8") == JOB_SCRIPT:
            return
    except OSError:
        path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(JOB_SCRIPT, encoding="utf-8")
    os.replace(partial, path)


def _escape(path: str) -> str:
    return path.replace("%", "%%")  # sbatch expands %j, %a ... in output paths


class SlurmExecutor(SchedulerExecutor):
    """Slurm adapter. Other scheduler options become ``--key value`` (``_`` -> ``-``; True is
    a bare flag, False leaves it out). An array's log files are also Slurm's ``--output``/
    ``--error`` (``%a`` = reflow's index, append mode), so Slurm's own notices (time limit,
    OOM kill) sit next to the task's output; only a part shifted past MaxArraySize logs them
    to ``<stdout with {index} -> %A_%a.sched>`` instead. ``max_array_size`` defaults to the
    cluster's MaxArraySize, read once per executor from ``scontrol show config``."""

    name: ClassVar[str] = "slurm"
    index_base: ClassVar[int] = 0
    index_env_var: ClassVar[str] = "SLURM_ARRAY_TASK_ID"
    submit_tool: ClassVar[str] = "sbatch"
    cancel_tool: ClassVar[str] = "scancel"
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"socket timed out",
        r"unable to contact slurm controller",
        r"resource temporarily unavailable",
        r"temporarily unable to accept job",
        r"transport endpoint is not connected",
        r"zero bytes were transmitted or received",
        r"connection refused",
    )
    cancel_ignorable: ClassVar[tuple[str, ...]] = (
        r"invalid job id",
        r"already completing or completed",
        r"job has already finished",
    )

    def __init__(
        self, runner: CommandRunner | None = None, *, max_array_size: int | None = None
    ) -> None:
        super().__init__(runner, max_array_size=max_array_size)
        self._accounting = True  # becomes False once sacct says accounting is disabled

    def max_array_size(self) -> int | None:
        if self._max_array_size is None:
            self._max_array_size = self._read_max_array_size()
        return self._max_array_size

    def _read_max_array_size(self) -> int:
        result = self.run(Command(("scontrol", "show", "config")))
        match = re.search(r"^MaxArraySize\s*=\s*(\d+)", result.stdout, re.MULTILINE)
        if result.returncode != 0 or match is None:
            raise ExecutorError(
                f"could not read MaxArraySize from `scontrol show config` ({error_line(result)}); "
                "set [executor] max_array_size to the cluster's value"
            )
        size = int(match.group(1))
        if size < 1:
            raise ExecutorError(
                "job arrays are disabled on this Slurm cluster (MaxArraySize=0); ask the "
                "administrators to enable them"
            )
        return size

    def native_element_id(self, native: str, scheduler_index: int) -> str:
        return f"{native}_{scheduler_index}"

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        argv = ["sbatch", "--parsable", "--job-name", job.name, "--chdir", str(job.workdir)]
        if job.array_indices is not None and offset == 0:
            # %a is reflow's index here: Slurm's own messages (time limit, OOM) land in the
            # element's log files, which the wrapper appends to as well.
            argv += [
                "--output", self._path(job, job.stdout, "%a"),
                "--error", self._path(job, job.stderr, "%a"),
                "--open-mode", "append",
            ]  # fmt: skip
        elif job.array_indices is not None:
            argv += ["--output", self.scheduler_log(job, "%A_%a", _escape)]
        else:
            argv += [
                "--output",
                self._path(job, job.stdout),
                "--error",
                self._path(job, job.stderr),
            ]
        argv += [
            "--cpus-per-task", str(res.cpus),
            "--mem", format_memory(res.mem_mib),
            "--time", slurm_time(res.time_seconds),
        ]  # fmt: skip
        if res.partition:
            argv += ["--partition", res.partition]
        if res.account:
            argv += ["--account", res.account]
        argv += option_flags(res.options, long=True)
        if job.array_indices is not None:
            indices = [i - offset + self.index_base for i in job.array_indices]
            argv += ["--array", with_throttle(compress_indices(indices), job.array_parallelism)]
        if job.after_any:
            natives = [self.native_id(j) for j in job.after_any]
            if job.after_first:  # '?' separates alternatives: any one ended is enough
                argv += ["--dependency", "?".join(f"afterany:{n}" for n in natives)]
            else:
                argv += ["--dependency", "afterany:" + ":".join(natives)]
        argv += res.submit_options
        argv += [str(job_script(job)), *self.job_argv(job, offset)]
        return Command(tuple(argv))

    def submit(self, job: JobSpec) -> str:
        write_job_script(job)
        return super().submit(job)

    def _path(self, job: JobSpec, path: Path, index: str = "") -> str:
        return _escape(str(self.log_path(job, path))).replace(INDEX_PLACEHOLDER, index)

    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        first = stdout.strip().splitlines()[0] if stdout.strip() else ""
        job_id = first.split(";", 1)[0].strip()  # "--parsable" prints "id" or "id;cluster"
        if not job_id.isdigit():
            raise ValueError(stdout)
        return job_id

    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        return Command(("scancel", *native_ids))

    # -- query ------------------------------------------------------------------------------

    def sacct_command(self, natives: Sequence[str]) -> Command:
        return Command((
            "sacct", "-X", "-n", "-P", "--format=JobID,State,ExitCode,Reason",
            "-j", ",".join(natives),
        ))  # fmt: skip

    def squeue_command(self, natives: Sequence[str]) -> Command:
        return Command((
            "squeue", "-h", "-t", "all", "-r", "-j", ",".join(natives),
            "-O", "JobArrayID:|,State:|,exit_code:|,Reason:|",
        ))  # fmt: skip

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return {}
        wanted = self.array_ids_by_native(job_ids)
        found: dict[str, JobStatus] = {}
        missing = list(wanted)
        if self._accounting:
            result = self.run(self.sacct_command(missing), retry=False)
            if result.returncode == 0:
                seen = self._collect(result.stdout, wanted, found, wait_status=False)
                missing = [n for n in missing if n not in seen]
            elif _NO_ACCOUNTING.search(result.stderr):
                self._accounting = False
        if missing:
            result = self.run(self.squeue_command(missing))
            if result.returncode != 0 and "invalid job id" not in result.stderr.lower():
                raise ExecutorError(
                    f"squeue could not report jobs {', '.join(missing)}: {error_line(result)}"
                )
            if result.returncode == 0:
                self._collect(result.stdout, wanted, found, wait_status=True)
        return self.fill_unknown(job_ids, found)

    def _collect(
        self,
        output: str,
        wanted: dict[str, str],
        found: dict[str, JobStatus],
        *,
        wait_status: bool,
    ) -> set[str]:
        """Add the rows of sacct ('3:0' exit codes) or squeue (raw wait status) output to
        ``found``; returns the scheduler ids that had rows."""
        seen: set[str] = set()
        for line in output.splitlines():
            fields = line.split("|")
            if len(fields) < 3:
                continue
            match = _ROW_ID.fullmatch(fields[0].strip())
            if match is None or match.group("job") not in wanted:
                continue  # heterogeneous job components and jobs nobody asked about
            native = match.group("job")
            seen.add(native)
            status = self._status(fields, wait_status)
            if match.group("index") is not None:
                indices = [int(match.group("index"))]
            elif match.group("pending") is not None:
                indices = expand_indices(match.group("pending"))
            else:
                found[native] = JobStatus(native, *status)
                continue
            for index in indices:
                key = self.element_key(wanted[native], index)
                found[key] = JobStatus(key, *status)
        return seen

    @staticmethod
    def _status(fields: Sequence[str], wait_status: bool) -> tuple[str, int | None, str, str]:
        raw = fields[1].strip()
        words = raw.split()
        state = _STATES.get(words[0].rstrip("+") if words else "", JobState.UNKNOWN)
        reason = fields[3].strip() if len(fields) > 3 else ""
        code = _exit_code(fields[2].strip(), wait_status) if state.terminal else None
        if state == JobState.OUT_OF_MEMORY and (code is None or code > 128 + 64):
            code = 137  # sacct shows the cgroup OOM kill as signal 125; the kill is a SIGKILL
        if state != JobState.PENDING:
            reason = ""
        if reason in ("None", "(null)"):
            reason = ""
        return state, code, raw, reason


def _exit_code(text: str, wait_status: bool) -> int | None:
    """sacct's 'exit:signal' ('0:9' -> 137) or squeue's raw wait status (768 -> 3)."""
    try:
        if wait_status:
            return exit_code_from_wait_status(int(text))
        code, _, signal = text.partition(":")
        return 128 + int(signal) if signal and int(signal) else int(code)
    except ValueError:
        return None
