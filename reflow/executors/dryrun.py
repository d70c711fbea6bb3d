"""Dry-run: renders the exact commands a real scheduler adapter would run, and runs none.

It answers "what would `submit` do on the cluster?" from a laptop: each command is kept in
``commands``, logged (logger ``reflow.executors.dryrun``) and, with ``log_path``, appended
to a file one shell-quoted line each. Job ids are ``dry-<n>``; queries report every job as
PENDING, because nothing will ever run it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from reflow.errors import ExecutorError
from reflow.executors.base import Executor, JobSpec, JobState, JobStatus
from reflow.executors.commands import Command
from reflow.executors.scheduler import SchedulerExecutor

log = logging.getLogger(__name__)

# Without a configured max_array_size the dry run assumes no limit: asking a cluster for its
# limit would mean running a scheduler command.
_NO_LIMIT = 2**62


class DryRunExecutor(Executor):
    """Dry-run adapter around a scheduler adapter (``target``, Slurm by default)."""

    name: ClassVar[str] = "dry-run"
    index_base: ClassVar[int] = 0
    index_env_var: ClassVar[str] = "REFLOW_DRY_RUN_INDEX"

    def __init__(
        self, target: SchedulerExecutor | None = None, log_path: Path | None = None
    ) -> None:
        if target is None:
            from reflow.executors.slurm import SlurmExecutor

            target = SlurmExecutor(max_array_size=_NO_LIMIT)
        self.target = target
        self.log_path = log_path
        self.commands: list[Command] = []
        self._ids = itertools.count(1)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Self:
        """Settings read: ``dry_run_target`` (a scheduler name, default ``slurm``),
        ``dry_run_log`` (a file to append the commands to), ``max_array_size``."""
        from reflow.executors import get_executor

        config = dict(config or {})
        name = str(config.get("dry_run_target", "slurm"))
        if name.strip().lower().replace("_", "-") in ("dry-run", "dryrun"):
            raise ExecutorError("dry_run_target cannot be the dry run itself; use e.g. slurm")
        target = get_executor(
            name,
            {
                **config,
                "max_array_size": config.get("max_array_size", _NO_LIMIT),
                "pbs_flavor": config.get("pbs_flavor", "pro"),
            },
        )
        if not isinstance(target, SchedulerExecutor):
            raise ExecutorError(
                f"dry_run_target = {name!r} is not a cluster scheduler; use slurm, pbs, lsf, "
                "sge or flux"
            )
        log_file = config.get("dry_run_log")
        return cls(target, Path(log_file).expanduser() if log_file else None)

    def _record(self, command: Command) -> None:
        self.commands.append(command)
        log.info("dry-run, would run: %s", command)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as handle:
                handle.write(f"{command}\n")

    def split(self, job: JobSpec) -> tuple[JobSpec, ...]:
        return self.target.split(job)

    def submit(self, job: JobSpec) -> str:
        offset = self.target.array_offset(job) if job.is_array else 0
        self._record(self.target.submit_command(job, offset))
        return f"dry-{next(self._ids)}"

    def cancel(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            natives = [self.target.native_id(j) for j in job_ids]
            self._record(self.target.cancel_command(natives))

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {
            job_id: JobStatus(
                job_id, JobState.PENDING, None, "DRY-RUN", "dry-run: nothing was submitted"
            )
            for job_id in job_ids
        }
