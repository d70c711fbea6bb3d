"""A fake scheduler for driver tests: records every call, runs task elements in-process.

Elements run (through the real worker code, writing real result files) when the driver next
queries, which is when a real scheduler would have run them. Tests can make a call fail once,
make an element vanish without a result, or report it killed with a given state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from reflow.engine.worker import Worker
from reflow.errors import ExecutorError
from reflow.executors.base import Executor, JobSpec, JobState, JobStatus


class FakeExecutor(Executor):
    name: ClassVar[str] = "fake"
    index_base: ClassVar[int] = 0
    index_env_var: ClassVar[str] = "FAKE_INDEX"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.jobs: dict[str, JobSpec] = {}
        self.states: dict[str, JobStatus] = {}
        self.fail_next: set[str] = set()
        # array index -> states its next jobs end in, without a result, one per submission
        self.no_result: dict[int | None, list[str]] = {}
        self.cancelled: list[str] = []
        self.run_jobs = True

    def _maybe_fail(self, call: str) -> None:
        self.calls[call] += 1
        if call in self.fail_next:
            self.fail_next.discard(call)
            raise ExecutorError(f"{call} failed: Socket timed out (injected)")

    def submit(self, job: JobSpec) -> str:
        self._maybe_fail("submit")
        job_id = f"f{len(self.jobs) + 1}"
        self.jobs[job_id] = job
        for element in self._elements(job_id, job):
            self.states[element] = JobStatus(element, JobState.PENDING, None, "PENDING")
        return job_id

    def _elements(self, job_id: str, job: JobSpec) -> list[str]:
        if job.array_indices is None:
            return [job_id]
        return [self.array_element_id(job_id, i) for i in job.array_indices]

    def cancel(self, job_ids: Sequence[str]) -> None:
        self._maybe_fail("cancel")
        self.cancelled.extend(job_ids)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self._maybe_fail("query")
        if self.run_jobs:
            self.run_pending()
        out: dict[str, JobStatus] = {}
        for job_id in job_ids:
            for element in self._elements(job_id, self.jobs[job_id]):
                out[element] = self.states[element]
        return out

    def task_jobs(self) -> dict[str, JobSpec]:
        return {k: v for k, v in self.jobs.items() if "reflow.engine.worker" in v.command}

    def run_pending(self) -> None:
        for job_id, job in self.task_jobs().items():
            indices: Sequence[int | None] = (
                job.array_indices if job.array_indices is not None else [None])
            worker: Worker | None = None
            for index in indices:
                element = job_id if index is None else self.array_element_id(job_id, index)
                if self.states[element].state != JobState.PENDING:
                    continue
                if self.no_result.get(index):
                    # "STATE" or "STATE:RAW", the scheduler's own word for it
                    state, _, raw = self.no_result[index].pop(0).partition(":")
                    self.states[element] = JobStatus(element, state, 137 if state != "COMPLETED"
                                                     else 0, raw or state)
                    continue
                worker = worker or Worker(Path(job.command[-1]))
                code = worker.run(index)
                done = JobState.COMPLETED if code == 0 else JobState.FAILED
                self.states[element] = JobStatus(element, done, code, str(done))
