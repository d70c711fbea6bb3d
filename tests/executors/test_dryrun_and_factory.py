"""The dry-run executor, ``get_executor`` and ``detect_executor_name``.

Detection runs against directories holding the recording fake binaries (no scheduler is
installed that could be detected by accident), and the dry run is checked to run nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FAKEBIN, TOOLS, FakeScheduler, make_job

from reflow.errors import ConfigError, ExecutorError
from reflow.executors import detect_executor_name, get_executor
from reflow.executors.base import JobState
from reflow.executors.dryrun import DryRunExecutor
from reflow.executors.flux import FluxExecutor
from reflow.executors.lsf import LSFExecutor
from reflow.executors.pbs import TorqueExecutor
from reflow.executors.sge import SGEExecutor
from reflow.executors.slurm import SlurmExecutor

FAKE_PATHS = {tool: str(FAKEBIN / tool) for tool in TOOLS}


def test_dry_run_logs_the_slurm_commands_and_runs_nothing(
    fake: FakeScheduler, tmp_path: Path
) -> None:
    log = tmp_path / "dry.log"
    executor = get_executor("dry-run", {"commands": FAKE_PATHS, "dry_run_log": str(log)})
    assert isinstance(executor, DryRunExecutor)
    first = executor.submit(make_job(tmp_path, indices=(0, 1, 5), parallelism=2))
    second = executor.submit(make_job(tmp_path, name="wf-after", after=(first,)))
    executor.cancel([second])
    assert (first, second) == ("dry-1", "dry-2")
    assert fake.calls() == []  # no scheduler command ran, not even scontrol
    assert not (tmp_path / "logs").exists()
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    assert shlex.split(lines[0])[:2] == ["sbatch", "--parsable"]
    assert "0-1,5%2" in shlex.split(lines[0])
    assert "afterany:dry-1" in shlex.split(lines[1])
    assert lines[2] == "scancel dry-2"
    assert [str(c) for c in executor.commands] == lines
    status = executor.query([first, second])[second]
    assert (status.state, status.raw_state) == (JobState.PENDING, "DRY-RUN")


def test_dry_run_renders_for_another_scheduler(fake: FakeScheduler, tmp_path: Path) -> None:
    executor = get_executor("dryrun", {"dry_run_target": "lsf", "commands": FAKE_PATHS})
    assert isinstance(executor, DryRunExecutor)
    executor.submit(make_job(tmp_path, indices=(0, 2)))
    assert executor.commands[0].argv[:3] == ("bsub", "-J", "wf-task[1,3]")
    assert fake.calls() == []


def test_dry_run_target_must_be_a_scheduler() -> None:
    with pytest.raises(ExecutorError, match="dry_run_target = 'local' is not a cluster"):
        get_executor("dry-run", {"dry_run_target": "local"})


@pytest.mark.parametrize(
    ("name", "cls"),
    [("slurm", SlurmExecutor), ("sbatch", SlurmExecutor), ("LSF", LSFExecutor),
     ("bsub", LSFExecutor), ("qsub-sge", SGEExecutor), ("sge", SGEExecutor),
     ("flux", FluxExecutor), ("torque", TorqueExecutor)],
)  # fmt: skip
def test_executors_by_name_and_mode_spelling(name: str, cls: type) -> None:
    assert type(get_executor(name)) is cls


def test_local_executor_comes_from_the_factory_too() -> None:
    executor = get_executor("local", {"max_workers": 3})
    assert executor.name == "local"


def test_configured_command_paths_and_limits_reach_the_adapter() -> None:
    executor = get_executor("slurm", {"commands": {"sbatch": "/opt/slurm/bin/sbatch"},
                                      "max_array_size": 50, "submit_retries": 2})  # fmt: skip
    assert isinstance(executor, SlurmExecutor)
    assert executor.runner.paths == {"sbatch": "/opt/slurm/bin/sbatch"}
    assert executor.max_array_size() == 50
    assert executor.runner.retry.attempts == 2


def test_unknown_executor_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown executor 'slurmm'\. Did you mean 'slurm'\?"):
        get_executor("slurmm")


def _bin(tmp_path: Path, *tools: str) -> str:
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in tools:
        (directory / tool).symlink_to(FAKEBIN / tool)
    return str(directory)


@pytest.mark.parametrize(
    ("tools", "name"),
    [(("sbatch", "qsub", "bsub"), "slurm"), (("bsub", "flux"), "lsf"), (("flux",), "flux"),
     ((), "local"), (("qsub",), "pbs")],
)  # fmt: skip
def test_detection_follows_the_submit_command_on_path(
    fake: FakeScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    tools: tuple[str, ...], name: str,
) -> None:  # fmt: skip
    monkeypatch.delenv("SGE_ROOT", raising=False)
    assert detect_executor_name(_bin(tmp_path, *tools)) == name


def test_grid_engine_qsub_is_told_apart_by_its_banner(
    fake: FakeScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SGE_ROOT", raising=False)
    fake.reply("qsub", "SGE 8.1.9\nusage: qsub [options]\n")
    assert detect_executor_name(_bin(tmp_path, "qsub")) == "sge"
    assert fake.calls("qsub")[0].argv == ["-help"]


def test_sge_root_marks_grid_engine_without_running_qsub(
    fake: FakeScheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SGE_ROOT", "/opt/sge")
    assert detect_executor_name(_bin(tmp_path, "qsub")) == "sge"
    assert fake.calls() == []


def test_workers_import_no_adapter_and_no_heavy_module() -> None:
    code = "import json, sys; import reflow.executors.base; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    modules = set(json.loads(out.stdout))
    heavy = {
        "subprocess", "sqlalchemy", "typer", "rich", "networkx", "textual",
        "reflow.executors.slurm", "reflow.executors.scheduler", "reflow.executors.commands",
    }  # fmt: skip
    assert modules & heavy == set()


@pytest.mark.parametrize(("adapter", "folder", "placeholder"), [
    (LSFExecutor, "run-%J", "%J"),
    (SGEExecutor, "run-$JOB_ID", "$JOB_ID"),
    (FluxExecutor, "run-{{id}}", "{"),
    (FluxExecutor, "run-{x}", "{"),
])
def test_a_run_dir_the_scheduler_would_rewrite_is_refused_before_submitting(
    fake: FakeScheduler, tmp_path: Path, adapter: type, folder: str, placeholder: str
) -> None:
    """These schedulers replace such text in log paths and offer no escape (Slurm's %% does)."""
    workdir = tmp_path / folder
    expected = rf"contains '{re.escape(placeholder)}'.*choose a run dir"
    with pytest.raises(ExecutorError, match=expected) as e:
        adapter(fake.runner()).submit(make_job(workdir))
    assert str(workdir) in str(e.value)
    assert fake.calls() == []
