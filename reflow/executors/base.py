"""The executor interface: what the driver asks of any scheduler, and what a job gets back.

The driver only ever talks to this interface (submit, cancel, query), so every adapter can be
replaced by a fake in driver tests and the real schedulers are proven by their own tests.
Workers import this module to find their array index, so it must stay cheap to import: no
subprocess, no third-party modules.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Self

from reflow.core.resources import (
    check_factors,
    check_option,
    chosen_partition,
    format_duration,
    format_memory,
    parse_duration,
    parse_memory,
)
from reflow.errors import ExecutorError, OptionError

# The adapter puts these two variables into every array element's environment: the first
# names the scheduler's own index variable, the second is the scheduler index of reflow's
# element 0 (1 for 1-based schedulers, negative when a big array was shifted to fit a
# scheduler limit). Reflow's index is then `int(env[env[INDEX_VAR_ENV]]) - base`.
INDEX_VAR_ENV = "REFLOW_ARRAY_INDEX_VAR"
INDEX_BASE_ENV = "REFLOW_ARRAY_INDEX_BASE"

# Array log paths hold this placeholder; the element's own reflow index replaces it.
INDEX_PLACEHOLDER = "{index}"

OptionValue = str | int | bool

# Every scheduler client an adapter runs: the names `[executor.commands]` may map to a path.
# The command runner refuses any other name, so a new client cannot be missed here.
SCHEDULER_TOOLS = frozenset({
    "sbatch", "scancel", "sacct", "squeue", "scontrol",  # Slurm
    "qsub", "qdel", "qstat", "qacct",  # PBS and Grid Engine
    "bsub", "bkill", "bjobs",  # LSF
    "flux",
})  # fmt: skip


class JobState(StrEnum):
    """Scheduler states normalised across adapters, so the driver reasons about one set."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        """The job will never run again (UNKNOWN is not terminal: it may just be too new)."""
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN)




@dataclass(frozen=True)
class JobResources:
    """What one job (or each element of an array) asks the scheduler for.

    ``partition`` and ``account`` are scheduler-agnostic (``queue`` is accepted as a synonym
    by ``from_options``); anything else in ``options`` is passed to the scheduler in its own
    flag syntax, and ``submit_options`` are appended to the submit command verbatim.
    """

    cpus: int = 1
    mem: str = "4G"
    time: str = "00:30:00"
    partition: str | None = None
    account: str | None = None
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    submit_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.cpus, bool) or not isinstance(self.cpus, int) or self.cpus < 1:
            raise OptionError(f"cpus={self.cpus!r} must be a whole number of at least 1")
        try:  # the checks the decorator makes, as the public type's own error
            parse_memory(self.mem)
            parse_duration(self.time)
            for key, value in self.options.items():
                check_option(key, value)
        except ValueError as exc:
            raise OptionError(str(exc)) from None
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "submit_options", tuple(self.submit_options))

    @classmethod
    def from_options(
        cls,
        cpus: int = 1,
        mem: str = "4G",
        time: str = "00:30:00",
        submit_options: Sequence[str] | str | None = None,
        **scheduler_options: OptionValue | None,
    ) -> JobResources:
        """Build from decorator-style keywords: ``queue`` means ``partition``; None drops a key."""
        options = {k: v for k, v in scheduler_options.items() if v is not None}
        chosen = chosen_partition(options.pop("partition", None), options.pop("queue", None))
        account = options.pop("account", None)
        if isinstance(submit_options, str):
            extra = tuple(shlex.split(submit_options))
        else:
            extra = tuple(submit_options or ())
        return cls(
            cpus=cpus,
            mem=mem,
            time=time,
            partition=None if chosen is None else str(chosen),
            account=None if account is None else str(account),
            options=options,
            submit_options=extra,
        )

    @property
    def mem_mib(self) -> int:
        return parse_memory(self.mem)

    @property
    def time_seconds(self) -> int:
        return parse_duration(self.time)

    def scaled(
        self, factors: Mapping[str, float], caps: Mapping[str, str | int] | None = None
    ) -> JobResources:
        """Resources for a retry: ``mem``/``time``/``cpus`` multiplied by ``factors``, each
        capped by ``caps`` (e.g. ``{"mem": "64G", "time": "1-00:00:00", "cpus": 32}``), and
        never below the current value (a cap lower than the request does not shrink it)."""
        caps = caps or {}
        check_factors(factors, caps)
        mem, time, cpus = self.mem_mib, self.time_seconds, self.cpus
        new_mem = math.ceil(mem * factors.get("mem", 1.0))
        new_time = math.ceil(time * factors.get("time", 1.0))
        new_cpus = math.ceil(cpus * factors.get("cpus", 1.0))
        if "mem" in caps:
            new_mem = min(new_mem, parse_memory(str(caps["mem"])))
        if "time" in caps:
            new_time = min(new_time, parse_duration(str(caps["time"])))
        if "cpus" in caps:
            new_cpus = min(new_cpus, int(caps["cpus"]))
        return replace(
            self,
            cpus=max(new_cpus, cpus),
            mem=self.mem if new_mem <= mem else format_memory(new_mem),
            time=self.time if new_time <= time else format_duration(new_time),
        )


@dataclass(frozen=True)
class JobSpec:
    """One submission: a singleton job, or an array whose elements share everything but the
    index.

    ``array_indices`` are reflow's 0-based indices and may be sparse; adapters translate them
    to the scheduler's numbering. Array log paths contain ``{index}`` (at most once each),
    which becomes the element's reflow index: the job runs the command under a tiny
    ``/bin/sh`` wrapper that redirects into that file, because scheduler-side placeholders
    (``%a``, ``%I``, ``$TASK_ID``) count from 1 on some schedulers and restart in every part
    of a split array. What the scheduler itself writes about an element (time limit or
    memory kill notices) goes to a sibling file named with the scheduler's own element id
    (see each adapter).
    """

    name: str
    command: tuple[str, ...]
    resources: JobResources
    workdir: Path
    stdout: Path
    stderr: Path
    array_indices: tuple[int, ...] | None = None
    array_parallelism: int | None = None
    after_any: tuple[str, ...] = ()
    # Start once the first of ``after_any`` has ended, where the scheduler can say so (Slurm,
    # LSF); the others wait for all of them.
    after_first: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() for c in self.name):
            raise OptionError(f"job name {self.name!r} must be non-empty and without whitespace")
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "after_any", tuple(self.after_any))
        object.__setattr__(self, "env", dict(self.env))
        for attr in ("workdir", "stdout", "stderr"):
            object.__setattr__(self, attr, Path(getattr(self, attr)))
        if not self.command:
            raise OptionError(f"job {self.name!r} has an empty command; give the worker's argv")
        for key in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise OptionError(
                    f"job {self.name!r}: environment variable name {key!r} is invalid; "
                    "use letters, digits and '_'"
                )
        is_array = self.array_indices is not None
        for path in (self.stdout, self.stderr):
            if str(path.parent).count(INDEX_PLACEHOLDER) or path.name.count(INDEX_PLACEHOLDER) > 1:
                raise OptionError(
                    f"job {self.name!r}: log path {str(path)!r} may hold {INDEX_PLACEHOLDER} "
                    "only once, in the file name (e.g. logs/task-{index}.out)"
                )
            if is_array != (INDEX_PLACEHOLDER in path.name):
                raise OptionError(
                    f"job {self.name!r}: log path {str(path)!r} "
                    + (
                        f"needs {INDEX_PLACEHOLDER} in the file name, one file per element"
                        if is_array
                        else f"has {INDEX_PLACEHOLDER} but the job is not an array; remove it"
                    )
                )
        if self.array_indices is not None:
            indices = tuple(self.array_indices)
            if not indices:
                raise OptionError(
                    f"array job {self.name!r} has no indices; submit nothing for an empty array"
                )
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in indices):
                raise OptionError(f"array job {self.name!r}: indices must be whole numbers >= 0")
            if len(set(indices)) != len(indices):
                raise OptionError(f"array job {self.name!r} lists an index more than once")
            object.__setattr__(self, "array_indices", tuple(sorted(indices)))
        if self.array_parallelism is not None and self.array_parallelism < 1:
            raise OptionError(
                f"job {self.name!r}: array_parallelism={self.array_parallelism} must be >= 1"
            )

    @property
    def is_array(self) -> bool:
        return self.array_indices is not None


@dataclass(frozen=True)
class JobStatus:
    """A job's (or array element's) state as of one query, normalised plus the raw text."""

    job_id: str
    state: str
    exit_code: int | None
    raw_state: str
    reason: str = ""

    @property
    def terminal(self) -> bool:
        return JobState(self.state).terminal


class Executor(ABC):
    """A scheduler behind three calls: submit, cancel, query.

    Ids are opaque strings owned by the adapter. An array's elements are addressed by
    ``array_element_id(array_id, index)``, which is also the key ``query`` reports them
    under, so the driver never parses ids.
    """

    name: ClassVar[str]
    index_base: ClassVar[int]
    index_env_var: ClassVar[str]

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Self:
        """Build from the ``[executor]`` config table; adapters with settings override this."""
        return cls()

    @abstractmethod
    def submit(self, job: JobSpec) -> str:
        """Submit one job or one array (as one submission) and return its id.

        Raises ExecutorError when the scheduler refuses it, or when the array cannot be one
        submission on this scheduler (see ``split`` and ``submit_many``).
        """

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs, whole arrays or array elements; ids already finished are ignored."""

    @abstractmethod
    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """States of the given jobs in one batched scheduler call.

        Array ids expand to one entry per element the scheduler reports, keyed by
        ``array_element_id``; every singleton or element id asked for is in the result,
        as UNKNOWN when the scheduler does not (or not yet) know it.
        """

    def array_element_id(self, job_id: str, index: int) -> str:
        """The id of element ``index`` (reflow's 0-based index) of array ``job_id``."""
        return f"{job_id}_{index}"

    def split(self, job: JobSpec) -> tuple[JobSpec, ...]:
        """The parts ``job`` must be submitted as; ``(job,)`` when one submission holds it.

        Schedulers limit the index values one array may use (Slurm's MaxArraySize) or only
        accept a contiguous range (SGE, PBS Pro), so a sparse or huge array may need several.
        """
        return (job,)

    def submit_many(self, job: JobSpec) -> list[tuple[str, JobSpec]]:
        """Submit ``job`` in as many parts as the scheduler needs: ``[(job_id, part), ...]``.

        Each part's elements are ``array_element_id(job_id, i)`` for ``i`` in
        ``part.array_indices``; a job that depends on the whole array depends on every id.
        """
        submitted: list[tuple[str, JobSpec]] = []
        limit = job.array_parallelism
        for k, part in enumerate(self.split(job)):
            if limit is not None and k >= limit:
                # Each part runs at least one element at a time, so with more parts than
                # ``array_parallelism`` a part waits for the one ``limit`` places before it.
                earlier = submitted[k - limit][0]
                part = replace(part, after_any=(*part.after_any, earlier))
            submitted.append((self.submit(part), part))
        return submitted


def array_index_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """Reflow's 0-based array index of the running job, or None outside an array element.

    Reads the two variables the adapter put into the job's environment, so the worker needs
    to know nothing about which scheduler started it.
    """
    env = os.environ if env is None else env
    var = env.get(INDEX_VAR_ENV)
    if not var:
        return None
    raw = env.get(var)
    if raw is None:
        raise ExecutorError(
            f"{INDEX_VAR_ENV} names {var}, but {var} is not set in this job; the scheduler did "
            "not start it as an array element (resubmit the task)"
        )
    try:
        return int(raw) - int(env.get(INDEX_BASE_ENV, "0"))
    except ValueError:
        raise ExecutorError(
            f"array index {var}={raw!r} or {INDEX_BASE_ENV}={env.get(INDEX_BASE_ENV)!r} is not "
            "a whole number; the job environment is corrupt (resubmit the task)"
        ) from None
