"""submit(executor="dry-run"): the first step's commands are logged and the run is closed.

The dry run imitates Slurm without running any scheduler command (the rendered commands are
only logged), so this runs anywhere.
"""

from __future__ import annotations

from pathlib import Path

from driver_helpers import states, write_pipeline

from reflow.executors.dryrun import DryRunExecutor


def test_dry_run_logs_the_commands_and_leaves_nothing_running(local_env: Path) -> None:
    wf = write_pipeline(local_env)
    log = local_env / "dry.log"
    executor = DryRunExecutor(log_path=log)
    run = wf.submit(local_env / "r", store=str(local_env / "m.db"), executor=executor, n=3)
    # The first step's ready task was rendered as a real sbatch call, and only logged.
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("sbatch ") for line in lines)
    assert any("produce" in line for line in lines)
    # and kept with the run, whether or not a log file was configured
    listing = local_env / "r" / "logs" / "dry-run-commands.sh"
    assert listing.read_text().splitlines() == lines
    # Nothing will ever run those jobs, so neither the run nor an instance stays active.
    assert run.state == "CANCELLED"
    assert states(run, "produce") == ["CANCELLED"]
    (produce,) = run.store.latest_instances(run.run_id, "produce")
    assert produce.job_id and produce.job_id.startswith("dry-")
    assert f"the commands are in {listing}" in (produce.error_text or "")
    history = [(t["from_state"], t["to_state"]) for t in run.transitions()
               if t["task_name"] == "produce"]
    assert history[-2:] == [("PENDING", "SUBMITTED"), ("SUBMITTED", "CANCELLED")]
