"""LSF adapter against the recording fake binaries (``fakebin/``): LSF cannot run on the test
machine, so these pin the exact ``bsub`` argv (1-based array indices, ``ended()``
dependencies) and the parsing of canned ``bjobs -json`` output back to reflow's indices."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from fakes import FakeScheduler, make_job, wrapper_tail

from reflow.executors.base import JobState
from reflow.executors.lsf import LSFExecutor


def test_singleton_argv(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("bsub", "Job <5151> is submitted to queue <normal>.\n")
    job = make_job(tmp_path, cpus=4, mem="16G", time="02:00:30", partition="normal",
                   account="proj", app="fluent", x=True, after=("5000", "5001_2"))  # fmt: skip
    assert LSFExecutor(fake.runner()).submit(job) == "5151"
    assert fake.argv("bsub") == [
        "-J", "wf-task", "-cwd", str(tmp_path),
        "-o", f"{tmp_path}/logs/wf-task.out", "-e", f"{tmp_path}/logs/wf-task.err",
        "-n", "4", "-R", "rusage[mem=16384MB] span[hosts=1]", "-M", "16384MB", "-W", "2:01",
        "-q", "normal", "-P", "proj", "-app", "fluent", "-x",
        "-w", "ended(5000) && ended(5001[3])",
        "/usr/bin/python3 -m reflow.engine.worker payload",
    ]  # fmt: skip


def test_array_indices_are_one_based_with_throttle(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("bsub", "Job <6000> is submitted to default queue <normal>.\n")
    executor = LSFExecutor(fake.runner())
    job_id = executor.submit(make_job(tmp_path, indices=(0, 1, 2, 5), parallelism=2))
    assert job_id == "6000"
    argv = fake.argv("bsub")
    assert argv[:2] == ["-J", "wf-task[1-3,6]%2"]
    assert argv[argv.index("-o") + 1] == f"{tmp_path}/logs/wf-task-%J_%I.sched.out"
    assert "-e" not in argv
    assert shlex.split(argv[-1]) == [
        "/usr/bin/env", "REFLOW_ARRAY_INDEX_BASE=1", "REFLOW_ARRAY_INDEX_VAR=LSB_JOBINDEX",
        *wrapper_tail(tmp_path, "wf-task"),
    ]  # fmt: skip


def test_indices_past_max_job_array_size_are_shifted(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("bsub", "Job <1> is submitted.\n", "Job <2> is submitted.\n")
    executor = LSFExecutor(fake.runner())  # MAX_JOB_ARRAY_SIZE 1000: indices 1..1000
    parts = executor.submit_many(make_job(tmp_path, indices=(998, 999, 1000, 1500)))
    assert [(jid, p.array_indices) for jid, p in parts] == [
        ("1", (998, 999)),
        ("2@1000", (1000, 1500)),
    ]
    names = [c.argv[1] for c in fake.calls("bsub")]
    assert names == ["wf-task[999-1000]", "wf-task[1,501]"]
    assert "REFLOW_ARRAY_INDEX_BASE=-999" in shlex.split(fake.calls("bsub")[1].argv[-1])


BJOBS = {
    "COMMAND": "bjobs",
    "JOBS": 9,
    "RECORDS": [
        {"JOBID": "6000", "JOBINDEX": "1", "STAT": "DONE", "EXIT_CODE": "", "EXIT_REASON": ""},
        {"JOBID": "6000", "JOBINDEX": "2", "STAT": "EXIT", "EXIT_CODE": "2", "EXIT_REASON": ""},
        {"JOBID": "6000", "JOBINDEX": "3", "STAT": "EXIT", "EXIT_CODE": "140",
         "EXIT_REASON": "TERM_RUNLIMIT: job killed after reaching LSF run time limit"},
        {"JOBID": "6000", "JOBINDEX": "6", "STAT": "EXIT", "EXIT_CODE": "",
         "EXIT_REASON": "TERM_MEMLIMIT: job killed after reaching LSF memory usage limit"},
        {"JOBID": "6000", "JOBINDEX": "7", "STAT": "EXIT", "EXIT_CODE": "130",
         "EXIT_REASON": "TERM_OWNER: job killed by owner"},
        {"JOBID": "6000", "JOBINDEX": "8", "STAT": "PEND", "PEND_REASON": "Job dependency"},
        {"JOBID": "6000", "JOBINDEX": "9", "STAT": "RUN"},
        {"JOBID": "6001", "JOBINDEX": "0", "STAT": "RUN", "EXIT_CODE": "", "EXIT_REASON": ""},
        {"JOBID": "6002", "ERROR": "Job <6002> is not found"},
    ],
}  # fmt: skip


def test_query_maps_one_based_elements_back(fake: FakeScheduler) -> None:
    fake.reply("bjobs", {"stdout": json.dumps(BJOBS), "returncode": 255})
    statuses = LSFExecutor(fake.runner()).query(["6000", "6001", "6002"])
    assert fake.argv("bjobs") == [
        "-a", "-json", "-o", "jobid jobindex stat exit_code exit_reason pend_reason",
        "6000", "6001", "6002",
    ]  # fmt: skip
    assert {k: (s.state, s.exit_code) for k, s in statuses.items()} == {
        "6000_0": (JobState.COMPLETED, 0),
        "6000_1": (JobState.FAILED, 2),
        "6000_2": (JobState.TIMEOUT, 140),
        "6000_5": (JobState.OUT_OF_MEMORY, None),
        "6000_6": (JobState.CANCELLED, 130),
        "6000_7": (JobState.PENDING, None),
        "6000_8": (JobState.RUNNING, None),
        "6001": (JobState.RUNNING, None),
        "6002": (JobState.UNKNOWN, None),
    }
    assert statuses["6000_7"].reason == "Job dependency"


def test_cancel_names_elements_one_based(fake: FakeScheduler) -> None:
    fake.reply("bkill", {"stderr": "Job <6000[3]>: Job has already finished\n", "returncode": 255})
    LSFExecutor(fake.runner()).cancel(["6000_2", "2@1000_1500"])
    assert fake.argv("bkill") == ["6000[3]", "2[501]"]


def test_a_job_after_the_first_of_several_ends_uses_or(fake: FakeScheduler,
                                                        tmp_path: Path) -> None:
    from dataclasses import replace

    fake.reply("bsub", "Job <7> is submitted.\n")
    job = replace(make_job(tmp_path, after=("5000", "5001_2")), after_first=True)
    LSFExecutor(fake.runner()).submit(job)
    argv = fake.argv("bsub")
    assert argv[argv.index("-w") + 1] == "ended(5000) || ended(5001[3])"
