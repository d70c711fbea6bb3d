"""IBM Spectrum LSF: ``bsub``, ``bkill`` and one ``bjobs -json`` call per poll.

LSF counts array indices from 1 (``-J "name[1-10]%P"``), so reflow's element 4 is LSF's 5,
and limits the largest index to MAX_JOB_ARRAY_SIZE (1000 unless the site changed it:
set ``[executor] max_array_size``). ``bsub`` hands its command to a shell, so the argv is
passed as one ``shlex``-quoted string.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reflow.errors import ExecutorError
from reflow.executors.base import JobSpec, JobState, JobStatus
from reflow.executors.commands import Command, CommandRunner, compress_indices, error_line
from reflow.executors.scheduler import SchedulerExecutor, option_flags, with_throttle

LSF_DEFAULT_MAX_ARRAY_SIZE = 1000

_STATES = {
    "PEND": JobState.PENDING,
    "PSUSP": JobState.PENDING,
    "WAIT": JobState.PENDING,
    "RUN": JobState.RUNNING,
    "PROV": JobState.RUNNING,
    "USUSP": JobState.RUNNING,
    "SSUSP": JobState.RUNNING,
    "DONE": JobState.COMPLETED,
    "EXIT": JobState.FAILED,
    "ZOMBI": JobState.CANCELLED,
    "UNKWN": JobState.UNKNOWN,
}
# Why an EXIT job ended, from the TERM_* code or the text LSF prints for it.
_EXIT_REASONS = (
    (re.compile(r"TERM_RUNLIMIT|run ?time limit", re.I), JobState.TIMEOUT),
    (re.compile(r"TERM_MEMLIMIT|memory limit", re.I), JobState.OUT_OF_MEMORY),
    (
        re.compile(r"TERM_(FORCE_)?(OWNER|ADMIN)|killed by (owner|LSF admin)", re.I),
        JobState.CANCELLED,
    ),
    (re.compile(r"TERM_HOST|host failure", re.I), JobState.NODE_FAIL),
)


class LSFExecutor(SchedulerExecutor):
    """LSF adapter: ``-n N`` (with ``span[hosts=1]`` above one CPU), memory as ``-M`` and a
    ``rusage[mem=]`` reservation in MB, ``-W HH:MM`` (rounded up to a minute), ``-q``
    for the partition, ``-P`` for the account; other options become ``-key value``.
    Arrays log LSF's own output to ``<stdout with {index} -> %J_%I.sched>``."""

    name: ClassVar[str] = "lsf"
    index_base: ClassVar[int] = 1
    index_env_var: ClassVar[str] = "LSB_JOBINDEX"
    submit_tool: ClassVar[str] = "bsub"
    log_placeholders: ClassVar[str | None] = r"%[JI]"
    cancel_tool: ClassVar[str] = "bkill"
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"lsf is processing your request",
        r"batch system daemon not responding",
        r"failed in an lsf library call",
        r"timed? ?out",
        r"temporarily unavailable",
        r"try again",
    )
    cancel_ignorable: ClassVar[tuple[str, ...]] = (
        r"job has already finished",
        r"is not found",
        r"no matching job found",
    )

    def __init__(
        self,
        runner: CommandRunner | None = None,
        *,
        max_array_size: int | None = LSF_DEFAULT_MAX_ARRAY_SIZE,
    ) -> None:
        super().__init__(runner, max_array_size=max_array_size)

    def native_element_id(self, native: str, scheduler_index: int) -> str:
        return f"{native}[{scheduler_index}]"

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        name = job.name
        if job.array_indices is not None:
            indices = [i - offset + self.index_base for i in job.array_indices]
            name = with_throttle(f"{name}[{compress_indices(indices)}]", job.array_parallelism)
        argv = ["bsub", "-J", name, "-cwd", str(job.workdir)]
        if job.array_indices is not None:
            argv += ["-o", self.scheduler_log(job, "%J_%I")]
        else:
            argv += [
                "-o", str(self.log_path(job, job.stdout)),
                "-e", str(self.log_path(job, job.stderr)),
            ]  # fmt: skip
        mib = res.mem_mib
        requirement = f"rusage[mem={mib}MB]" + (" span[hosts=1]" if res.cpus > 1 else "")
        argv += [
            "-n", str(res.cpus),
            "-R", requirement,
            "-M", f"{mib}MB",
            "-W", _lsf_minutes(res.time_seconds),
        ]  # fmt: skip
        if res.partition:
            argv += ["-q", res.partition]
        if res.account:
            argv += ["-P", res.account]
        argv += option_flags(res.options, long=False)
        if job.after_any:
            joiner = " || " if job.after_first else " && "
            argv += ["-w", joiner.join(f"ended({self.native_id(j)})" for j in job.after_any)]
        argv += res.submit_options
        argv.append(shlex.join(self.job_argv(job, offset)))
        return Command(tuple(argv))

    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        match = re.search(r"Job <(\d+)> is submitted", stdout)
        if match is None:
            raise ValueError(stdout)
        return match.group(1)

    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        return Command(("bkill", *native_ids))

    def bjobs_command(self, natives: Sequence[str]) -> Command:
        return Command((
            "bjobs", "-a", "-json",
            "-o", "jobid jobindex stat exit_code exit_reason pend_reason",
            *natives,
        ))  # fmt: skip

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return {}
        wanted = self.array_ids_by_native(job_ids)
        result = self.run(self.bjobs_command(list(wanted)))
        try:
            records = json.loads(result.stdout).get("RECORDS", []) if result.stdout.strip() else []
        except (json.JSONDecodeError, AttributeError):
            raise ExecutorError(
                f"bjobs printed output that is not JSON ({error_line(result)}); reflow needs "
                "LSF 10.1.0.2 or newer for `bjobs -json`"
            ) from None
        if result.returncode != 0 and not records:
            raise ExecutorError(f"bjobs could not report jobs: {error_line(result)}")
        found: dict[str, JobStatus] = {}
        for record in records:
            native = str(record.get("JOBID", ""))
            if native not in wanted or "ERROR" in record:
                continue  # "Job <N> is not found" records become UNKNOWN below
            status = _status(record)
            index = int(record.get("JOBINDEX") or 0)
            key = native if index == 0 else self.element_key(wanted[native], index)
            found[key] = JobStatus(key, *status)
        return self.fill_unknown(job_ids, found)


def _status(record: Mapping[str, Any]) -> tuple[str, int | None, str, str]:
    raw = str(record.get("STAT", ""))
    state = _STATES.get(raw, JobState.UNKNOWN)
    reason = str(record.get("EXIT_REASON") or "")
    if state == JobState.PENDING:
        return state, None, raw, str(record.get("PEND_REASON") or "").strip()
    if state == JobState.COMPLETED:
        return state, 0, raw, ""
    if state == JobState.FAILED:
        state = next((s for pattern, s in _EXIT_REASONS if pattern.search(reason)), state)
        code_text = str(record.get("EXIT_CODE") or "").strip()
        return state, int(code_text) if code_text.isdigit() else None, raw, reason
    return state, None, raw, reason


def _lsf_minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"
