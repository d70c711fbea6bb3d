"""(Son of) Grid Engine and Univa/Altair GE: ``qsub -terse``, ``qdel``, ``qstat -xml``.

Task ids count from 1 and one submission takes one range (``-t 1-10``, throttled with
``-tc P``). ``qstat`` forgets a job (or an array task) the moment it ends, so what it no
longer lists is looked up in the accounting file with ``qacct -j`` (one call per such job;
the driver stops asking about jobs once they finished). Grid Engine cannot tell a ``qdel``
from other kills in ``qacct``; those show as FAILED with the exit status (137 for SIGKILL).
"""

from __future__ import annotations

import getpass
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reflow.core.resources import format_duration, format_memory
from reflow.errors import ExecutorError
from reflow.executors.base import JobSpec, JobState, JobStatus
from reflow.executors.commands import Command, CommandRunner, error_line, expand_indices
from reflow.executors.scheduler import SchedulerExecutor, option_flags

# How far back one batched ``qacct`` reads this user's records (see ``qacct_command``).
ACCOUNTING_DAYS = 14


def parse_qacct(text: str) -> list[dict[str, str]]:
    """``qacct -j`` output -> one {field: value} per record (records are '=====' separated)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("====="):
            if current:
                records.append(current)
            current = {}
            continue
        key, _, value = line.strip().partition(" ")
        if key:
            current[key] = value.strip()
    if current:
        records.append(current)
    return records


def _qstat_state(code: str) -> tuple[str, str]:
    """Grid Engine's compact state ('qw', 'hqw', 'r', 'Eqw', 'dr', ...) -> (state, reason)."""
    if "E" in code:
        return JobState.FAILED, f"job is in error state {code!r}; see `qstat -j` for why"
    if "d" in code:
        return JobState.CANCELLED, "being deleted"
    if any(c in code for c in "rtRsST"):
        return JobState.RUNNING, ""
    return JobState.PENDING, "held" if "h" in code else ""


class SGEExecutor(SchedulerExecutor):
    """Grid Engine adapter: ``-pe <parallel_environment> N`` above one CPU (default ``smp``),
    ``-l h_rt=...,h_vmem=...`` with memory per slot (the request divided by the CPUs,
    as Grid Engine counts consumables per slot; ``memory_resource`` names another
    complex such as ``mem_free``), ``-q`` for the partition, ``-A`` for the account,
    other options as ``-key value``. Commands run as binaries (``-b y -shell no``) with the
    submitting environment (``-V``). Arrays log Grid Engine's output to
    ``<stdout with {index} -> $JOB_ID.$TASK_ID.sched>``."""

    name: ClassVar[str] = "sge"
    index_base: ClassVar[int] = 1
    index_env_var: ClassVar[str] = "SGE_TASK_ID"
    submit_tool: ClassVar[str] = "qsub"
    log_placeholders: ClassVar[str | None] = r"\$\{?(JOB_ID|TASK_ID|JOB_NAME|HOME|USER|HOSTNAME)"
    cancel_tool: ClassVar[str] = "qdel"
    contiguous_arrays: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"unable to contact qmaster",
        r"failed receiving gdi request",
        r"got no answer",
        r"commlib error",
        r"timed? ?out",
        r"try again",
    )
    cancel_ignorable: ClassVar[tuple[str, ...]] = (r"does not exist", r"already been deleted")

    def __init__(
        self,
        runner: CommandRunner | None = None,
        *,
        max_array_size: int | None = None,
        parallel_environment: str = "smp",
        memory_resource: str = "h_vmem",
        user: str | None = None,
    ) -> None:
        super().__init__(runner, max_array_size=max_array_size)
        self.parallel_environment = parallel_environment
        self.memory_resource = memory_resource
        self.user = user or getpass.getuser()

    @classmethod
    def _settings_from_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        keys = {"sge_parallel_environment": "parallel_environment",
                "sge_memory_resource": "memory_resource"}  # fmt: skip
        return {attr: str(config[key]) for key, attr in keys.items() if key in config}

    def native_element_id(self, native: str, scheduler_index: int) -> str:
        return f"{native}.{scheduler_index}"

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        argv = ["qsub", "-terse", "-b", "y", "-shell", "no", "-V", "-N", job.name,
                "-wd", str(job.workdir)]  # fmt: skip
        if job.array_indices is not None:
            argv += ["-j", "y", "-o", self.scheduler_log(job, "$JOB_ID.$TASK_ID")]
        elif job.stdout == job.stderr:  # a driver job: one log, written through one stream
            argv += ["-j", "y", "-o", str(self.log_path(job, job.stdout))]
        else:
            argv += [
                "-o", str(self.log_path(job, job.stdout)),
                "-e", str(self.log_path(job, job.stderr)),
            ]  # fmt: skip
        if res.cpus > 1:
            argv += ["-pe", self.parallel_environment, str(res.cpus)]
        per_slot = format_memory(math.ceil(res.mem_mib / res.cpus))
        argv += [
            "-l",
            f"h_rt={format_duration(res.time_seconds)},{self.memory_resource}={per_slot}",
        ]
        if res.partition:
            argv += ["-q", res.partition]
        if res.account:
            argv += ["-A", res.account]
        argv += option_flags(res.options, long=False)
        if job.after_any:
            # -hold_jid waits for whole jobs: an array element id stands for its array
            natives = dict.fromkeys(self.parse_id(j).native for j in job.after_any)
            argv += ["-hold_jid", ",".join(natives)]
        if job.array_indices is not None:
            first = job.array_indices[0] - offset + self.index_base
            last = job.array_indices[-1] - offset + self.index_base
            argv += ["-t", f"{first}-{last}"]
            if job.array_parallelism is not None:
                argv += ["-tc", str(job.array_parallelism)]
        argv += res.submit_options
        argv += self.job_argv(job, offset)
        return Command(tuple(argv))

    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        first = stdout.strip().splitlines()[0].strip() if stdout.strip() else ""
        native = first.split(".", 1)[0]  # arrays print "123.1-10:1"
        if not native.isdigit():
            raise ValueError(stdout)
        return native

    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        return Command(("qdel", *native_ids))

    # -- query ------------------------------------------------------------------------------

    def qstat_command(self) -> Command:
        return Command(("qstat", "-xml", "-u", self.user))

    def qacct_command(self, natives: Sequence[str]) -> Command:
        """Accounting for jobs ``qstat`` no longer lists, in one call: ``qacct -j`` takes a
        single job, so several are read as this user's records of the last
        ``ACCOUNTING_DAYS`` days (qacct scans its whole file either way)."""
        if len(natives) == 1:
            return Command(("qacct", "-j", natives[0]))
        return Command(("qacct", "-o", self.user, "-d", str(ACCOUNTING_DAYS), "-j"))

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return {}
        wanted = self.array_ids_by_native(job_ids)
        result = self.run(self.qstat_command())
        if result.returncode != 0:
            raise ExecutorError(f"qstat could not list jobs: {error_line(result)}")
        try:
            root = ET.fromstring(result.stdout)
        except ET.ParseError as exc:
            raise ExecutorError(f"qstat -xml printed unreadable XML ({exc})") from None
        found: dict[str, JobStatus] = {}
        for entry in root.iter("job_list"):
            native = (entry.findtext("JB_job_number") or "").strip()
            if native not in wanted:
                continue
            raw = (entry.findtext("state") or "").strip()
            state, reason = _qstat_state(raw)
            tasks = (entry.findtext("tasks") or "").strip()
            if not tasks:
                found[native] = JobStatus(native, state, None, raw, reason)
                continue
            for index in expand_indices(tasks):
                key = self.element_key(wanted[native], index)
                found[key] = JobStatus(key, state, None, raw, reason)
        # Jobs qstat no longer lists, and finished tasks of arrays it still lists.
        unresolved = self.unresolved(job_ids, found)
        natives = list(dict.fromkeys(self.parse_id(j).native for j in unresolved))
        if natives:
            self._from_accounting(natives, wanted, found)
        return self.fill_unknown(job_ids, found)

    def _from_accounting(self, natives: Sequence[str], wanted: Mapping[str, str],
                         found: dict[str, JobStatus]) -> None:
        result = self.run(self.qacct_command(natives))
        if result.returncode != 0:
            return  # not written yet, or rotated away: UNKNOWN
        asked = set(natives)
        for record in parse_qacct(result.stdout):  # oldest first: a reused job number's
            native = record.get("jobnumber", "")  # latest record wins
            if native not in asked:
                continue
            state, code, reason = _accounting_status(record)
            raw = f"failed={record.get('failed', '?')} exit_status={record.get('exit_status', '?')}"
            task = record.get("taskid", "undefined")
            key = self.element_key(wanted[native], int(task)) if task.isdigit() else native
            found[key] = JobStatus(key, state, code, raw, reason)


def _accounting_status(record: Mapping[str, str]) -> tuple[str, int | None, str]:
    failed = record.get("failed", "0")
    status = record.get("exit_status", "")
    code = int(status) if re.fullmatch(r"\d+", status) else None
    deleted = record.get("deleted_by", "NONE")
    if deleted not in ("", "NONE"):
        return JobState.CANCELLED, code, f"deleted by {deleted}"
    if failed.split(":", 1)[0].strip() == "0" and code == 0:
        return JobState.COMPLETED, 0, ""
    if re.search(r"h_rt|wallclock", failed, re.I):
        return JobState.TIMEOUT, code, failed
    if re.search(r"h_vmem|mem", failed, re.I):
        return JobState.OUT_OF_MEMORY, code, failed
    return JobState.FAILED, code, "" if failed.strip() == "0" else failed
