"""Slurm adapter against the recording fake binaries: exact argv, id handling, MaxArraySize
splitting, transient retries and the parsing of canned sacct/squeue output.
(test_slurm_cluster_executor.py runs the same adapter against a real cluster.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import FakeScheduler, make_job, wrapper_tail

from reflow.errors import ExecutorError
from reflow.executors.base import JobState
from reflow.executors.slurm import SlurmExecutor

SCONTROL = "ClusterName = ci\nMaxArraySize            = 1001\nMaxJobCount = 10000\n"


def _script_at(argv: list[str]) -> int:
    """Where the batch script stands in sbatch's argv: options before it, the job's argv
    (as separate arguments, never one shell string) after it."""
    return next(i for i, a in enumerate(argv) if a.endswith("/.reflow/slurm-job.sh"))


def _wrap(argv: list[str]) -> list[str]:
    """The job's command: the batch script's arguments."""
    return argv[_script_at(argv) + 1:]


def test_singleton_argv_has_resources_options_and_raw_extras(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("sbatch", "4242;ci\n")
    job = make_job(tmp_path, cpus=4, mem="16G", time="1-02:00:00", partition="gpu",
                   account="proj", qos="long", exclusive=True, requeue=False,
                   mail_type="END", submit_options=["--nice=10"], env={"A": "1"})  # fmt: skip
    job_id = SlurmExecutor(fake.runner()).submit(job)
    assert job_id == "4242"
    argv = fake.argv("sbatch")
    assert argv[: _script_at(argv)] == [
        "--parsable", "--job-name", "wf-task", "--chdir", str(tmp_path),
        "--output", f"{tmp_path}/logs/wf-task.out", "--error", f"{tmp_path}/logs/wf-task.err",
        "--cpus-per-task", "4", "--mem", "16G", "--time", "1-02:00:00",
        "--partition", "gpu", "--account", "proj",
        "--qos", "long", "--exclusive", "--mail-type", "END",
        "--nice=10",
    ]  # fmt: skip
    assert _wrap(argv) == ["/usr/bin/env", "A=1", "/usr/bin/python3", "-m",
                           "reflow.engine.worker", "payload"]  # fmt: skip
    assert (tmp_path / "logs").is_dir()  # sbatch cannot create it; the job would fail 0:53
    script = Path(argv[_script_at(argv)])
    assert script.read_text().splitlines()[0] == "#!/bin/sh" and 'exec "$@"' in script.read_text()


def test_sparse_array_with_throttle_and_dependencies(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("scontrol", SCONTROL)
    fake.reply("sbatch", "77\n")
    executor = SlurmExecutor(fake.runner())
    job = make_job(tmp_path, indices=(0, 1, 2, 3, 7, 9, 10), parallelism=3,
                   after=("70", "71_4"))  # fmt: skip
    job_id = executor.submit(job)
    assert job_id == "77"
    assert executor.array_element_id(job_id, 7) == "77_7"
    argv = fake.argv("sbatch")
    assert argv[argv.index("--array") + 1] == "0-3,7,9-10%3"
    assert argv[argv.index("--dependency") + 1] == "afterany:70:71_4"
    fake.reply("sbatch", "78\n")
    executor.submit(replace(job, after_first=True))  # the next driver step: any one ended
    second = fake.calls("sbatch")[-1].argv
    assert second[second.index("--dependency") + 1] == "afterany:70?afterany:71_4"
    assert argv[argv.index("--output") + 1] == f"{tmp_path}/logs/wf-task-%a.out"
    assert argv[argv.index("--error") + 1] == f"{tmp_path}/logs/wf-task-%a.err"
    assert argv[argv.index("--open-mode") + 1] == "append"
    assert _wrap(argv) == [
        "/usr/bin/env", "REFLOW_ARRAY_INDEX_BASE=0", "REFLOW_ARRAY_INDEX_VAR=SLURM_ARRAY_TASK_ID",
        *wrapper_tail(tmp_path, "wf-task"),
    ]  # fmt: skip


def test_percent_in_a_log_path_is_kept_literal(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("sbatch", "5\n")
    workdir = tmp_path / "100%done"
    SlurmExecutor(fake.runner()).submit(make_job(workdir))
    argv = fake.argv("sbatch")
    assert argv[argv.index("--output") + 1] == f"{tmp_path}/100%%done/logs/wf-task.out"


def test_arrays_beyond_max_array_size_are_split_with_offsets(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("scontrol", SCONTROL)
    fake.reply("sbatch", "10\n", "11\n")
    executor = SlurmExecutor(fake.runner())
    job = make_job(tmp_path, indices=(5, 1000, 1001, 1500, 2001), parallelism=2)
    with pytest.raises(ExecutorError, match=r"needs 2 slurm submissions.*submit_many"):
        executor.submit(job)
    submitted = executor.submit_many(job)
    assert [(jid, part.array_indices) for jid, part in submitted] == [
        ("10", (5, 1000)),
        ("11@1001", (1001, 1500, 2001)),
    ]
    assert len(fake.calls("scontrol")) == 1  # MaxArraySize is read once
    first, second = (call.argv for call in fake.calls("sbatch"))
    # array_parallelism=2 bounds the task: the two submissions share it
    assert first[first.index("--array") + 1] == "5,1000%1"
    assert second[second.index("--array") + 1] == "0,499,1000%1"
    assert second[second.index("--output") + 1] == f"{tmp_path}/logs/wf-task-%A_%a.sched.out"
    assert "--error" not in second
    assert "REFLOW_ARRAY_INDEX_BASE=-1001" in _wrap(second)
    assert executor.array_element_id("11@1001", 1500) == "11@1001_1500"


def test_parts_beyond_array_parallelism_wait_for_an_earlier_part(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    """Each part runs at least one element, so with P=1 and two parts the second part
    waits for the first: the task never runs more than P elements at once."""
    fake.reply("scontrol", SCONTROL)
    fake.reply("sbatch", "10\n", "11\n")
    job = make_job(tmp_path, indices=(5, 1000, 1001, 1500, 2001), parallelism=1)
    submitted = SlurmExecutor(fake.runner()).submit_many(job)
    assert [part.after_any for _, part in submitted] == [(), ("10",)]
    first, second = (call.argv for call in fake.calls("sbatch"))
    assert first[first.index("--array") + 1] == "5,1000%1"
    assert "--dependency" not in first
    assert second[second.index("--dependency") + 1] == "afterany:10"


def test_cancel_translates_elements_of_shifted_parts(fake: FakeScheduler) -> None:
    SlurmExecutor(fake.runner()).cancel(["10", "11@1001_1500", "12_3", "11@1001_1500"])
    assert fake.argv("scancel") == ["10", "11_499", "12_3"]


def test_cancel_of_finished_jobs_is_quiet_but_other_errors_raise(fake: FakeScheduler) -> None:
    fake.reply(
        "scancel",
        {"stderr": "scancel: error: Kill job error on job id 9: Invalid job id specified\n",
         "returncode": 1},
        {"stderr": "scancel: error: Access/permission denied\n", "returncode": 1},
    )  # fmt: skip
    executor = SlurmExecutor(fake.runner())
    executor.cancel(["9"])
    with pytest.raises(ExecutorError, match=r"scancel could not cancel 9: .*permission denied"):
        executor.cancel(["9"])


def test_transient_submit_errors_are_retried_with_backoff(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    busy = {"stderr": "sbatch: error: Batch job submission failed: "
            "Unable to contact slurm controller (connect failure)\n", "returncode": 1}  # fmt: skip
    fake.reply("sbatch", busy, {"stderr": "sbatch: error: Socket timed out\n", "returncode": 1},
               "31\n")  # fmt: skip
    assert SlurmExecutor(fake.runner()).submit(make_job(tmp_path)) == "31"
    assert len(fake.calls("sbatch")) == 3
    assert len(fake.sleeps) == 2


def test_a_refused_job_raises_the_schedulers_own_line(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("sbatch", {
        "stderr": "sbatch: error: invalid partition specified: nope\n"
        "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
        "returncode": 1,
    })  # fmt: skip
    with pytest.raises(ExecutorError) as info:
        SlurmExecutor(fake.runner()).submit(make_job(tmp_path, partition="nope"))
    assert str(info.value) == (
        "sbatch refused job 'wf-task': sbatch: error: Batch job submission failed: "
        "Invalid partition name specified"
    )
    assert len(fake.calls("sbatch")) == 1


SACCT = """\
100_0|COMPLETED|0:0|None
100_1|FAILED|3:0|NonZeroExitCode
100_2|OUT_OF_MEMORY|0:125|OutOfMemory
100_6|FAILED|0:9|None
100_[3-5%2]|PENDING|0:0|JobArrayTaskLimit
101|CANCELLED by 0|0:0|None
102|TIMEOUT|0:0|None
103|RUNNING|0:0|None
200_2|NODE_FAIL|0:0|None
"""


def test_query_is_one_sacct_call_for_everything(fake: FakeScheduler) -> None:
    fake.reply("sacct", SACCT)
    statuses = SlurmExecutor(fake.runner()).query(["100", "101", "102", "103", "200@1000"])
    assert fake.argv("sacct") == [
        "-X",
        "-n",
        "-P",
        "--format=JobID,State,ExitCode,Reason",
        "-j",
        "100,101,102,103,200",
    ]
    assert fake.calls("squeue") == []
    view = {k: (s.state, s.exit_code, s.reason) for k, s in statuses.items()}
    assert view == {
        "100_0": (JobState.COMPLETED, 0, ""),
        "100_1": (JobState.FAILED, 3, ""),
        "100_2": (JobState.OUT_OF_MEMORY, 137, ""),
        "100_6": (JobState.FAILED, 137, ""),
        "100_3": (JobState.PENDING, None, "JobArrayTaskLimit"),
        "100_4": (JobState.PENDING, None, "JobArrayTaskLimit"),
        "100_5": (JobState.PENDING, None, "JobArrayTaskLimit"),
        "101": (JobState.CANCELLED, 0, ""),
        "102": (JobState.TIMEOUT, 0, ""),
        "103": (JobState.RUNNING, None, ""),
        "200@1000_1002": (JobState.NODE_FAIL, 0, ""),
    }
    assert statuses["101"].raw_state == "CANCELLED by 0"


def test_jobs_sacct_does_not_know_yet_are_asked_of_squeue(fake: FakeScheduler) -> None:
    fake.reply("sacct", "103|RUNNING|0:0|None\n")
    fake.reply("squeue", "104|PENDING|0|Priority|\n")
    statuses = SlurmExecutor(fake.runner()).query(["103", "104", "105_2"])
    assert fake.argv("squeue") == [
        "-h", "-t", "all", "-r", "-j", "104,105", "-O",
        "JobArrayID:|,State:|,exit_code:|,Reason:|",
    ]  # fmt: skip
    assert statuses["104"].state == JobState.PENDING and statuses["104"].reason == "Priority"
    assert statuses["105_2"].state == JobState.UNKNOWN


def test_without_accounting_squeue_answers_and_sacct_is_not_asked_again(
    fake: FakeScheduler,
) -> None:
    fake.reply("sacct", {"stderr": "Slurm accounting storage is disabled\n", "returncode": 1})
    fake.reply("squeue", "300_0|FAILED|768|NonZeroExitCode|\n300_1|CANCELLED|15|None|\n"
               "300_2|RUNNING|0|None|\n")  # fmt: skip
    executor = SlurmExecutor(fake.runner())
    first = executor.query(["300"])
    second = executor.query(["300"])
    assert len(fake.calls("sacct")) == 1
    assert len(fake.calls("squeue")) == 2
    assert first == second
    assert [(first[k].state, first[k].exit_code) for k in ("300_0", "300_1", "300_2")] == [
        (JobState.FAILED, 3), (JobState.CANCELLED, 143), (JobState.RUNNING, None),
    ]  # fmt: skip


def test_a_failing_squeue_is_an_error_not_unknown(fake: FakeScheduler) -> None:
    fake.reply("sacct", {"stderr": "Slurm accounting storage is disabled\n", "returncode": 1})
    fake.reply("squeue", {"stderr": "squeue: fatal: Unable to process configuration file\n",
                          "returncode": 1})  # fmt: skip
    with pytest.raises(ExecutorError, match="squeue could not report jobs 1"):
        SlurmExecutor(fake.runner(attempts=1)).query(["1"])


def test_max_array_size_zero_means_arrays_are_disabled(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("scontrol", "MaxArraySize = 0\n")
    with pytest.raises(ExecutorError, match="job arrays are disabled"):
        SlurmExecutor(fake.runner()).submit(make_job(tmp_path, indices=(0, 1)))
