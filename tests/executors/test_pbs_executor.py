"""PBS Pro and Torque adapters against the recording fake binaries (``fakebin/``): PBS cannot
run on the test machine, so these pin the exact argv and the parsing of canned ``qstat -f``
output (0-based subjob indices, Exit_status codes for time and memory kills)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fakes import FakeScheduler, make_job, wrapper_tail

from reflow.errors import ConfigError, ExecutorError
from reflow.executors import get_executor
from reflow.executors.base import JobState
from reflow.executors.pbs import PBSExecutor, TorqueExecutor, parse_qstat_full
from reflow.executors.scheduler import CD_WRAPPER

PYTHON = ["/usr/bin/python3", "-m", "reflow.engine.worker", "payload"]


def test_pro_singleton_argv(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("qsub", "123.pbs01\n")
    job = make_job(tmp_path, cpus=4, mem="16G", time="1-02:00:00", queue="gpu", account="proj",
                   ngpus=1, m="abe", place="scatter", after=("120.pbs01",))  # fmt: skip
    assert PBSExecutor(fake.runner()).submit(job) == "123.pbs01"
    assert fake.argv("qsub") == [
        "-N", "wf-task", "-V",
        "-o", f"{tmp_path}/logs/wf-task.out", "-e", f"{tmp_path}/logs/wf-task.err",
        "-l", "select=1:ncpus=4:mem=16gb:ngpus=1", "-l", "walltime=26:00:00",
        "-q", "gpu", "-A", "proj", "-m", "abe", "-l", "place=scatter",
        "-W", "depend=afterany:120.pbs01",
        "--", "/bin/sh", "-c", CD_WRAPPER, "reflow-job", str(tmp_path), *PYTHON,
    ]  # fmt: skip


@pytest.mark.parametrize("executor", [PBSExecutor, TorqueExecutor])
def test_a_driver_job_with_one_log_joins_its_streams(
    fake: FakeScheduler, tmp_path: Path, executor: type[PBSExecutor]
) -> None:
    """PBS copies stdout and stderr back separately: given one file for both, one copy
    would overwrite the other (the driver logs to stderr)."""
    fake.reply("qsub", "124.pbs01\n")
    job = make_job(tmp_path, name="wf-driver")
    executor(fake.runner()).submit(replace(job, stderr=job.stdout))
    argv = fake.argv("qsub")
    assert argv[3:7] == ["-j", "oe", "-o", f"{tmp_path}/logs/wf-driver.out"]
    assert "-e" not in argv


def test_pro_array_is_one_range_with_a_throttle_attribute(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "200[].pbs01\n")
    executor = PBSExecutor(fake.runner())
    job_id = executor.submit(make_job(tmp_path, indices=(3, 4, 5), parallelism=2, mem="500M"))
    assert job_id == "200[].pbs01"
    argv = fake.argv("qsub")
    assert argv[:6] == ["-N", "wf-task", "-V", "-j", "oe", "-o"]
    assert argv[6] == f"{tmp_path}/logs/"
    assert argv[argv.index("-J") + 1] == "3-5"
    assert argv[argv.index("-J") + 2 : argv.index("--")] == ["-W", "max_run_subjobs=2"]
    assert argv[argv.index("--") + 1 :] == [
        "/usr/bin/env", "REFLOW_ARRAY_INDEX_BASE=0", "REFLOW_ARRAY_INDEX_VAR=PBS_ARRAY_INDEX",
        *wrapper_tail(tmp_path, "wf-task"),
    ]  # fmt: skip
    assert "select=1:ncpus=1:mem=500mb" in argv
    assert executor.array_element_id(job_id, 4) == "200[].pbs01_4"


def test_pro_sparse_array_becomes_one_submission_per_run(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "300[].pbs01\n", "301[].pbs01\n")
    executor = PBSExecutor(fake.runner())
    job = make_job(tmp_path, indices=(0, 1, 2, 7))
    with pytest.raises(
        ExecutorError, match=r"needs 2 pbs submissions \(its indices are not contiguous"
    ):
        executor.submit(job)
    ids = [jid for jid, _ in executor.submit_many(job)]
    assert ids == ["300[].pbs01", "301[].pbs01"]
    ranges = [c.argv[c.argv.index("-J") + 1] for c in fake.calls("qsub")]
    assert ranges == ["0-2", "7-8:2"]  # PBS Pro refuses a one-index range "7-7"


def test_pro_dependencies_are_on_whole_arrays(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("qsub", "9.pbs01\n")
    PBSExecutor(fake.runner()).submit(make_job(tmp_path, after=("200[].pbs01", "201[].pbs01_3")))
    argv = fake.argv("qsub")
    assert argv[argv.index("-W") + 1] == "depend=afterany:200[].pbs01:201[].pbs01"


QSTAT_PRO = """\
Job Id: 200[].pbs01
    Job_Name = wf-task
    job_state = B
    array = True

Job Id: 200[3].pbs01
    Job_Name = wf-task
    job_state = F
    Exit_status = 0
    Variable_List = PBS_O_HOME=/home/alice,PBS_O_PATH=/usr/bin:/bin,
\tREFLOW_X=1

Job Id: 200[4].pbs01
    job_state = X
    Exit_status = -29

Job Id: 200[5].pbs01
    job_state = R

Job Id: 200[6].pbs01
    job_state = F
    Exit_status = 265

Job Id: 200[7].pbs01
    job_state = F
    Exit_status = -27

Job Id: 210.pbs01
    job_state = Q
    comment = Not Running: Insufficient amount of resource: ncpus

Job Id: 211.pbs01
    job_state = F

Job Id: 212.pbs01
    job_state = F
    Exit_status = 2
"""


def test_pro_query_parses_subjobs_and_exit_codes(fake: FakeScheduler) -> None:
    fake.reply("qstat", {"stdout": QSTAT_PRO, "stderr": "qstat: Unknown Job Id 213.pbs01\n",
                         "returncode": 153})  # fmt: skip
    statuses = PBSExecutor(fake.runner()).query(
        ["200[].pbs01", "210.pbs01", "211.pbs01", "212.pbs01", "213.pbs01"]
    )
    assert fake.argv("qstat") == [
        "-f", "-x", "-t", "200[].pbs01", "210.pbs01", "211.pbs01", "212.pbs01", "213.pbs01",
    ]  # fmt: skip
    view = {k: (s.state, s.exit_code) for k, s in statuses.items()}
    assert view == {
        "200[].pbs01_3": (JobState.COMPLETED, 0),
        "200[].pbs01_4": (JobState.TIMEOUT, -29),
        "200[].pbs01_5": (JobState.RUNNING, None),
        "200[].pbs01_6": (JobState.FAILED, 137),
        "200[].pbs01_7": (JobState.OUT_OF_MEMORY, -27),
        "210.pbs01": (JobState.PENDING, None),
        "211.pbs01": (JobState.CANCELLED, None),
        "212.pbs01": (JobState.FAILED, 2),
        "213.pbs01": (JobState.UNKNOWN, None),
    }
    assert statuses["210.pbs01"].reason.startswith("Not Running: Insufficient")


def test_qstat_continuation_lines_are_joined() -> None:
    jobs = parse_qstat_full(QSTAT_PRO)
    assert jobs["200[3].pbs01"]["variable_list"].endswith("/usr/bin:/bin,REFLOW_X=1")


def test_a_failing_qstat_is_an_error(fake: FakeScheduler) -> None:
    fake.reply("qstat", {"stderr": "qstat: Bad UID for job execution\n", "returncode": 1})
    with pytest.raises(ExecutorError, match="qstat could not report jobs: qstat: Bad UID"):
        PBSExecutor(fake.runner()).query(["1.pbs01"])


def test_cancel_names_subjobs_and_ignores_finished_jobs(fake: FakeScheduler) -> None:
    fake.reply("qdel", {"stderr": "qdel: Job has finished 200[3].pbs01\n", "returncode": 35})
    PBSExecutor(fake.runner()).cancel(["200[].pbs01_3", "210.pbs01"])
    assert fake.argv("qdel") == ["200[3].pbs01", "210.pbs01"]


def test_torque_array_takes_lists_throttle_and_stdin_script(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("qsub", "400[].torque01\n")
    job = make_job(tmp_path, indices=(0, 1, 2, 7), parallelism=3, cpus=2, mem="8G",
                   after=("300[].torque01", "301.torque01"))  # fmt: skip
    assert TorqueExecutor(fake.runner()).submit(job) == "400[].torque01"
    call = fake.calls("qsub")[0]
    assert call.argv == [
        "-N", "wf-task", "-V", "-j", "oe", "-o", f"{tmp_path}/logs/",
        "-d", str(tmp_path), "-l", "nodes=1:ppn=2,mem=8gb,walltime=00:30:00",
        "-W", "depend=afteranyarray:300[].torque01,afterany:301.torque01",
        "-t", "0-2,7%3",
    ]  # fmt: skip
    assert call.stdin.startswith("#!/bin/sh\nexec /usr/bin/env REFLOW_ARRAY_INDEX_BASE=0 "
                                 "REFLOW_ARRAY_INDEX_VAR=PBS_ARRAYID /bin/sh -c ")  # fmt: skip


QSTAT_TORQUE = """\
Job Id: 400[0].torque01
    job_state = C
    exit_status = 0

Job Id: 400[1].torque01
    job_state = C
    exit_status = 271

Job Id: 400[2].torque01
    job_state = H
"""


def test_torque_query_uses_plain_qstat(fake: FakeScheduler) -> None:
    fake.reply("qstat", QSTAT_TORQUE)
    statuses = TorqueExecutor(fake.runner()).query(["400[].torque01"])
    assert fake.argv("qstat") == ["-f", "-t", "400[].torque01"]
    assert {k: (s.state, s.exit_code) for k, s in statuses.items()} == {
        "400[].torque01_0": (JobState.COMPLETED, 0),
        "400[].torque01_1": (JobState.FAILED, 143),
        "400[].torque01_2": (JobState.PENDING, None),
    }


@pytest.mark.parametrize(
    ("version", "cls"),
    [("pbs_version = 2022.1.1\n", PBSExecutor), ("Version: 6.1.3\n", TorqueExecutor)],
)
def test_pbs_flavour_is_detected_from_qstat_version(
    fake: FakeScheduler, version: str, cls: type[PBSExecutor]
) -> None:
    fake.reply("qstat", version)
    from fakes import FAKEBIN, TOOLS

    executor = get_executor("pbs", {"commands": {t: str(FAKEBIN / t) for t in TOOLS}})
    assert type(executor) is cls
    assert fake.argv("qstat") == ["--version"]


def test_configured_pbs_flavour_skips_detection(fake: FakeScheduler) -> None:
    assert type(get_executor("qsub-pbs", {"pbs_flavor": "torque"})) is TorqueExecutor
    with pytest.raises(ConfigError, match="pbs_flavor = 'openpbs' is not known"):
        get_executor("pbs", {"pbs_flavor": "openpbs"})
