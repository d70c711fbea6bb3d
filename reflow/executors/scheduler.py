"""What every command-line batch scheduler adapter shares: array splitting and index
translation, the job wrapper, id bookkeeping, and the submit/cancel/query skeleton.

Each adapter only renders its scheduler's argv and parses its output; the rules that make
arrays behave the same everywhere live here once:

* Reflow indices are 0-based and may be sparse; a scheduler may count from 1 and may limit
  the index values of one submission (Slurm's MaxArraySize, LSF's MAX_JOB_ARRAY_SIZE). A part
  whose indices do not fit is shifted by an offset (scheduler index = reflow index - offset +
  base). The offset is written into the array id (``"123@1000"``), so ids stay
  self-describing and no adapter needs state between driver steps.
* Array elements find their index through ``REFLOW_ARRAY_INDEX_VAR``/``_BASE`` and write their
  output to the ``{index}`` log path through a constant ``/bin/sh`` wrapper whose only
  inputs are positional arguments: no shell text is ever built from user values.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

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
from reflow.executors.commands import (
    Command,
    CommandResult,
    CommandRunner,
    RetryPolicy,
    contiguous_runs,
    error_line,
)

# $1 workdir, $2/$3 stdout path around the index, $4/$5 stderr path around it, then the argv.
# The scheduler's own index variable is named by REFLOW_ARRAY_INDEX_VAR (one of our constants,
# so the eval is safe). No braces: Flux formats --cc job arguments with str.format.
ARRAY_WRAPPER = (
    'cd "$1" || exit 1; '
    'eval "n=\\$$REFLOW_ARRAY_INDEX_VAR"; '
    "i=$((n - REFLOW_ARRAY_INDEX_BASE)); "
    'o="$2$i$3"; e="$4$i$5"; shift 5; '
    'exec "$@" >>"$o" 2>>"$e"'
)
# For schedulers without a working-directory option (PBS Pro): $1 workdir, then the argv.
CD_WRAPPER = 'cd "$1" || exit 1; shift; exec "$@"'
WRAPPER_NAME = "reflow-job"  # $0 of the wrapper, what `ps` shows

_ELEMENT = re.compile(r"(?P<array>.+?)_(?P<index>\d+)")


def option_flags(
    options: Mapping[str, str | int | bool], *, long: bool, joined: bool = False
) -> list[str]:
    """Pass-through scheduler options as argv: ``True`` a bare flag, ``False`` nothing.

    ``long`` gives ``--key-name`` (Slurm, Flux; underscores become dashes), otherwise
    ``-key`` (LSF, SGE); ``joined`` writes ``--key=value`` as one argument (Flux).
    """
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-") if long else f"-{key}"
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [f"{flag}={value}"] if joined else [flag, str(value)]
    return argv


@dataclass(frozen=True)
class JobRef:
    """A parsed reflow-side id: the scheduler's own id, the array offset, the element index."""

    native: str
    offset: int = 0
    index: int | None = None  # reflow's index, for an array element

    @property
    def array_id(self) -> str:
        return self.native if self.offset == 0 else f"{self.native}@{self.offset}"


class SchedulerExecutor(Executor):
    """Base of the adapters that drive a scheduler through its command-line clients."""

    submit_tool: ClassVar[str]
    cancel_tool: ClassVar[str]
    # Only one contiguous range per submission (SGE `-t n-m`, PBS Pro `-J n-m`).
    contiguous_arrays: ClassVar[bool] = False
    # Output of a failed command that means "try again" rather than "refused".
    transient_errors: ClassVar[tuple[str, ...]] = (
        r"timed? ?out",
        r"temporarily unavailable",
        r"try again",
        r"connection refused",
    )
    # Output of a failed cancel that only says the job is already gone.
    cancel_ignorable: ClassVar[tuple[str, ...]] = ()
    # Text the scheduler replaces in log paths and offers no escape for (LSF's %J, Grid
    # Engine's $JOB_ID, Flux's {{id}}): a run dir containing it would log somewhere else.
    log_placeholders: ClassVar[str | None] = None

    def __init__(
        self, runner: CommandRunner | None = None, *, max_array_size: int | None = None
    ) -> None:
        self.runner = runner or CommandRunner()
        if max_array_size is not None and max_array_size < 1:
            raise ExecutorError(
                f"{self.name}: max_array_size={max_array_size} leaves no room for an array; "
                "set it to the scheduler's limit (at least 1) or leave it unset"
            )
        self._max_array_size = max_array_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Self:
        """Settings read: ``commands`` (tool -> path), ``command_timeout`` (s),
        ``submit_retries``, ``max_array_size`` and each adapter's own (see its docstring)."""
        config = dict(config or {})
        runner = CommandRunner(
            config.get("commands"),
            timeout=float(config.get("command_timeout", 60.0)),
            retry=RetryPolicy(attempts=int(config.get("submit_retries", 5))),
        )
        settings = cls._settings_from_config(config)
        if config.get("max_array_size") is not None:
            settings["max_array_size"] = int(config["max_array_size"])
        return cls(runner, **settings)

    @classmethod
    def _settings_from_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Adapter-specific constructor keywords taken from the config table."""
        return {}

    # -- arrays -----------------------------------------------------------------------------

    def max_array_size(self) -> int | None:
        """How many consecutive scheduler indices one submission may use (None: no limit)."""
        return self._max_array_size

    def split(self, job: JobSpec) -> tuple[JobSpec, ...]:
        if job.array_indices is None:
            return (job,)
        return split_array(job, self.max_array_size(), contiguous=self.contiguous_arrays)

    def array_offset(self, job: JobSpec) -> int:
        """The offset this part is submitted with; refuses a part that needs splitting."""
        indices = job.array_indices or ()
        limit = self.max_array_size()
        offset = 0 if limit is None or indices[-1] < limit else indices[0]
        fits = limit is None or indices[-1] - offset < limit
        contiguous = not self.contiguous_arrays or len(contiguous_runs(indices)) == 1
        if not (fits and contiguous):
            parts = len(self.split(job))
            raise ExecutorError(
                f"array job {job.name!r} needs {parts} {self.name} submissions (its indices "
                f"{'exceed the array size limit' if not fits else 'are not contiguous'}); "
                "submit it with executor.submit_many(job)"
            )
        return offset

    # -- ids --------------------------------------------------------------------------------

    def _is_array_native(self, native: str) -> bool:
        """Whether a scheduler id names an array (so '<id>_<n>' is one of its elements)."""
        return native.isdigit()

    def parse_id(self, job_id: str) -> JobRef:
        native, index = job_id, None
        match = _ELEMENT.fullmatch(job_id)
        if match is not None:
            candidate = match.group("array").split("@", 1)[0]
            if "@" in match.group("array") or self._is_array_native(candidate):
                native, index = match.group("array"), int(match.group("index"))
        base, sep, offset = native.rpartition("@")
        if sep and re.fullmatch(r"\d+", offset):
            return JobRef(base, int(offset), index)
        return JobRef(native, 0, index)

    def scheduler_index(self, ref: JobRef) -> int:
        assert ref.index is not None
        return ref.index - ref.offset + self.index_base

    def element_key(self, array_id: str, scheduler_index: int) -> str:
        """The reflow-side id of an element the scheduler reports by its own index."""
        ref = self.parse_id(array_id)
        return self.array_element_id(ref.array_id, scheduler_index - self.index_base + ref.offset)

    @abstractmethod
    def native_element_id(self, native: str, scheduler_index: int) -> str:
        """How the scheduler's commands name one element ('123_4', '123[4].server')."""

    def native_id(self, job_id: str) -> str:
        """The scheduler's own id for a reflow-side id (element ids become element ids)."""
        ref = self.parse_id(job_id)
        if ref.index is None:
            return ref.native
        return self.native_element_id(ref.native, self.scheduler_index(ref))

    # -- the job's command ------------------------------------------------------------------

    def job_argv(self, job: JobSpec, offset: int, *, chdir: bool = False) -> list[str]:
        """The argv the scheduler runs: the worker command, wrapped for arrays (index and
        log redirection) and prefixed by ``/usr/bin/env`` for the job's environment."""
        env = dict(job.env)
        argv = list(job.command)
        if job.is_array:
            env[INDEX_VAR_ENV] = self.index_env_var
            env[INDEX_BASE_ENV] = str(self.index_base - offset)
            out_head, _, out_tail = str(self.log_path(job, job.stdout)).partition(INDEX_PLACEHOLDER)
            err_head, _, err_tail = str(self.log_path(job, job.stderr)).partition(INDEX_PLACEHOLDER)
            argv = [
                "/bin/sh", "-c", ARRAY_WRAPPER, WRAPPER_NAME,
                str(job.workdir), out_head, out_tail, err_head, err_tail, *argv,
            ]  # fmt: skip
        elif chdir:
            argv = ["/bin/sh", "-c", CD_WRAPPER, WRAPPER_NAME, str(job.workdir), *argv]
        if env:
            argv = ["/usr/bin/env", *(f"{k}={v}" for k, v in sorted(env.items())), *argv]
        return argv

    @staticmethod
    def log_path(job: JobSpec, path: Path) -> Path:
        """Log paths are made absolute against the job's workdir: schedulers disagree on
        what a relative output path is relative to."""
        return path if path.is_absolute() else job.workdir / path

    def scheduler_log(self, job: JobSpec, pattern: str, escape: Callable[[str], str] = str) -> str:
        """Where the scheduler writes its own messages about an array element: the stdout
        path with ``{index}`` replaced by ``<pattern>.sched`` (``pattern`` is the scheduler's
        element placeholder, e.g. ``%A_%a``; ``escape`` protects the rest of the path)."""
        path = escape(str(self.log_path(job, job.stdout)))
        return path.replace(INDEX_PLACEHOLDER, f"{pattern}.sched")

    # -- submit / cancel / query -----------------------------------------------------------

    @abstractmethod
    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        """The command that submits ``job`` (one part, already checked to fit)."""

    @abstractmethod
    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        """The scheduler id from the submit command's output (ValueError when there is none)."""

    @abstractmethod
    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        """The command that cancels these scheduler ids."""

    def run(self, command: Command, *, retry: bool = True,
            submits: bool = False) -> CommandResult:
        """Run a rendered command; ``retry=False`` for queries that have a fallback,
        ``submits`` for the submit command (never resent after a timeout)."""
        return self.runner.run(
            command.argv[0],
            command.argv[1:],
            stdin=command.stdin,
            transient=self.transient_errors,
            retry=retry,
            submits=submits,
        )

    def submit(self, job: JobSpec) -> str:
        offset = self.array_offset(job) if job.is_array else 0
        for path in (job.stdout, job.stderr):
            self._check_log_path(job, path)
            self.log_path(job, path).parent.mkdir(parents=True, exist_ok=True)
        result = self.run(self.submit_command(job, offset), submits=True)
        if result.returncode != 0:
            raise ExecutorError(
                f"{self.submit_tool} refused job {job.name!r}: {error_line(result)}"
            )
        try:
            native = self.parse_submit(result.stdout, job)
        except ValueError:
            raise ExecutorError(
                f"{self.submit_tool} accepted job {job.name!r} but printed no job id "
                f"({result.stdout.strip()[:200]!r}); check the scheduler's client version"
            ) from None
        return JobRef(native, offset).array_id if job.is_array else native

    def _check_log_path(self, job: JobSpec, path: Path) -> None:
        if self.log_placeholders is None:
            return
        # Our own ``{index}`` is replaced before the scheduler sees the path.
        shown = str(self.log_path(job, path))
        found = re.search(self.log_placeholders, shown.replace(INDEX_PLACEHOLDER, ""))
        if found:
            raise ExecutorError(
                f"log path {shown} contains {found.group()!r}, which "
                f"{self.submit_tool} replaces in log paths; choose a run dir without it"
            )

    def cancel(self, job_ids: Sequence[str]) -> None:
        natives = list(dict.fromkeys(self.native_id(j) for j in job_ids))
        if not natives:
            return
        result = self.run(self.cancel_command(natives))
        if result.returncode == 0:
            return
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        ignorable = [re.compile(p, re.IGNORECASE) for p in self.cancel_ignorable]
        if lines and all(any(p.search(ln) for p in ignorable) for ln in lines):
            return
        raise ExecutorError(
            f"{self.cancel_tool} could not cancel {', '.join(natives)}: {error_line(result)}"
        )

    def array_ids_by_native(self, job_ids: Iterable[str]) -> dict[str, str]:
        """The scheduler ids to ask about, each mapped to the reflow-side array id its
        elements are keyed by."""
        wanted: dict[str, str] = {}
        for job_id in job_ids:
            ref = self.parse_id(job_id)
            wanted.setdefault(ref.native, ref.array_id)
        return wanted

    @staticmethod
    def unresolved(job_ids: Iterable[str], found: Mapping[str, JobStatus]) -> list[str]:
        """The asked ids the scheduler reported nothing about (an array counts as reported
        when any of its elements is)."""
        arrays = {key.rpartition("_")[0] for key in found}
        return [j for j in job_ids if j not in found and j not in arrays]

    def fill_unknown(
        self, job_ids: Iterable[str], found: dict[str, JobStatus]
    ) -> dict[str, JobStatus]:
        """Add UNKNOWN for every asked id the scheduler reported nothing about."""
        for job_id in self.unresolved(job_ids, found):
            found[job_id] = JobStatus(
                job_id, JobState.UNKNOWN, None, "", "not known to the scheduler"
            )
        return found


def split_array(job: JobSpec, limit: int | None, *, contiguous: bool) -> tuple[JobSpec, ...]:
    """Cut an array into parts that each fit one submission.

    Indices below ``limit`` stay in one part submitted as they are (so ids read naturally);
    the rest are cut greedily into parts spanning fewer than ``limit`` indices, each shifted
    by its first index. With ``contiguous``, parts are also cut at every gap.
    """
    indices = job.array_indices or ()
    groups = contiguous_runs(indices) if contiguous else [indices]
    parts: list[tuple[int, ...]] = []
    for group in groups:
        if limit is None:
            parts.append(tuple(group))
            continue
        natural = tuple(i for i in group if i < limit)
        if natural:
            parts.append(natural)
        rest = [i for i in group if i >= limit]
        while rest:
            cut = next((n for n, i in enumerate(rest) if i >= rest[0] + limit), len(rest))
            parts.append(tuple(rest[:cut]))
            rest = rest[cut:]
    throttles = share_throttle(job.array_parallelism, len(parts))
    return tuple(replace(job, array_indices=part, array_parallelism=throttle)
                 for part, throttle in zip(parts, throttles, strict=True))


def share_throttle(parallelism: int | None, parts: int) -> list[int | None]:
    """``array_parallelism`` divided among the submissions of one array, so that together
    they run at most that many elements. Each part gets at least one; parts beyond the
    first ``parallelism`` wait for an earlier part (``Executor.submit_many``)."""
    if parallelism is None:
        return [None] * parts
    base, extra = divmod(parallelism, parts)
    return [max(1, base + (1 if k < extra else 0)) for k in range(parts)]


def with_throttle(spec: str, parallelism: int | None) -> str:
    return spec if parallelism is None else f"{spec}%{parallelism}"
