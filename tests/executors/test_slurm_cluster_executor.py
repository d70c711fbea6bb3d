"""The Slurm adapter against the real single-node test cluster (see tests/slurm_cluster.py;
skipped without one, failed without one when SLURM_CI_REQUIRED=1).

Proves what the fake-binary tests cannot: the rendered argv is accepted by a real sbatch,
sparse arrays run with the right reflow index and throttle, afterany holds a job back,
one sacct call reports everything, and a cancelled job ends CANCELLED.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster

from reflow.errors import ExecutorError
from reflow.executors.base import JobResources, JobSpec, JobState, JobStatus
from reflow.executors.commands import CommandResult, CommandRunner
from reflow.executors.slurm import SlurmExecutor

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
INDICES = (0, 3, 4, 8, 11)


class CountingRunner(CommandRunner):
    """Remembers which tools were run."""

    def __init__(self) -> None:
        super().__init__()
        self.tools: list[str] = []

    def run(
        self,
        tool: str,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        transient: Iterable[str] = (),
        retry: bool = True,
        submits: bool = False,
    ) -> CommandResult:
        self.tools.append(tool)
        return super().run(tool, args, stdin=stdin, transient=transient, retry=retry,
                           submits=submits)


def _resources(cluster: SlurmCluster) -> JobResources:
    return JobResources(mem="200M", time="00:05:00", partition=cluster.partition)


def _python(code: str, cluster: SlurmCluster, workdir: Path, name: str,
            indices: tuple[int, ...] | None = None, **extra: object) -> JobSpec:  # fmt: skip
    suffix = "-{index}" if indices is not None else ""
    return JobSpec(
        name=name, command=(sys.executable, "-c", code), resources=_resources(cluster),
        workdir=workdir, stdout=Path(f"logs/{name}{suffix}.out"),
        stderr=Path(f"logs/{name}{suffix}.err"), array_indices=indices,
        env={"PYTHONPATH": str(REPO)}, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


# Prints its reflow index; its start and end times go to stderr, to check the throttle.
ELEMENT = (
    "import sys, time; from reflow.executors.base import array_index_from_env as f; "
    "print(time.time(), file=sys.stderr); print('element', f()); time.sleep(1); "
    "print(time.time(), file=sys.stderr)"
)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    return max(sum(s <= start < e for s, e in intervals) for start, _ in intervals)


def _poll(
    executor: SlurmExecutor,
    ids: Iterable[str],
    until: Callable[[dict[str, JobStatus]], bool],
    timeout: float = 120,
) -> list[dict[str, JobStatus]]:
    """Query every 0.3 s until ``until`` holds; returns every answer seen."""
    seen: list[dict[str, JobStatus]] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(executor.query(list(ids)))
        if until(seen[-1]):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not done after {timeout}s: {seen[-1]}")
        time.sleep(0.3)


def _all_done(count: int) -> Callable[[dict[str, JobStatus]], bool]:
    return lambda s: len(s) == count and all(st.terminal for st in s.values())


def test_sparse_throttled_array_then_afterany_job(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    runner = CountingRunner()
    executor = SlurmExecutor(runner)
    array = executor.submit(
        _python(ELEMENT, slurm_cluster, tmp_path, "arr", INDICES, array_parallelism=2)
    )
    check = (
        "import pathlib, sys; ok = all(pathlib.Path(f'logs/arr-{i}.out').read_text() "
        f"== f'element {{i}}\\n' for i in {INDICES!r}); sys.exit(0 if ok else 9)"
    )
    after = executor.submit(_python(check, slurm_cluster, tmp_path, "after", after_any=(array,)))

    final = _poll(executor, [array, after], _all_done(len(INDICES) + 1))[-1]
    elements = [executor.array_element_id(array, i) for i in INDICES]
    assert sorted(final) == sorted([*elements, after])
    assert {final[e].state for e in elements} == {JobState.COMPLETED}
    assert final[after].state == JobState.COMPLETED, final[after]  # ran after every element
    for i in INDICES:
        assert (tmp_path / f"logs/arr-{i}.out").read_text() == f"element {i}\n"
    intervals = [
        (float(a), float(b))
        for a, b in ((tmp_path / f"logs/arr-{i}.err").read_text().split() for i in INDICES)
    ]
    assert _max_overlap(intervals) <= 2  # array_parallelism=2

    if slurm_cluster.accounting:  # sacct trails by ~1 s; once it caught up, it answers alone
        deadline = time.monotonic() + 30
        while True:
            runner.tools.clear()
            again = executor.query([array, after])
            if runner.tools == ["sacct"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert runner.tools == ["sacct"]
        assert {k: s.state for k, s in again.items()} == {k: s.state for k, s in final.items()}


def test_array_split_past_max_array_size_keeps_reflow_indices(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    executor = SlurmExecutor(max_array_size=5)
    job = _python(ELEMENT.replace("time.sleep(1)", "0"), slurm_cluster, tmp_path, "big", INDICES)
    parts = executor.submit_many(job)
    assert [p.array_indices for _, p in parts] == [(0, 3, 4), (8, 11)]
    assert parts[1][0].endswith("@8")
    ids = [jid for jid, _ in parts]
    final = _poll(executor, ids, _all_done(len(INDICES)))[-1]
    keys = {
        executor.array_element_id(jid, i) for jid, part in parts for i in part.array_indices or ()
    }
    assert set(final) == keys
    assert {s.state for s in final.values()} == {JobState.COMPLETED}
    for i in INDICES:
        assert (tmp_path / f"logs/big-{i}.out").read_text() == f"element {i}\n"


def test_cancel_a_running_job_and_see_it_cancelled(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    executor = SlurmExecutor()
    job_id = executor.submit(
        _python("import time; time.sleep(300)", slurm_cluster, tmp_path, "sleep")
    )
    _poll(executor, [job_id], lambda s: s[job_id].state == JobState.RUNNING, timeout=60)
    executor.cancel([job_id])
    final = _poll(executor, [job_id], lambda s: s[job_id].terminal, timeout=60)[-1]
    assert final[job_id].state == JobState.CANCELLED

    # squeue (the fallback when sacct fails) agrees
    squeue_only = SlurmExecutor(CommandRunner({"sacct": "/bin/false"}))
    assert squeue_only.query([job_id])[job_id].state == JobState.CANCELLED
    executor.cancel([job_id])  # cancelling a finished job is not an error


def test_a_job_the_cluster_refuses_raises_its_message(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    job = _python("pass", slurm_cluster, tmp_path, "refused")
    bad = replace(job, resources=JobResources(partition="no-such-partition"))
    with pytest.raises(ExecutorError, match=r"sbatch refused job 'refused': .*[Pp]artition"):
        SlurmExecutor().submit(bad)
