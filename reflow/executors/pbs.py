"""PBS Pro / OpenPBS and Torque: ``qsub``, ``qdel`` and one ``qstat -f`` call per poll.

Both count array indices from 0, like reflow. They differ in what matters here:

* PBS Pro takes one range per array (``-J X-Y[:step]``, and never a single index, so one
  index ``i`` is written ``i-(i+1):2``), throttles with ``-W max_run_subjobs=P``, runs an
  executable directly (``qsub -- argv``) but has no working-directory option, and shows
  finished jobs with ``qstat -x``.
* Torque takes index lists with a throttle (``-t 0-3,7%P``), reads the job script from stdin,
  has ``-d DIR``, and needs ``afteranyarray`` to depend on an array.

The plain ``qstat -f`` text is parsed rather than PBS Pro's ``-F json``, whose output is
not always valid JSON (unescaped environment values) and which Torque lacks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from reflow.core.resources import format_duration
from reflow.errors import ConfigError, ExecutorError
from reflow.executors.base import JobSpec, JobState, JobStatus
from reflow.executors.commands import (
    Command,
    CommandRunner,
    compress_indices,
    error_line,
)
from reflow.executors.scheduler import SchedulerExecutor, with_throttle

_JOB_ID = re.compile(r"(?P<seq>\d+)(?:\[(?P<index>\d*)\])?(?P<server>\..*)?")

# Exit_status values PBS Pro uses for jobs it killed itself (JOB_EXEC_KILL_*).
_PRO_KILLS = {-26: JobState.OUT_OF_MEMORY, -27: JobState.OUT_OF_MEMORY, -29: JobState.TIMEOUT}


def pbs_memory(mib: int) -> str:
    return f"{mib // 1024}gb" if mib % 1024 == 0 else f"{mib}mb"


def parse_qstat_full(text: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` text -> {job id: {attribute (lower case): value}}.

    Long values continue on lines indented by a tab; they are joined back.
    """
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    key = ""
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.split(":", 1)[1].strip(), {})
        elif current is not None and line.startswith("\t") and key:
            current[key] += line.strip()
        elif current is not None and " = " in line:
            name, _, value = line.strip().partition(" = ")
            key = name.strip().lower()
            current[key] = value.strip()
    return jobs


class PBSExecutor(SchedulerExecutor):
    """PBS Pro / OpenPBS adapter.

    Resources become ``-l select=1:ncpus=N:mem=M`` and ``-l walltime=``; other options with
    one-letter names are flags (``m="abe"`` -> ``-m abe``), ``place`` is ``-l place=...``,
    and the rest join the select chunk (``ngpus=1`` -> ``select=1:ncpus=4:mem=16gb:ngpus=1``).
    The environment of the submitting shell is exported (``-V``), as Slurm does by default.
    Arrays write the scheduler's own output into the stdout directory under PBS's default
    names (``-j oe -o DIR/``).
    """

    name: ClassVar[str] = "pbs"
    index_base: ClassVar[int] = 0
    index_env_var: ClassVar[str] = "PBS_ARRAY_INDEX"
    submit_tool: ClassVar[str] = "qsub"
    cancel_tool: ClassVar[str] = "qdel"
    contiguous_arrays: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"cannot connect to server",
        r"connection refused",
        r"timed? ?out",
        r"pbs_iff",
        r"temporarily unavailable",
        r"try again",
    )
    cancel_ignorable: ClassVar[tuple[str, ...]] = (
        r"unknown job id",
        r"job has finished",
        r"request invalid for state of job",
    )

    def _is_array_native(self, native: str) -> bool:
        return "[]" in native

    def native_element_id(self, native: str, scheduler_index: int) -> str:
        return native.replace("[]", f"[{scheduler_index}]", 1)

    # -- submit -----------------------------------------------------------------------------

    def depend_ids(self, job: JobSpec) -> list[str]:
        """PBS jobs can only wait for whole arrays: an element id stands for its array."""
        return list(dict.fromkeys(self.parse_id(j).native for j in job.after_any))

    def _chunk(self, job: JobSpec) -> tuple[list[str], list[str]]:
        """(extra select-chunk resources, other argv) from the free-form options."""
        chunk: list[str] = []
        argv: list[str] = []
        for key, value in job.resources.options.items():
            if value is False:
                continue
            if len(key) == 1:
                argv += [f"-{key}"] if value is True else [f"-{key}", str(value)]
            elif key == "place":
                argv += ["-l", f"place={value}"]
            else:
                chunk.append(f"{key}={'true' if value is True else value}")
        return chunk, argv

    def _common(self, job: JobSpec) -> list[str]:
        argv = ["qsub", "-N", job.name, "-V"]
        if job.array_indices is not None:
            argv += ["-j", "oe", "-o", f"{self.log_path(job, job.stdout).parent}/"]
        elif job.stdout == job.stderr:  # a driver job: its one log, copied back once
            argv += ["-j", "oe", "-o", str(self.log_path(job, job.stdout))]
        else:
            argv += [
                "-o", str(self.log_path(job, job.stdout)),
                "-e", str(self.log_path(job, job.stderr)),
            ]  # fmt: skip
        return argv

    def _placement(self, job: JobSpec) -> list[str]:
        res = job.resources
        argv: list[str] = []
        if res.partition:
            argv += ["-q", res.partition]
        if res.account:
            argv += ["-A", res.account]
        return argv

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        chunk, extra = self._chunk(job)
        select = ":".join(
            ["select=1", f"ncpus={res.cpus}", f"mem={pbs_memory(res.mem_mib)}", *chunk]
        )
        argv = self._common(job)
        argv += ["-l", select, "-l", f"walltime={format_duration(res.time_seconds)}"]
        argv += self._placement(job) + extra
        if job.after_any:
            argv += ["-W", "depend=afterany:" + ":".join(self.depend_ids(job))]
        if job.array_indices is not None:
            first = job.array_indices[0] - offset + self.index_base
            last = job.array_indices[-1] - offset + self.index_base
            argv += ["-J", f"{first}-{last}" if last > first else f"{first}-{first + 1}:2"]
            if job.array_parallelism is not None:
                argv += ["-W", f"max_run_subjobs={job.array_parallelism}"]
        argv += res.submit_options
        argv += ["--", *self.job_argv(job, offset, chdir=True)]
        return Command(tuple(argv))

    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        job_id = stdout.strip().splitlines()[0].strip() if stdout.strip() else ""
        if _JOB_ID.fullmatch(job_id) is None:
            raise ValueError(stdout)
        return job_id

    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        return Command(("qdel", *native_ids))

    # -- query ------------------------------------------------------------------------------

    def qstat_command(self, natives: Sequence[str]) -> Command:
        return Command(("qstat", "-f", "-x", "-t", *natives))

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return {}
        wanted = self.array_ids_by_native(job_ids)
        by_seq = {self._seq(native): native for native in wanted}
        result = self.run(self.qstat_command(list(wanted)))
        jobs = parse_qstat_full(result.stdout)
        if result.returncode != 0 and not jobs:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            if not all(re.search(r"unknown job id|has finished", ln, re.I) for ln in lines):
                raise ExecutorError(f"qstat could not report jobs: {error_line(result)}")
        found: dict[str, JobStatus] = {}
        for reported, attrs in jobs.items():
            match = _JOB_ID.fullmatch(reported)
            if match is None or match.group("seq") not in by_seq:
                continue
            native = by_seq[match.group("seq")]
            index = match.group("index")
            if index == "":
                continue  # the array itself; its subjobs are listed with -t
            state, code, raw, reason = self._status(attrs)
            key = native if index is None else self.element_key(wanted[native], int(index))
            found[key] = JobStatus(key, state, code, raw, reason)
        return self.fill_unknown(job_ids, found)

    @staticmethod
    def _seq(native: str) -> str:
        match = _JOB_ID.fullmatch(native)
        return match.group("seq") if match else native

    def _status(self, attrs: Mapping[str, str]) -> tuple[str, int | None, str, str]:
        raw = attrs.get("job_state", "")
        if raw in ("Q", "H", "W", "T", "M"):
            return JobState.PENDING, None, raw, attrs.get("comment", "")
        if raw in ("R", "E", "S", "U", "B"):
            return JobState.RUNNING, None, raw, ""
        if raw not in ("F", "X", "C"):
            return JobState.UNKNOWN, None, raw, f"unexpected PBS job state {raw!r}"
        status = attrs.get("exit_status")
        if status is None or not re.fullmatch(r"-?\d+", status):
            return JobState.CANCELLED, None, raw, "deleted before it ran"
        code = int(status)
        if code == 0:
            return JobState.COMPLETED, 0, raw, ""
        if code < 0:
            state = self._killed_state(code)
            return state, code, raw, f"PBS exit status {code}"
        if code >= 256:  # killed by signal (code - 256)
            return JobState.FAILED, 128 + code - 256, raw, f"killed by signal {code - 256}"
        return JobState.FAILED, code, raw, ""

    @staticmethod
    def _killed_state(code: int) -> JobState:
        return _PRO_KILLS.get(code, JobState.FAILED)


class TorqueExecutor(PBSExecutor):
    """Torque adapter: ``-l nodes=1:ppn=N[:extra],mem=M,walltime=T``, ``-d DIR``, index lists
    with ``%P`` throttles (``-t``), the job script on stdin (``exec`` of the argv, quoted
    with ``shlex``), ``afteranyarray`` dependencies on arrays, and plain ``qstat -f -t``
    (``-x`` means XML in Torque)."""

    name: ClassVar[str] = "torque"
    index_env_var: ClassVar[str] = "PBS_ARRAYID"
    contiguous_arrays: ClassVar[bool] = False

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        chunk, extra = self._chunk(job)
        nodes = ":".join(["nodes=1", f"ppn={res.cpus}", *chunk])
        limits = (
            f"{nodes},mem={pbs_memory(res.mem_mib)},walltime={format_duration(res.time_seconds)}"
        )
        argv = self._common(job)
        argv += ["-d", str(job.workdir), "-l", limits]
        argv += self._placement(job) + extra
        if job.after_any:
            depends = []
            for native in self.depend_ids(job):
                kind = "afteranyarray" if self._is_array_native(native) else "afterany"
                depends.append(f"{kind}:{native}")
            argv += ["-W", "depend=" + ",".join(depends)]
        if job.array_indices is not None:
            indices = [i - offset + self.index_base for i in job.array_indices]
            argv += ["-t", with_throttle(compress_indices(indices), job.array_parallelism)]
        argv += res.submit_options
        script = "#!/bin/sh\nexec " + shlex.join(self.job_argv(job, offset)) + "\n"
        return Command(tuple(argv), stdin=script)

    def qstat_command(self, natives: Sequence[str]) -> Command:
        return Command(("qstat", "-f", "-t", *natives))

    @staticmethod
    def _killed_state(code: int) -> JobState:
        return JobState.FAILED


def detect_pbs_flavor(runner: CommandRunner) -> str:
    """'pro' when ``qstat --version`` prints PBS Pro's ``pbs_version = ...``, else 'torque'.

    Without a ``qstat`` there is nothing to detect: 'pro' is assumed, and the first ``qsub``
    fails the instance with the scheduler's own message, as on any other scheduler.
    """
    try:
        result = runner.run("qstat", ["--version"], retry=False)
    except ExecutorError:
        return "pro"
    text = result.stdout + result.stderr
    return "pro" if "pbs_version" in text.lower() else "torque"


def pbs_executor_from_config(config: Mapping[str, Any] | None) -> PBSExecutor:
    """The PBS adapter for this site: ``[executor] pbs_flavor`` if set, else detected."""
    config = dict(config or {})
    flavor = config.get("pbs_flavor")
    if flavor not in (None, "pro", "torque"):
        raise ConfigError(f"[executor] pbs_flavor = {flavor!r} is not known; use 'pro' or 'torque'")
    if flavor is None:
        flavor = detect_pbs_flavor(CommandRunner(config.get("commands")))
    cls = TorqueExecutor if flavor == "torque" else PBSExecutor
    return cls.from_config(config)
