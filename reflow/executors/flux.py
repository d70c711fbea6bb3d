"""Flux: ``flux submit``, ``flux cancel`` and one ``flux jobs`` call per poll.

Flux has no job arrays: ``flux submit --cc=IDSET`` submits one ordinary job per index, with
the index in ``FLUX_JOB_CC``. So an "array id" here lists its elements,
``"<reflow idset>=<id>,<id>,..."``, and ``array_element_id`` returns the element's own Flux
id, which is also what ``query`` keys it by. ``flux submit`` prints the ids as each
submission is acknowledged, not necessarily in order; Flux ids grow with submission time,
so sorting them numerically gives the index order.

Indices are passed as ``cc = index + 1`` because ``flux submit`` skips its ``{cc}``
argument formatting for cc 0, which would make element 0 differ from the others. That
formatting has no escape for a literal brace that works on every flux-core version (newer
ones keep ``{{...}}`` as a template, older ones turn it into ``{...}``), so an array whose
command holds a brace is refused. Flux has no
array throttle (``array_parallelism`` is not enforced) and no memory request in Flux core
(``mem`` is not sent).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import ClassVar

from reflow.errors import ExecutorError
from reflow.executors.base import JobSpec, JobState, JobStatus
from reflow.executors.commands import Command, compress_indices, error_line, expand_indices
from reflow.executors.scheduler import JobRef, SchedulerExecutor, option_flags

log = logging.getLogger(__name__)

_F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_PENDING = {"NEW", "DEPEND", "PRIORITY", "SCHED"}
_RUNNING = {"RUN", "CLEANUP"}
_RESULTS = {
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELLED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
}


def flux_id_value(text: str) -> int:
    """The numeric value of a Flux job id printed as f58 ('ƒ2QjUv', 'f2QjUv'), decimal or hex."""
    text = text.strip()
    if text[:1] in ("ƒ", "f") and len(text) > 1:
        value = 0
        for char in text[1:]:
            digit = _F58.find(char)
            if digit < 0:
                raise ValueError(f"not a Flux job id: {text!r}")
            value = value * 58 + digit
        return value
    if text.startswith("0x"):
        return int(text, 16)
    if text.isdigit():
        return int(text)
    raise ValueError(f"not a Flux job id: {text!r}")


class FluxExecutor(SchedulerExecutor):
    """Flux adapter: ``--cores-per-task=N``, ``--time-limit=<s>s``, ``--queue`` for the
    partition, the account as ``--setattr=system.bank=...``, other options as
    ``--key=value``. Elements log Flux's own output to ``<stdout with {index} ->
    {{id}}.sched>``."""

    name: ClassVar[str] = "flux"
    index_base: ClassVar[int] = 1
    index_env_var: ClassVar[str] = "FLUX_JOB_CC"
    submit_tool: ClassVar[str] = "flux"
    log_placeholders: ClassVar[str | None] = r"[{}]"  # formatted, as the --cc command is
    cancel_tool: ClassVar[str] = "flux"
    cancel_ignorable: ClassVar[tuple[str, ...]] = (r"inactive", r"unknown job", r"no such")

    # -- ids: an array id lists its elements ----------------------------------------------

    @staticmethod
    def _elements(job_id: str) -> dict[int, str] | None:
        """{reflow index: Flux id} of an array id, None for a single job's id."""
        idset, sep, ids = job_id.partition("=")
        if not sep:
            return None
        indices = expand_indices(idset)
        members = ids.split(",")
        if len(indices) != len(members):
            raise ExecutorError(f"Flux array id {job_id[:80]!r} is corrupt (indices != ids)")
        return dict(zip(indices, members, strict=True))

    def array_element_id(self, job_id: str, index: int) -> str:
        elements = self._elements(job_id)
        if elements is None or index not in elements:
            raise ExecutorError(
                f"Flux array {job_id[:80]!r} has no element {index}; pass the id submit returned"
            )
        return elements[index]

    def parse_id(self, job_id: str) -> JobRef:
        return JobRef(job_id)

    def native_element_id(self, native: str, scheduler_index: int) -> str:
        return self.array_element_id(native, scheduler_index - self.index_base)

    def _flux_ids(self, job_ids: Sequence[str]) -> list[str]:
        ids: list[str] = []
        for job_id in job_ids:
            elements = self._elements(job_id)
            ids.extend(elements.values() if elements is not None else [job_id])
        return list(dict.fromkeys(ids))

    # -- submit / cancel --------------------------------------------------------------------

    def submit_command(self, job: JobSpec, offset: int = 0) -> Command:
        res = job.resources
        argv = ["flux", "submit", f"--job-name={job.name}", f"--cwd={job.workdir}"]
        if job.array_indices is not None:
            argv.append(f"--output={self.scheduler_log(job, '{{id}}')}")
        elif job.stdout == job.stderr:  # a driver job: stderr follows --output
            argv.append(f"--output={self.log_path(job, job.stdout)}")
        else:
            argv += [
                f"--output={self.log_path(job, job.stdout)}",
                f"--error={self.log_path(job, job.stderr)}",
            ]
        argv += [f"--cores-per-task={res.cpus}", f"--time-limit={res.time_seconds}s"]
        if res.partition:
            argv.append(f"--queue={res.partition}")
        if res.account:
            argv.append(f"--setattr=system.bank={res.account}")
        argv += option_flags(res.options, long=True, joined=True)
        for dependency in self._flux_ids(job.after_any):
            argv.append(f"--dependency=afterany:{dependency}")
        command = self.job_argv(job, offset)
        if job.array_indices is not None:
            if job.array_parallelism is not None:
                log.warning(
                    "Flux has no array throttle: array_parallelism=%d of job %s is not enforced",
                    job.array_parallelism, job.name,
                )  # fmt: skip
            argv.append("--cc=" + compress_indices(i + self.index_base for i in job.array_indices))
            braced = next((arg for arg in command if "{" in arg or "}" in arg), None)
            if braced is not None:
                raise ExecutorError(
                    f"flux submit --cc formats its command, and no escape for a brace works on "
                    f"every flux-core version: {braced!r}; choose a run dir (and Python) path "
                    "without '{' or '}'"
                )
        argv += res.submit_options
        argv += command
        return Command(tuple(argv))

    def parse_submit(self, stdout: str, job: JobSpec) -> str:
        ids = [line.strip() for line in stdout.splitlines() if line.strip()]
        if not ids:
            raise ValueError(stdout)
        values = [flux_id_value(i) for i in ids]
        if job.array_indices is None:
            return ids[0]
        if len(ids) != len(job.array_indices):
            raise ExecutorError(
                f"flux submit printed {len(ids)} job ids for the {len(job.array_indices)} "
                f"elements of {job.name!r}; cancel them with `flux cancel {' '.join(ids)}`"
            )
        ordered = [text for _, text in sorted(zip(values, ids, strict=True))]
        return f"{compress_indices(job.array_indices)}={','.join(ordered)}"

    def cancel_command(self, native_ids: Sequence[str]) -> Command:
        return Command(("flux", "cancel", *self._flux_ids(native_ids)))

    # -- query ------------------------------------------------------------------------------

    def jobs_command(self, flux_ids: Sequence[str]) -> Command:
        fmt = "{id}|{state}|{result}|{returncode}|{exception.type}|{exception.note}"
        return Command(("flux", "jobs", "-a", "--no-header", "-o", fmt, *flux_ids))

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        job_ids = list(dict.fromkeys(job_ids))
        if not job_ids:
            return {}
        asked = {flux_id_value(i): i for i in self._flux_ids(job_ids)}
        result = self.run(self.jobs_command(list(asked.values())))
        rows = [line.split("|") for line in result.stdout.splitlines() if line.count("|") >= 5]
        if result.returncode != 0 and not rows:
            lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
            if not all(re.search(r"unknown|not found|no such", ln, re.I) for ln in lines):
                raise ExecutorError(f"flux jobs could not report jobs: {error_line(result)}")
        found: dict[str, JobStatus] = {}
        for fields in rows:
            try:
                key = asked[flux_id_value(fields[0])]
            except (ValueError, KeyError):
                continue
            found[key] = JobStatus(key, *_status(fields))
        return self.fill_unknown(asked.values(), found)


def _status(fields: Sequence[str]) -> tuple[str, int | None, str, str]:
    state, result, code_text, exc_type, note = (f.strip() for f in fields[1:6])
    if state in _PENDING:
        return JobState.PENDING, None, state, ""
    if state in _RUNNING:
        return JobState.RUNNING, None, state, ""
    if state != "INACTIVE":
        return JobState.UNKNOWN, None, state, f"unexpected Flux job state {state!r}"
    normal = _RESULTS.get(result, JobState.FAILED)
    if exc_type == "oom" or "oom" in note.lower():
        normal = JobState.OUT_OF_MEMORY
    code = int(code_text) if re.fullmatch(r"-?\d+", code_text) else None
    reason = f"{exc_type}: {note}" if exc_type and exc_type != "-" else ""
    return normal, code, result or state, reason
