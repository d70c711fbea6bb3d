"""The global ``reflow`` command, run as ``python -m reflow.cli.main`` in a subprocess.

Commands on existing runs are run from a directory that does not hold the pipeline, so they
can only work through the entry point recorded with the run.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from cli_harness import BLOCKING_PIPELINE, OTHER_PIPELINE, Project, Runs, error_line


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("elsewhere")


def test_help_and_version(project: Project) -> None:
    top = project.reflow("--help", store=False)
    assert top.returncode == 0, top.stderr
    for command in (
        "submit",
        "runs",
        "status",
        "retry",
        "cancel",
        "why",
        "logs",
        "resume",
        "dag",
        "tui",
        "store",
        "config",
    ):
        assert f" {command} " in top.stdout, command
    assert project.reflow("--version", store=False).stdout.strip() == "reflow 0.1.0"
    generic = project.reflow("submit", "--help", store=False)
    assert generic.returncode == 0 and "PIPELINE" in generic.stdout
    specific = project.reflow("submit", str(project.script), "--help", store=False)
    assert specific.returncode == 0, specific.stderr
    assert "--label" in specific.stdout and "--square-fail-on" in specific.stdout
    usage = " ".join(specific.stdout.split())
    assert f"submit {project.script} [OPTIONS]" in usage  # usage names the pipeline


def test_submit_by_path_plans_from_another_directory(project: Project, elsewhere: Path) -> None:
    plan = project.reflow(
        "submit",
        str(project.script),
        "--run-dir",
        "r",
        "--dry-run",
        "--label",
        "x",
        "--tags",
        "a",
        "b",
        cwd=elsewhere,
    )
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines()[0] == f"Plan for demo in {elsewhere / 'r'} (nothing submitted)"
    missing = project.reflow("submit", str(elsewhere / "nope.py"), "--run-dir", "r", cwd=elsewhere)
    assert missing.returncode == 1
    assert "nope.py does not exist" in error_line(missing)
    params = project.reflow(
        "submit", str(project.script), "--run-dir", "r", "--dry-run", cwd=elsewhere
    )
    assert params.returncode == 1 and "--label" in error_line(params)
    # options before PIPELINE, as `reflow submit -h` shows them
    first = project.reflow("submit", "--run-dir", "r", "--dry-run", str(project.script),
                           "--label", "x", "--tags", "a", cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == plan.stdout.splitlines()[0]
    none = project.reflow("submit", "--run-dir", "r", "--dry-run", cwd=elsewhere)
    assert none.returncode == 2 and "no pipeline given" in none.stderr  # a usage error
    dry = project.reflow("submit", str(project.script), "--run-dir", "d", "--executor",
                         "dry-run", "--wait", "--label", "x", cwd=elsewhere)
    assert dry.returncode == 0, dry.stderr  # ends CANCELLED by design: not a failure
    lines = dry.stdout.splitlines()
    assert lines[2:4] == ["status   = CANCELLED",
                          f"commands = {elsewhere / 'd' / 'logs' / 'dry-run-commands.sh'}"]
    assert lines[4].startswith("sbatch ") and "--job-name demo-prepare" in lines[4]


def test_submit_wait_then_status_retry_and_logs_from_another_directory(
    project: Project, elsewhere: Path
) -> None:
    from reflow import Run

    run_dir = project.root / "w"
    waited = project.reflow(
        "submit",
        str(project.script),
        "--run-dir",
        str(run_dir),
        "--executor",
        "local",
        "--wait",
        "--label",
        "x",
        "--square-fail-on",
        "1",
        cwd=elsewhere,
    )
    assert waited.returncode == 1, waited.stderr  # the run failed, and says so
    lines = waited.stdout.splitlines()
    assert lines[0].startswith("run_id   = demo-")
    assert lines[1] == f"run_dir  = {run_dir}"
    assert lines[2] == "status   = FAILED"
    run_id = lines[0].split("=", 1)[1].strip()
    assert error_line(waited) == (  # the hint names the store, so it works when pasted
        f"error: run {run_id} ended FAILED; see "
        f"`reflow status {run_id} --store-path {project.store} --errors`")

    status = project.reflow("status", run_id, cwd=elsewhere)
    assert "    [1]  FAILED  job=" in status.stdout

    (run_dir / "fixed").touch()
    retried = project.reflow("retry", run_id, "--task", "square", cwd=elsewhere)
    assert retried.returncode == 0, retried.stderr
    assert "1 instance(s) of task 'square' retried" in retried.stdout
    assert Run.load(run_id, store=str(project.store)).wait(timeout=60) == "SUCCESS"

    logs = project.reflow("logs", run_id, "square", "--index", "0", cwd=elsewhere)
    assert logs.returncode == 0, logs.stderr
    assert "squaring 0" in logs.stdout
    followed = project.reflow(
        "logs", run_id, "prepare", "--follow", "--stream", "stdout", cwd=elsewhere
    )
    assert followed.stdout.strip() == "preparing 3 items for x"
    paths = json.loads(project.reflow("logs", run_id, "prepare", "--json", cwd=elsewhere).stdout)
    assert Path(paths["stdout"]).is_file() and paths["index"] is None

    again = project.reflow("submit", str(project.script), "--run-dir", str(project.root / "w2"),
                           "--executor", "local", "--wait", "--label", "x",
                           "--square-fail-on", "1", cwd=elsewhere)
    assert again.returncode == 0, again.stderr  # fully cached
    second = again.stdout.splitlines()[0].split("=", 1)[1].strip()
    cached = project.reflow("logs", second, "square", "--index", "0", cwd=elsewhere)
    assert cached.returncode == 1 and "reused the output of instance" in error_line(cached)
    assert (f"`reflow logs {run_id} square --index 0 --store-path {project.store}` shows that "
            "run's logs") in cached.stderr


def test_submit_without_wait_returns_at_once(project: Project, elsewhere: Path) -> None:
    from reflow import Run

    submitted = project.reflow(
        "submit",
        str(project.script),
        "--run-dir",
        "d",
        "--executor",
        "local",
        "--label",
        "y",
        "--json",
        cwd=elsewhere,
    )
    assert submitted.returncode == 0, submitted.stderr
    doc = json.loads(submitted.stdout)
    assert doc["run_dir"] == str(elsewhere / "d")
    assert Run.load(doc["run_id"], store=str(project.store)).wait(timeout=60) == "SUCCESS"
    finished = project.reflow("resume", doc["run_id"])
    assert finished.returncode == 1 and "nothing to resume" in error_line(finished)


def test_resume_restarts_a_run_whose_process_died(project: Project, elsewhere: Path) -> None:
    """Kill the process running a run mid-task; ``reflow resume`` finishes the run."""
    from reflow import Run, Store

    script = project.root / "blocking.py"
    script.write_text(BLOCKING_PIPELINE)
    run_dir = project.root / "b"
    starter = (
        "import sys\n"
        "from reflow.cli.loading import load_pipeline\n"
        "load_pipeline(sys.argv[1]).run_local(sys.argv[2], store=sys.argv[3])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", starter, str(script), str(run_dir), str(project.store)],
        env=project.env,
    )
    try:
        deadline = time.monotonic() + 60
        running: list[str] = []
        while not running:
            assert time.monotonic() < deadline, "the task never started"
            assert proc.poll() is None, "the run ended before it could be killed"
            if project.store.exists():
                store = Store.open(str(project.store))
                runs = store.list_runs(workflow="blocking")
                running = [
                    r.run_id for r in runs if store.count_latest(r.run_id, states=["RUNNING"])
                ]
                store.close()
            time.sleep(0.05)  # polling with a deadline, not a fixed wait
    finally:
        proc.kill()
        proc.wait()
    (run_dir / "go").touch()
    resumed = project.reflow("resume", running[0], cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().endswith(f"{running[0]}: driver restarted; run is SUCCESS")
    assert Run.load(running[0], store=str(project.store)).state == "SUCCESS"


def test_run_commands_work_without_the_pipeline(
    project: Project, runs: Runs, elsewhere: Path
) -> None:
    other = project.root / "other.py"
    other.write_text(OTHER_PIPELINE)
    other_run = project.workflow(other).run_local(project.root / "o", store=str(project.store))

    listed = project.reflow("runs", cwd=elsewhere).stdout.split("\n")
    assert [ln.split()[0] for ln in listed if ln] == [other_run.run_id, runs.failed, runs.ok]
    only = project.reflow("runs", "--workflow", "demo", "--last", "5", cwd=elsewhere)
    assert [ln.split()[0] for ln in only.stdout.splitlines()] == [runs.failed, runs.ok]

    why = project.reflow("why", runs.failed, "total", cwd=elsewhere)
    assert why.returncode == 0 and why.stdout.startswith("total: ")
    status = json.loads(project.reflow("status", runs.ok, "--json", cwd=elsewhere).stdout)
    assert status["run"]["status"] == "SUCCESS"
    cancel = project.reflow("cancel", runs.ok, "--yes", cwd=elsewhere)
    assert cancel.stdout.strip() == f"{runs.ok}: nothing to cancel (run is SUCCESS)"


def test_logs_errors_name_the_problem(project: Project, runs: Runs) -> None:
    task = project.reflow("logs", runs.ok, "prepar")
    assert task.returncode == 1 and "Did you mean 'prepare'?" in error_line(task)
    inline = project.reflow("logs", runs.ok, "prepare")  # run_local keeps no log files
    assert inline.returncode == 1
    assert "no log file" in error_line(inline)
    unknown = project.reflow("resume", "demo-20000101-00000000")
    assert unknown.returncode == 1 and "no run 'demo-20000101-00000000'" in error_line(unknown)


def test_dag_by_path(project: Project, elsewhere: Path) -> None:
    result = project.reflow(
        "dag", str(project.script), "--format", "mermaid", store=False, cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "flowchart TD"
    assert "    square --> total" in result.stdout


def test_tui_refuses_without_a_terminal(project: Project, runs: Runs) -> None:
    result = project.reflow("tui", runs.ok)
    assert result.returncode == 1
    assert "needs a terminal" in error_line(result)


def test_tui_names_a_mistyped_run_id_before_asking_for_a_terminal(
    project: Project, runs: Runs
) -> None:
    result = project.reflow("tui", runs.ok[:-1])
    assert result.returncode == 1
    assert f"no run '{runs.ok[:-1]}'" in error_line(result)
    assert f"Did you mean '{runs.ok}'" in error_line(result)


def test_store_info_and_upgrade(project: Project, runs: Runs, tmp_path: Path) -> None:
    info = project.reflow("store", "info")
    assert info.returncode == 0, info.stderr
    lines = dict(ln.split(" = ", 1) for ln in info.stdout.splitlines())
    assert {k.strip() for k in lines} == {"url", "dialect", "revision", "runs", "instances"}
    assert lines["dialect   "].strip() == "sqlite" and lines["runs      "] == "2"
    assert "(up to date;" in lines["revision  "]
    doc = json.loads(project.reflow("store", "info", "--json").stdout)
    assert doc["runs"] == 2 and doc["revision"] == doc["head_revision"]

    fresh = tmp_path / "fresh" / "m.db"
    missing = project.reflow("store", "info", "--store-path", str(fresh), store=False)
    assert missing.returncode == 1 and "no reflow store at" in error_line(missing)
    assert not fresh.exists()
    created = project.reflow("store", "upgrade", "--store-path", str(fresh), store=False)
    assert created.returncode == 0, created.stderr
    assert fresh.exists() and "runs       = 0" in created.stdout
    assert created.stdout.splitlines()[-1] == "changed    = created"
    again = project.reflow("store", "upgrade", "--store-path", str(fresh), store=False)
    assert again.stdout.splitlines()[-1] == "changed    = nothing (already current)"
    with sqlite3.connect(fresh) as conn:  # as the first release left it
        conn.execute("DROP TABLE shared_values")
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    conn.close()
    old = project.reflow("store", "upgrade", "--store-path", str(fresh), store=False)
    assert old.stdout.splitlines()[-1] == "changed    = upgraded from 0001"
    assert "revision   = 0002 (up to date;" in old.stdout


def test_config_init_writes_once_and_force_replaces(project: Project) -> None:
    target = Path(project.env["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    first = project.reflow("config", "init", store=False)
    assert first.returncode == 0, first.stderr
    assert str(target) in first.stdout
    tomllib.loads(target.read_text())  # the example is valid TOML
    target.write_text("# mine\n")
    again = project.reflow("config", "init", store=False)
    assert again.returncode == 1 and "already exists" in error_line(again)
    assert target.read_text() == "# mine\n"
    custom = project.root / "c.toml"
    forced = project.reflow("config", "init", "--force", "--path", str(custom), store=False)
    assert forced.returncode == 0 and custom.read_text().startswith("# reflow configuration")
    # a store given to init becomes the [defaults] store of the file it writes
    shared = project.reflow("config", "init", "--force", "--path", str(custom), "--store-path",
                            "shared.db", store=False)
    assert shared.returncode == 0, shared.stderr
    written = tomllib.loads(custom.read_text())
    assert written["defaults"] == {"store_path": str(project.root / "shared.db")}


def test_retry_of_a_run_whose_pipeline_moved_fails_and_changes_nothing(
    project: Project, runs: Runs
) -> None:
    from reflow import Run

    project.script.rename(project.root / "moved.py")
    for args in (("--no-verify",), ()):
        result = project.reflow("retry", runs.failed, *args)
        assert result.returncode == 1
        assert "no longer exists; restore it" in error_line(result)
    run = Run.load(runs.failed, store=str(project.store))
    assert run.state == "FAILED"
    assert all(i["attempt"] == 1 for i in run.status(as_dict=True)["instances"])


def test_file_system_and_import_errors_are_one_line(project: Project, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    taken = project.cli("submit", "--run-dir", str(tmp_path / "afile"), "--label", "x",
                        "--executor", "local")
    assert taken.returncode == 1
    assert error_line(taken) == (f"error: run dir {tmp_path / 'afile'} is a file, not a "
                                 "directory; choose a directory you can write to")
    broken = tmp_path / "broken.py"
    broken.write_text("from reflow import Workflow\nwf = Workflow('b')\nimport no_such_pkg\n")
    failed = project.reflow("dag", str(broken), store=False)
    assert failed.returncode == 1
    assert error_line(failed) == (
        f"error: importing pipeline {broken} failed at {broken}:3: ModuleNotFoundError: "
        "No module named 'no_such_pkg'; fix the pipeline and try again")
    debug = project.reflow("dag", str(broken), "--debug", store=False)
    assert "Traceback" in debug.stderr and debug.returncode == 1
    first = project.reflow("--debug", "dag", str(broken), store=False)  # before the command
    assert "Traceback" in first.stderr and first.returncode == 1
    # refused by a reflow check while it is defined: the line named is the pipeline's
    twice = tmp_path / "twice.py"
    twice.write_text("from reflow import Workflow\nwf = Workflow('t')\n"
                     "@wf.job()\ndef a() -> int:\n    return 1\n"
                     "@wf.job(name='a')\ndef b() -> int:\n    return 2\n")
    refused = project.reflow("dag", str(twice), store=False)
    assert error_line(refused).startswith(
        f"error: importing pipeline {twice} failed at {twice}:6: GraphError: task 'a' is "
        "defined twice")
    # a directory where a file belongs is named as such
    folder = tmp_path / "adir"
    folder.mkdir()
    as_store = project.reflow("runs", "--store-path", str(folder), store=False)
    assert error_line(as_store) == (f"error: store path {folder} is a directory; pass the path "
                                    f"of a SQLite file, e.g. {folder / 'manifest.db'}")
    as_config = project.reflow("config", "init", "--path", str(folder), store=False)
    assert error_line(as_config).startswith(f"error: config {folder}: is a directory")


def test_runs_before_any_run_and_the_store_options_everywhere(project: Project) -> None:
    assert project.reflow("runs", store=False).stdout == "No runs found.\n"
    assert json.loads(project.cli("runs", "--json", store=False).stdout) == []
    missing = project.reflow("runs", "--store-path", str(project.root / "typo.db"), store=False)
    assert missing.returncode == 1 and "no reflow store" in error_line(missing)
    for argv in (("dag", "--json"), ("describe",)):
        result = project.cli(*argv)  # --store-path appended: accepted, and no store is read
        assert result.returncode == 0, result.stderr
    document = json.loads(project.cli("dag", "--json").stdout)
    assert [t["name"] for t in document["tasks"]] == ["prepare", "square", "total"]
    assert {"from": "prepare", "to": "square", "kind": "data"} in document["edges"]
    assert project.reflow("dag", str(project.script), "--json").returncode == 0
    assert not project.store.exists()


def test_runs_of_an_unknown_workflow_suggest_the_closest(project: Project, runs: Runs) -> None:
    typo = project.reflow("runs", "--workflow", "dmeo")
    assert typo.returncode == 0 and typo.stdout.strip() == "No runs found."  # the SPEC shape
    assert "no workflow 'dmeo' has runs in this store. Did you mean 'demo'?" in typo.stderr
    empty = project.reflow("runs", "--workflow", "demo", "--status", "CANCELLED")
    assert empty.stdout.strip() == "No runs found." and empty.stderr == ""  # a real empty filter


def test_submit_wait_drives_its_run_to_the_end_when_its_reader_goes_away(
    project: Project, elsewhere: Path
) -> None:
    """`submit --wait | head -1`: the second announced line met a closed pipe, and the run
    was left RUNNING with nothing driving it."""
    import subprocess
    import sys

    from reflow import Run, Store

    proc = subprocess.Popen(
        [sys.executable, "-m", "reflow.cli.main", "submit", str(project.script), "--run-dir",
         str(project.root / "h"), "--executor", "local", "--wait", "--label", "x",
         "--store-path", str(project.store)],
        cwd=elsewhere, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # gone before the first line, as `head -1` after it, only surely
    proc.wait(timeout=120)
    with Store.open(str(project.store)) as store:
        (run,) = [r for r in store.list_runs() if r.run_dir == str(project.root / "h")]
        assert Run.load(run.run_id, store=store).state == "SUCCESS"


def test_submit_says_so_when_the_run_failed_as_it_was_submitted(
    project: Project, elsewhere: Path, tmp_path: Path
) -> None:
    """PBS chosen, but no qsub on this host: the first step's submission fails and the run
    ends FAILED inside `submit`, which printed its run id and exited 0."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "reflow.cli.main", "submit", str(project.script), "--run-dir",
         str(project.root / "p"), "--executor", "pbs", "--label", "x",
         "--store-path", str(project.store)],
        cwd=elsewhere, env={**project.env, "PATH": str(tmp_path / "no-bin")},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("run_id   = demo-")
    *attempts, last = result.stderr.splitlines()  # each submission attempt said why
    assert len(attempts) == 3 and "'qsub' was not found" in attempts[0]
    assert "failed as it was submitted; see `reflow status demo-" in last
    assert os.path.isdir(project.root / "p")
