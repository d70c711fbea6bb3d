"""Smoke tests of the test Slurm cluster itself.

They pin down what the Slurm executor's tests rely on (exit codes reach
accounting, --mem is enforced), so that when those fail it is clear whether
reflow or the cluster is at fault.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, job_state, sacct_state, sbatch, wait_for_job

pytestmark = pytest.mark.slurm


def test_accounting_records_completed_and_failed_jobs(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    if not slurm_cluster.accounting:
        pytest.skip("cluster runs without slurmdbd (SLURM_CI_ACCOUNTING=none): sacct has no data")
    common = [f"--partition={slurm_cluster.partition}", f"--output={tmp_path / '%j.out'}"]
    ok = sbatch([*common, "--wrap", "echo hello from $SLURM_JOB_ID"], cwd=tmp_path)
    failing = sbatch([*common, "--wrap", "exit 3"], cwd=tmp_path)

    assert wait_for_job(ok, 60, query=sacct_state) == "COMPLETED"
    assert wait_for_job(failing, 60, query=sacct_state) == "FAILED"
    assert (tmp_path / f"{ok}.out").read_text() == f"hello from {ok}\n"


def test_job_over_its_memory_limit_ends_out_of_memory(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    if not slurm_cluster.memory_enforced:
        pytest.skip(
            "cluster does not enforce --mem (needs SLURM_CI_MEMORY=cgroup or auto on a machine "
            "with a cgroup-v1 memory controller)"
        )
    # Fills 400 MiB with non-zero bytes so the pages are really touched.
    hog = f"{sys.executable} -c \"data = b'x' * (400 << 20)\""
    job = sbatch(
        [
            f"--partition={slurm_cluster.partition}",
            "--mem=100M",
            f"--output={tmp_path / '%j.out'}",
            f"--wrap={hog}",
        ],
        cwd=tmp_path,
    )
    query = sacct_state if slurm_cluster.accounting else job_state
    assert wait_for_job(job, 60, query=query) == "OUT_OF_MEMORY"
