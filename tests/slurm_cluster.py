"""Fixtures and helpers for tests that submit real jobs to the test Slurm cluster.

The cluster is started outside pytest (``.ci/run``, or by hand as root with
``bash .ci/slurm/start-cluster.sh``) because starting it needs root, installs
packages and takes ~10 s; pytest only looks for it. Locally a missing cluster
skips the tests that need it; in CI (``SLURM_CI_REQUIRED=1``) it fails them, so
a broken cluster can never turn the executor tests silently green.

Import the fixture into a conftest with ``from slurm_cluster import slurm_cluster``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

START_HINT = "start it as root with `bash .ci/slurm/start-cluster.sh`"

# Slurm job states after which a job never runs again (squeue/scontrol/sacct names).
FINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)

# Node states in which a node accepts work (a 'down'/'drained' node would leave jobs pending).
_USABLE_NODE_STATES = frozenset({"idle", "mixed", "allocated", "completing"})

_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class SlurmCluster:
    """Facts about the running test cluster, read from the cluster.env that start-cluster.sh
    writes, so tests can size jobs and decide which checks the cluster can support."""

    cluster: str
    partition: str
    node: str
    cpus: int
    mem_mb: int
    accounting: bool
    memory_enforced: bool
    log_dir: Path


def cluster_env_path() -> Path:
    """Where start-cluster.sh leaves cluster.env (it honours the same SLURM_CI_DIR)."""
    return Path(os.environ.get("SLURM_CI_DIR", "/var/spool/slurm-ci")) / "cluster.env"


def read_cluster_env(path: Path) -> SlurmCluster:
    """Parse cluster.env (KEY=VALUE lines); raises ValueError naming the file and missing key."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()

    def get(key: str) -> str:
        try:
            return values[key]
        except KeyError:
            raise ValueError(
                f"{path}: key {key} is missing; restart the cluster with "
                "`bash .ci/slurm/start-cluster.sh --fresh` to rewrite it"
            ) from None

    return SlurmCluster(
        cluster=get("SLURM_CI_CLUSTER"),
        partition=get("SLURM_CI_PARTITION"),
        node=get("SLURM_CI_NODE"),
        cpus=int(get("SLURM_CI_CPUS")),
        mem_mb=int(get("SLURM_CI_MEM_MB")),
        accounting=get("SLURM_CI_ACCOUNTING") == "slurmdbd",
        memory_enforced=get("SLURM_CI_MEMORY") == "cgroup",
        log_dir=Path(get("SLURM_CI_LOG_DIR")),
    )


def _run(args: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_COMMAND_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def unavailable_reason() -> str | None:
    """Why no usable cluster answers, or None when one does.

    Checks what a job needs: the client tools, a controller that answers, and a
    node that takes work, so a half-started cluster is reported here rather than
    as a job pending until some test's timeout.
    """
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return f"no Slurm cluster: `sinfo`/`scontrol` are not installed; {START_HINT}"
    try:
        # `scontrol ping` answers at once; `sinfo` retries a dead controller for ~20 s.
        ping = _run(["scontrol", "ping"])
        if "is UP" not in ping.stdout:
            return f"no Slurm cluster: slurmctld is not running (`scontrol ping`); {START_HINT}"
        result = _run(["sinfo", "--noheader", "--format=%T"])
    except subprocess.TimeoutExpired:
        return (
            f"no Slurm cluster: Slurm did not answer within {_COMMAND_TIMEOUT:.0f}s; {START_HINT}"
        )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"no Slurm cluster: `sinfo` failed ({detail[0]}); {START_HINT}"
    states = {line.strip().rstrip("*~#") for line in result.stdout.splitlines() if line.strip()}
    if not states & _USABLE_NODE_STATES:
        shown = ", ".join(sorted(states)) or "none"
        return (
            f"Slurm cluster has no usable node (node states: {shown}); "
            "restart it with `bash .ci/slurm/start-cluster.sh --fresh`"
        )
    path = cluster_env_path()
    if not path.is_file():
        return (
            f"a Slurm cluster answers but {path} is missing (not started by "
            f".ci/slurm/start-cluster.sh); {START_HINT}"
        )
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The running test cluster; skips without one, fails without one when SLURM_CI_REQUIRED=1."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("SLURM_CI_REQUIRED") == "1":
            pytest.fail(f"{reason} (SLURM_CI_REQUIRED=1 makes this an error)", pytrace=False)
        pytest.skip(reason)
    return read_cluster_env(cluster_env_path())


def sbatch(args: Sequence[str], cwd: Path) -> str:
    """Submit with ``sbatch --parsable`` and return the job id ('12'; an array's base id)."""
    result = _run(["sbatch", "--parsable", *args], cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(
            f"sbatch {' '.join(args)} failed (exit {result.returncode}): {result.stderr.strip()}"
        )
    # --parsable prints "jobid" or "jobid;cluster".
    return result.stdout.strip().split(";")[0]


def scontrol_state(job_id: str) -> str | None:
    """The job's state as slurmctld knows it, or None once slurmctld has forgotten the job."""
    result = _run(["scontrol", "show", "job", "--oneliner", job_id])
    if result.returncode != 0:
        return None
    for field in result.stdout.split():
        key, _, value = field.partition("=")
        if key == "JobState":
            return value
    return None


def sacct_state(job_id: str) -> str | None:
    """The job's state in the accounting database, or None while it has no record yet.

    sacct writes 'CANCELLED by 0'; only the first word is the state.
    Raises RuntimeError when sacct itself fails (e.g. accounting is disabled).
    """
    result = _run(
        ["sacct", "--noheader", "--allocations", "--parsable2", "--jobs", job_id, "--format=State"]
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"sacct --jobs {job_id} failed (exit {result.returncode}): {result.stderr.strip()}; "
            "start the cluster with accounting (SLURM_CI_ACCOUNTING=slurmdbd)"
        )
    lines = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    # After a restart with kept state an id can repeat; the newest record is last.
    return lines[-1] if lines else None


def job_state(job_id: str) -> str | None:
    """The job's current state: slurmctld's view, then accounting once slurmctld forgot it."""
    state = scontrol_state(job_id)
    if state is not None or shutil.which("sacct") is None:
        return state
    try:
        return sacct_state(job_id)
    except RuntimeError:
        return None


def wait_for_job(
    job_id: str,
    timeout: float = 120.0,
    *,
    query: Callable[[str], str | None] = job_state,
    poll_interval: float = 0.25,
) -> str:
    """Poll until the job reaches a final state and return it (e.g. 'COMPLETED').

    ``query`` picks the source: ``job_state`` (default) or ``sacct_state``, whose
    record trails the job's end by about a second. For an array, pass one element's id
    ('12_3'). Raises TimeoutError after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = query(job_id)
        if state is not None and state in FINAL_STATES:
            return state
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"Slurm job {job_id} not finished after {timeout:.0f}s (state {state}); "
                f"inspect it with `scontrol show job {job_id}`"
            )
        time.sleep(poll_interval)
