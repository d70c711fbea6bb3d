"""Flux adapter against the recording fake binaries (``fakebin/``): Flux cannot run on the test
machine, so these pin the exact ``flux submit`` argv (``--cc`` copies for arrays) and how
the per-element Flux ids are kept and mapped back from canned ``flux jobs`` output."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import FakeScheduler, make_job, wrapper_tail

from reflow.errors import ExecutorError
from reflow.executors.base import JobResources, JobSpec, JobState
from reflow.executors.flux import FluxExecutor, flux_id_value

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def f58(value: int, prefix: str = "ƒ") -> str:
    digits = ""
    while True:
        value, rest = divmod(value, 58)
        digits = ALPHABET[rest] + digits
        if value == 0:
            return prefix + digits


def test_flux_ids_decode_from_every_printed_form() -> None:
    assert flux_id_value(f58(123456789)) == 123456789
    assert flux_id_value(f58(123456789, "f")) == 123456789
    assert flux_id_value("123456789") == 123456789
    assert flux_id_value("0x75bcd15") == 123456789
    with pytest.raises(ValueError, match="not a Flux job id"):
        flux_id_value("ƒ0OIl")


def test_singleton_argv(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("flux-submit", f58(5000) + "\n")
    job = make_job(tmp_path, cpus=4, time="02:00:00", queue="batch", account="proj",
                   exclusive=True, nodes=1, after=(f58(4000),))  # fmt: skip
    assert FluxExecutor(fake.runner()).submit(job) == f58(5000)
    assert fake.argv("flux") == [
        "submit", "--job-name=wf-task", f"--cwd={tmp_path}",
        f"--output={tmp_path}/logs/wf-task.out", f"--error={tmp_path}/logs/wf-task.err",
        "--cores-per-task=4", "--time-limit=7200s", "--queue=batch",
        "--setattr=system.bank=proj", "--exclusive", "--nodes=1",
        f"--dependency=afterany:{f58(4000)}",
        "/usr/bin/python3", "-m", "reflow.engine.worker", "payload",
    ]  # fmt: skip


def test_array_is_cc_copies_whose_ids_are_kept_in_index_order(
    fake: FakeScheduler, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f58(9000 + n) for n in range(4)]
    fake.reply("flux-submit", "\n".join([ids[2], ids[0], ids[3], ids[1]]) + "\n")  # out of order
    executor = FluxExecutor(fake.runner())
    with caplog.at_level(logging.WARNING, logger="reflow.executors.flux"):
        job_id = executor.submit(make_job(tmp_path, indices=(0, 1, 2, 5), parallelism=2))
    assert "no array throttle" in caplog.text
    assert job_id == f"0-2,5={','.join(ids)}"
    assert [executor.array_element_id(job_id, i) for i in (0, 1, 2, 5)] == ids
    argv = fake.argv("flux")
    assert argv[3] == f"--output={tmp_path}/logs/wf-task-{{{{id}}}}.sched.out"
    assert "--error" not in " ".join(argv)
    cc = argv.index("--cc=1-3,6")
    assert argv[cc + 1 :] == [
        "/usr/bin/env", "REFLOW_ARRAY_INDEX_BASE=1", "REFLOW_ARRAY_INDEX_VAR=FLUX_JOB_CC",
        *wrapper_tail(tmp_path, "wf-task"),
    ]  # fmt: skip


def test_braces_in_an_array_command_are_refused(fake: FakeScheduler, tmp_path: Path) -> None:
    """``--cc`` formats the command; newer flux-core keeps ``{{x}}`` as a template, older
    turns it into ``{x}``, so no escape works everywhere: refuse instead of mangling."""
    job = JobSpec("wf-json", ("/usr/bin/python3", "-c", 'print({"a": 1})'), JobResources(),
                  tmp_path, Path("o-{index}"), Path("e-{index}"), array_indices=(0,))  # fmt: skip
    with pytest.raises(ExecutorError, match=r"formats its command.*without '\{' or '\}'"):
        FluxExecutor(fake.runner()).submit(job)
    assert fake.calls("flux") == []


def test_a_log_path_with_a_brace_is_refused(fake: FakeScheduler, tmp_path: Path) -> None:
    run_dir = tmp_path / "exp{1}"
    with pytest.raises(ExecutorError, match=r"contains '\{', which flux replaces"):
        FluxExecutor(fake.runner()).submit(make_job(run_dir))


def test_a_driver_job_with_one_log_sends_stderr_with_stdout(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    fake.reply("flux-submit", f58(2) + "\n")
    job = make_job(tmp_path, name="wf-driver")
    FluxExecutor(fake.runner()).submit(replace(job, stderr=job.stdout))
    argv = fake.argv("flux")
    assert f"--output={tmp_path}/logs/wf-driver.out" in argv
    assert not any(a.startswith("--error") for a in argv)


def test_a_short_id_list_is_an_error_naming_the_strays(fake: FakeScheduler, tmp_path: Path) -> None:
    fake.reply("flux-submit", f58(1) + "\n")
    with pytest.raises(ExecutorError, match=r"printed 1 job ids for the 2 elements.*flux cancel"):
        FluxExecutor(fake.runner()).submit(make_job(tmp_path, indices=(0, 1)))


def test_dependencies_and_cancel_expand_arrays_to_their_elements(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    array = f"0-1={f58(10)},{f58(11)}"
    fake.reply("flux-submit", f58(12) + "\n")
    executor = FluxExecutor(fake.runner())
    executor.submit(make_job(tmp_path, after=(array,)))
    deps = [a for a in fake.calls("flux")[0].argv if a.startswith("--dependency")]
    assert deps == [f"--dependency=afterany:{f58(10)}", f"--dependency=afterany:{f58(11)}"]
    executor.cancel([array, f58(12)])
    assert fake.calls("flux")[1].argv == ["cancel", f58(10), f58(11), f58(12)]


def test_query_maps_rows_back_to_the_ids_asked(fake: FakeScheduler) -> None:
    a, b, c, d, e, lost = (f58(100 + n) for n in range(6))
    rows = [
        f"{a}|INACTIVE|COMPLETED|0||",
        f"{b}|INACTIVE|FAILED|3||",
        f"{c}|INACTIVE|TIMEOUT|143|timeout|resource allocation expired",
        f"{d}|RUN|||",
        f"{e.replace('ƒ', 'f')}|INACTIVE|CANCELED|143|cancel|",  # ascii f58 is the same job
        "",
    ]
    fake.reply("flux-jobs", "\n".join(r + "|" if r.count("|") == 4 else r for r in rows))
    array = f"0-2={a},{b},{c}"
    statuses = FluxExecutor(fake.runner()).query([array, d, e, lost])
    assert fake.argv("flux")[:5] == ["jobs", "-a", "--no-header", "-o",
                                     "{id}|{state}|{result}|{returncode}|{exception.type}|"
                                     "{exception.note}"]  # fmt: skip
    assert {k: (s.state, s.exit_code) for k, s in statuses.items()} == {
        a: (JobState.COMPLETED, 0),
        b: (JobState.FAILED, 3),
        c: (JobState.TIMEOUT, 143),
        d: (JobState.RUNNING, None),
        e: (JobState.CANCELLED, 143),
        lost: (JobState.UNKNOWN, None),
    }
    assert statuses[c].reason == "timeout: resource allocation expired"
