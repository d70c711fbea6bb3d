"""Grid Engine adapter against the recording fake binaries (``fakebin/``): SGE cannot run on
the test machine, so these pin the exact ``qsub`` argv (1-based ``-t`` ranges, ``-tc``,
``-hold_jid``) and the parsing of canned ``qstat -xml`` and ``qacct`` output."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import FakeScheduler, make_job, wrapper_tail

from reflow.errors import ExecutorError
from reflow.executors import get_executor
from reflow.executors.base import JobState
from reflow.executors.sge import SGEExecutor


def test_singleton_argv_with_parallel_environment_and_per_slot_memory(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "7001\n")
    job = make_job(tmp_path, cpus=4, mem="16G", time="1-00:00:00", queue="all.q",
                   account="proj", P="physics", after=("7000", "6999_2"))  # fmt: skip
    assert SGEExecutor(fake.runner(), user="alice").submit(job) == "7001"
    assert fake.argv("qsub") == [
        "-terse", "-b", "y", "-shell", "no", "-V", "-N", "wf-task", "-wd", str(tmp_path),
        "-o", f"{tmp_path}/logs/wf-task.out", "-e", f"{tmp_path}/logs/wf-task.err",
        "-pe", "smp", "4", "-l", "h_rt=24:00:00,h_vmem=4G",
        "-q", "all.q", "-A", "proj", "-P", "physics", "-hold_jid", "7000,6999",
        "/usr/bin/python3", "-m", "reflow.engine.worker", "payload",
    ]  # fmt: skip


def test_a_driver_job_with_one_log_joins_its_streams(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "7002\n")
    job = make_job(tmp_path, name="wf-driver")
    SGEExecutor(fake.runner(), user="alice").submit(replace(job, stderr=job.stdout))
    argv = fake.argv("qsub")
    assert argv[10:14] == ["-j", "y", "-o", f"{tmp_path}/logs/wf-driver.out"]
    assert "-e" not in argv


def test_array_is_a_one_based_range_with_task_concurrency(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "7100.1-3:1\n")
    executor = SGEExecutor(fake.runner(), user="alice")
    job_id = executor.submit(make_job(tmp_path, indices=(0, 1, 2), parallelism=2))
    assert job_id == "7100"
    argv = fake.argv("qsub")
    assert argv[argv.index("-j") : argv.index("-j") + 4] == [
        "-j", "y", "-o", f"{tmp_path}/logs/wf-task-$JOB_ID.$TASK_ID.sched.out",
    ]  # fmt: skip
    assert argv[argv.index("-t") : argv.index("-t") + 4] == ["-t", "1-3", "-tc", "2"]
    assert argv[argv.index("-tc") + 2 :] == [
        "/usr/bin/env", "REFLOW_ARRAY_INDEX_BASE=1", "REFLOW_ARRAY_INDEX_VAR=SGE_TASK_ID",
        *wrapper_tail(tmp_path, "wf-task"),
    ]  # fmt: skip


def test_sparse_array_needs_one_submission_per_range(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("qsub", "1.1-2:1\n", "2.5-5:1\n")
    executor = SGEExecutor(fake.runner(), user="alice")
    job = make_job(tmp_path, indices=(0, 1, 4))
    with pytest.raises(ExecutorError, match="needs 2 sge submissions"):
        executor.submit(job)
    assert [jid for jid, _ in executor.submit_many(job)] == ["1", "2"]
    ranges = [c.argv[c.argv.index("-t") + 1] for c in fake.calls("qsub")]
    assert ranges == ["1-2", "5-5"]


QSTAT_XML = """<?xml version='1.0'?>
<job_info xmlns:xsd="http://arc.liv.ac.uk/repos/darcs/sge/source/dist/util/resources/schemas/qstat/qstat.xsd">
  <queue_info>
    <job_list state="running">
      <JB_job_number>7100</JB_job_number>
      <JB_name>wf-task</JB_name>
      <state>r</state>
      <slots>1</slots>
      <tasks>1</tasks>
    </job_list>
  </queue_info>
  <job_info>
    <job_list state="pending">
      <JB_job_number>7100</JB_job_number>
      <state>qw</state>
      <tasks>3-5:1</tasks>
    </job_list>
    <job_list state="pending">
      <JB_job_number>7200</JB_job_number>
      <state>Eqw</state>
    </job_list>
    <job_list state="pending">
      <JB_job_number>9999</JB_job_number>
      <state>qw</state>
    </job_list>
  </job_info>
</job_info>
"""

RULE = "=" * 62 + "\n"
QACCT_TASK = (
    RULE
    + """\
qname        all.q
jobname      wf-task
jobnumber    7100
taskid       2
failed       0
exit_status  0
"""
)
QACCT_KILLED = (
    RULE
    + """\
qname        all.q
jobnumber    7300
taskid       undefined
failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit
exit_status  137
"""
)


def test_query_reads_qstat_then_qacct_for_finished_jobs(fake: FakeScheduler) -> None:
    fake.reply("qstat", QSTAT_XML)
    fake.reply("qacct", QACCT_TASK + QACCT_KILLED + QACCT_KILLED.replace("7300", "8000"))
    statuses = SGEExecutor(fake.runner(), user="alice").query(
        ["7100_0", "7100_1", "7100_2", "7200", "7300", "7400"]
    )
    assert fake.argv("qstat") == ["-xml", "-u", "alice"]
    view = {k: (s.state, s.exit_code) for k, s in statuses.items()}
    assert view["7100_0"] == (JobState.RUNNING, None)
    assert {view[f"7100_{i}"] for i in (2, 3, 4)} == {(JobState.PENDING, None)}
    assert view["7200"] == (JobState.FAILED, None)
    assert "error state 'Eqw'" in statuses["7200"].reason
    assert view["7300"] == (JobState.TIMEOUT, 137)
    assert view["7400"] == (JobState.UNKNOWN, None)
    assert "9999" not in statuses
    # task 2 of the still-listed array 7100 has finished: accounting knows it
    assert view["7100_1"] == (JobState.COMPLETED, 0)
    # one accounting call for every job qstat no longer lists (qacct -j takes one job)
    assert [c.argv for c in fake.calls("qacct")] == [["-o", "alice", "-d", "14", "-j"]]
    assert "8000" not in statuses  # a record of a job not asked about is left out


def test_a_single_finished_job_is_asked_of_qacct_by_its_id(fake: FakeScheduler) -> None:
    fake.reply("qstat", QSTAT_XML)
    fake.reply("qacct", {"stderr": "error: job id 7400 not found\n", "returncode": 1})
    statuses = SGEExecutor(fake.runner(), user="alice").query(["7400"])
    assert fake.argv("qacct") == ["-j", "7400"]
    assert statuses["7400"].state == JobState.UNKNOWN


def test_cancel_names_tasks_one_based(fake: FakeScheduler) -> None:
    fake.reply("qdel", {"stderr": 'denied: job "7100" does not exist\n', "returncode": 1})
    SGEExecutor(fake.runner(), user="alice").cancel(["7100_2", "7200"])
    assert fake.argv("qdel") == ["7100.3", "7200"]


def test_parallel_environment_and_memory_resource_are_configurable(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "1\n")
    config = {"sge_parallel_environment": "mpi", "sge_memory_resource": "mem_free",
              "commands": {"qsub": str(Path(__file__).parent / "fakebin" / "qsub")}}  # fmt: skip
    executor = get_executor("qsub-sge", config)
    assert isinstance(executor, SGEExecutor)
    executor.submit(make_job(tmp_path, cpus=2, mem="3G"))
    argv = fake.argv("qsub")
    assert argv[argv.index("-pe") : argv.index("-pe") + 5] == [
        "-pe", "mpi", "2", "-l", "h_rt=00:30:00,mem_free=1536M",
    ]  # fmt: skip
