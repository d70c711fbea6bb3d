"""The executor interface's value types, index translation and the array job wrapper.

The wrapper tests run the real ``/bin/sh`` with the environment a scheduler would give an
array element, so they prove what a job on any cluster would do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import make_job

from reflow.core.resources import format_memory, parse_duration, parse_memory
from reflow.errors import ExecutorError, OptionError
from reflow.executors.base import (
    INDEX_BASE_ENV,
    INDEX_VAR_ENV,
    JobResources,
    JobSpec,
    JobState,
    JobStatus,
    array_index_from_env,
)
from reflow.executors.lsf import LSFExecutor
from reflow.executors.scheduler import split_array
from reflow.executors.slurm import SlurmExecutor

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "mib"),
    [("4G", 4096), ("500M", 500), ("1.5G", 1536), ("16GB", 16384), ("2048", 2048),
     ("1T", 1024 * 1024), ("512k", 1), ("8gib", 8192)],
)  # fmt: skip
def test_memory_strings_parse_to_mebibytes(text: str, mib: int) -> None:
    assert parse_memory(text) == mib


def test_memory_formats_in_whole_gigabytes_when_it_can() -> None:
    assert [format_memory(m) for m in (4096, 1500, 1024 * 1024)] == ["4G", "1500M", "1024G"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("05:30", 330), ("02:00:00", 7200), ("1-00:00:00", 86400),
     ("2-12", 2 * 86400 + 12 * 3600), ("1-02:30", 86400 + 9000), ("48:00:00", 172800)],
)  # fmt: skip
def test_time_strings_parse_in_all_slurm_forms(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["4X", "", "G", "-1G", "0M"])
def test_bad_memory_is_a_one_line_error_with_an_example(bad: str) -> None:
    with pytest.raises(ValueError, match=r"memory .* e\.g\. '4G'"):
        parse_memory(bad)


def test_bad_time_is_rejected_when_resources_are_built() -> None:
    """As a ReflowError (SPEC §9: one hierarchy), which is also the ValueError it was."""
    with pytest.raises(OptionError, match="time '2 hours' is not understood"):
        JobResources(time="2 hours")
    with pytest.raises(OptionError, match="cpus=0 must be a whole number"):
        JobResources(cpus=0)


def test_queue_is_a_synonym_for_partition_and_options_pass_through() -> None:
    res = JobResources.from_options(
        cpus=4, mem="16G", queue="gpu", account="proj", qos="long", exclusive=True,
        constraint=None, submit_options="--exclusive --comment 'a b'",
    )  # fmt: skip
    assert res.partition == "gpu"
    assert res.account == "proj"
    assert res.options == {"qos": "long", "exclusive": True}
    assert res.submit_options == ("--exclusive", "--comment", "a b")


def test_partition_and_queue_that_disagree_are_refused() -> None:
    with pytest.raises(ValueError, match="partition='a' and queue='b' disagree"):
        JobResources.from_options(partition="a", queue="b")


def test_reserved_names_cannot_hide_in_options() -> None:
    with pytest.raises(ValueError, match="'queue' must be given as its own field"):
        JobResources(options={"queue": "gpu"})


def test_scaling_escalates_memory_and_time_within_caps() -> None:
    res = JobResources(mem="4G", time="02:00:00", cpus=2)
    once = res.scaled({"mem": 2.0, "time": 1.5}, {"mem": "12G", "time": "1-00:00:00"})
    assert (once.mem, once.time, once.cpus) == ("8G", "03:00:00", 2)
    twice = once.scaled({"mem": 2.0, "time": 1.5}, {"mem": "12G", "time": "1-00:00:00"})
    assert (twice.mem, twice.time) == ("12G", "04:30:00")
    assert twice.scaled({"time": 10}, {"time": "1-00:00:00"}).time == "24:00:00"


def test_scaling_never_shrinks_a_request_below_a_lower_cap() -> None:
    res = JobResources(mem="32G")
    assert res.scaled({"mem": 2.0}, {"mem": "16G"}).mem == "32G"


def test_scaling_an_unknown_resource_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot scale resource 'gpus'"):
        JobResources().scaled({"gpus": 2.0})


def test_array_indices_are_sorted_and_duplicates_refused(tmp_path: Path) -> None:
    assert make_job(tmp_path, indices=(9, 0, 4)).array_indices == (0, 4, 9)
    with pytest.raises(ValueError, match="lists an index more than once"):
        make_job(tmp_path, indices=(1, 1))
    with pytest.raises(ValueError, match="has no indices"):
        make_job(tmp_path, indices=())


def test_array_log_paths_need_the_index_placeholder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"needs \{index\} in the file name"):
        JobSpec("a", ("true",), JobResources(), tmp_path, tmp_path / "out", tmp_path / "err",
                array_indices=(0,))  # fmt: skip
    with pytest.raises(ValueError, match="not an array"):
        JobSpec("a", ("true",), JobResources(), tmp_path, tmp_path / "o-{index}", tmp_path / "e")


def test_job_status_knows_terminal_states() -> None:
    assert JobStatus("1", JobState.TIMEOUT, 0, "TIMEOUT").terminal
    assert not JobStatus("1", JobState.UNKNOWN, None, "").terminal


@pytest.mark.parametrize(
    ("env", "index"),
    [
        ({}, None),
        ({INDEX_VAR_ENV: "SLURM_ARRAY_TASK_ID", INDEX_BASE_ENV: "0",
          "SLURM_ARRAY_TASK_ID": "7"}, 7),
        ({INDEX_VAR_ENV: "LSB_JOBINDEX", INDEX_BASE_ENV: "1", "LSB_JOBINDEX": "8"}, 7),
        ({INDEX_VAR_ENV: "SLURM_ARRAY_TASK_ID", INDEX_BASE_ENV: "-1000",
          "SLURM_ARRAY_TASK_ID": "5"}, 1005),
    ],
)  # fmt: skip
def test_worker_reads_its_zero_based_index(env: dict[str, str], index: int | None) -> None:
    assert array_index_from_env(env) == index


def test_missing_scheduler_index_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ExecutorError, match="names SGE_TASK_ID, but SGE_TASK_ID is not set"):
        array_index_from_env({INDEX_VAR_ENV: "SGE_TASK_ID", INDEX_BASE_ENV: "1"})


def test_split_keeps_low_indices_natural_and_shifts_the_rest(tmp_path: Path) -> None:
    job = make_job(tmp_path, indices=(0, 5, 999, 1000, 1500, 2000, 2999, 3000))
    parts = [p.array_indices for p in split_array(job, 1000, contiguous=False)]
    assert parts == [(0, 5, 999), (1000, 1500), (2000, 2999), (3000,)]


def test_split_cuts_at_gaps_for_range_only_schedulers(tmp_path: Path) -> None:
    job = make_job(tmp_path, indices=(0, 1, 2, 5, 7, 8))
    parts = [p.array_indices for p in split_array(job, None, contiguous=True)]
    assert parts == [(0, 1, 2), (5,), (7, 8)]


def _run_element(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # argv starts with /usr/bin/env VAR=... : run it as the scheduler would
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip


def _index_printing_job(tmp_path: Path, indices: tuple[int, ...]) -> JobSpec:
    code = (
        "import sys; from reflow.executors.base import array_index_from_env as f; "
        "i = f(); print('element', i); print('err', i, file=sys.stderr); sys.exit(i % 2)"
    )
    return JobSpec(
        name="wf-echo",
        command=(sys.executable, "-c", code),
        resources=JobResources(),
        workdir=tmp_path,
        stdout=Path("logs/echo-{index}.out"),
        stderr=Path("logs/echo-{index}.err"),
        array_indices=indices,
        env={"PYTHONPATH": str(REPO)},
    )


def test_wrapper_writes_each_element_to_its_reflow_index_files(tmp_path: Path) -> None:
    """A 1-based scheduler (LSF) starts element 4 as LSB_JOBINDEX=5."""
    job = _index_printing_job(tmp_path, (4, 5))
    (tmp_path / "logs").mkdir()
    argv = LSFExecutor().job_argv(job, offset=0)
    for scheduler_index, index in ((5, 4), (6, 5)):
        proc = _run_element(argv, {"LSB_JOBINDEX": str(scheduler_index)})
        assert proc.returncode == index % 2, proc.stderr
        assert (tmp_path / f"logs/echo-{index}.out").read_text() == f"element {index}\n"
        assert (tmp_path / f"logs/echo-{index}.err").read_text() == f"err {index}\n"


def test_wrapper_translates_a_shifted_part_and_appends(tmp_path: Path) -> None:
    """A part shifted past a size limit runs reflow element 1003 as scheduler index 3."""
    job = _index_printing_job(tmp_path, (1003,))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/echo-1003.out").write_text("earlier attempt\n")
    argv = SlurmExecutor(max_array_size=10).job_argv(job, offset=1000)
    proc = _run_element(argv, {"SLURM_ARRAY_TASK_ID": "3"})
    assert proc.returncode == 1
    assert (tmp_path / "logs/echo-1003.out").read_text() == "earlier attempt\nelement 1003\n"


def test_wrapper_passes_arguments_through_untouched(tmp_path: Path) -> None:
    """Quotes, spaces, globs and $ in arguments are data, never shell text."""
    weird = ["a b", "'q'", '"dq"', "$HOME", "*", "{x}", "; rm -rf /"]
    job = JobSpec(
        name="wf-args", command=(sys.executable, "-c", "import sys; print(sys.argv[1:])", *weird),
        resources=JobResources(), workdir=tmp_path, stdout=Path("a-{index}.out"),
        stderr=Path("a-{index}.err"), array_indices=(0,),
    )  # fmt: skip
    proc = _run_element(SlurmExecutor(max_array_size=10).job_argv(job, 0),
                        {"SLURM_ARRAY_TASK_ID": "0"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a-0.out").read_text() == f"{weird}\n"
