"""``python pipeline.py COMMAND``: every command and flag, in a subprocess, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

from cli_harness import OTHER_PIPELINE, Project, Runs, error_line


def test_help_lists_commands_and_generated_parameter_flags(project: Project) -> None:
    top = project.cli("--help", store=False)
    assert top.returncode == 0, top.stderr
    for command in ("submit", "status", "cancel", "retry", "runs", "dag", "describe", "why"):
        assert command in top.stdout
    helped = project.cli("submit", "--help", store=False)
    assert helped.returncode == 0, helped.stderr
    text = helped.stdout
    for flag in (
        "--run-dir",
        "--executor",
        "--force-tasks",
        "--verify",
        "--wait",
        "--dry-run",
        "--label",
        "--tags",
        "--model",
        "--fast",
        "--no-fast",
        "--start",
        "--out",
        "--square-fail-on",
        "-n",
    ):
        assert flag in text, flag
    assert "How many [items]" in text  # user help text is not eaten as markup
    assert "[era5|icon]" in text
    assert "[required]" in text and "[default: 3]" in text
    assert "Workflow parameters" in text


def test_version(project: Project) -> None:
    result = project.cli("--version", store=False)
    assert result.returncode == 0
    assert result.stdout.strip() == "reflow 0.1.0"


def test_help_works_on_an_invalid_graph_and_says_what_is_wrong(project: Project) -> None:
    project.script.write_text(
        project.script.read_text().replace('Result(step="square")', 'Result(step="sqaure")')
    )
    top = project.cli("--help", store=False)
    assert top.returncode == 0, top.stderr
    flat = " ".join(top.stdout.replace("│", " ").split())
    assert "This workflow is invalid" in flat and "unknown step 'sqaure'" in flat
    assert project.cli("submit", "--help", store=False).returncode == 0
    dag = project.cli("dag", store=False)
    assert dag.returncode == 1
    assert "unknown step 'sqaure'. Did you mean 'square'?" in error_line(dag)
    submit = project.cli("submit", "--run-dir", "r", "--label", "x")
    assert submit.returncode == 1
    assert "unknown step 'sqaure'" in error_line(submit)


def test_a_definition_the_decorator_refuses_is_one_line_even_for_help(project: Project) -> None:
    """A duplicate task name raises while the script is imported, before wf.cli() runs."""
    text = project.script.read_text()
    project.script.write_text(text.replace("@wf.job(", "@wf.job(name='prepare', ", 2))
    refused = project.cli("--help", store=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    line = error_line(refused)
    assert line.startswith("error: task 'prepare' is defined twice") and str(project.script) in line
    assert "Traceback" in project.cli("submit", "--debug", "--help", store=False).stderr
    project.env["REFLOW_DEBUG"] = "1"
    assert "Traceback" in project.cli("--help", store=False).stderr


def test_dry_run_reports_the_plan_in_text_and_json_and_records_nothing(project: Project) -> None:
    text = project.cli("submit", "--run-dir", "r", "--dry-run", "--label", "x")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == (
        f"Plan for demo in {project.root / 'r'} (nothing submitted)"
    )
    assert "  prepare  cached=0 recompute=1 (new: 1)" in text.stdout
    as_json = project.cli("submit", "--run-dir", "r", "--dry-run", "--json", "--label", "x")
    plan = json.loads(as_json.stdout)
    assert plan["workflow"] == "demo"
    assert [t["task"] for t in plan["tasks"]] == ["prepare", "square", "total"]
    assert plan["tasks"][0]["recompute"] == {"new": 1}
    assert not project.store.exists()  # planned against an empty store, none created
    first = project.run_local("first", label="x")
    again = project.cli("submit", "--run-dir", "r", "--dry-run", "--label", "x")
    assert "  prepare  cached=1 recompute=0" in again.stdout
    assert [line.split()[0] for line in project.cli("runs").stdout.splitlines()] == [
        first.run_id]


def test_flag_values_reach_the_tasks_exactly_as_python_arguments_do(project: Project) -> None:
    """A run from Python with some values, then a dry run with the same values as flags:
    everything is cached only if each flag parsed to the very value Python passed."""
    from datetime import datetime

    project.run_local(
        "py",
        label="x",
        n=2,
        tags=["a", "b"],
        model="icon",
        fast=True,
        start=datetime(2024, 5, 1, 6),
        out=Path("res"),
        square_fail_on=7,
    )
    same = [
        "--label",
        "x",
        "-n",
        "2",
        "--tags",
        "a",
        "b",
        "--model",
        "icon",
        "--fast",
        "--start",
        "2024-05-01T06:00:00",
        "--out",
        "res",
        "--square-fail-on",
        "7",
    ]
    plan = project.cli("submit", "--run-dir", "r", "--dry-run", "--json", *same)
    assert plan.returncode == 0, plan.stderr
    tasks = {t["task"]: t for t in json.loads(plan.stdout)["tasks"]}
    assert tasks["prepare"]["recompute"] == {} and tasks["prepare"]["cached"] == 1
    assert tasks["square"]["cached"] == 2 and tasks["total"]["cached"] == 1

    changed = [a if a != "b" else "c" for a in same]  # --tags a c
    plan = project.cli(
        "submit", "--run-dir", "r", "--dry-run", "--json", *changed, "--force-tasks", "total"
    )
    tasks = {t["task"]: t for t in json.loads(plan.stdout)["tasks"]}
    assert tasks["prepare"]["recompute"] == {"param-changed:tags": 1}


def test_missing_and_malformed_parameters_are_one_line_errors(project: Project) -> None:
    missing = project.cli("submit", "--run-dir", "r", "--dry-run")
    assert missing.returncode == 1
    assert "missing required parameter: --label (prepare)" in error_line(missing)
    bad_int = project.cli("submit", "--run-dir", "r", "--label", "x", "-n", "many")
    assert bad_int.returncode == 1
    assert error_line(bad_int) == "error: --n got 'many'; pass a whole number"
    bad_choice = project.cli("submit", "--run-dir", "r", "--label", "x", "--model", "gfs")
    assert error_line(bad_choice) == "error: --model got 'gfs'; choose one of: era5, icon"
    bad_task = project.cli(
        "submit", "--run-dir", "r", "--label", "x", "--dry-run", "--force-tasks", "totl"
    )
    assert bad_task.returncode == 1
    assert "Did you mean 'total'?" in error_line(bad_task)


def test_usage_errors_exit_2(project: Project) -> None:
    no_dir = project.cli("submit", "--label", "x")
    assert no_dir.returncode == 2
    assert "--run-dir" in no_dir.stderr
    unknown = project.cli("submit", "--run-dir", "r", "--label", "x", "--nope")
    assert unknown.returncode == 2
    assert project.cli("frobnicate").returncode == 2


def test_status_prints_the_stable_line_shapes(project: Project, runs: Runs) -> None:
    result = project.cli("status", runs.failed)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [f"Run {runs.failed}", "Workflow demo", "Status FAILED"]
    assert lines[3].startswith("Created 20")
    assert lines[4].startswith("  prepare  SUCCESS=1")
    assert lines[5].startswith("  square  SUCCESS=3, FAILED=1")
    assert lines[6] == "    [2]  FAILED  job=-"
    assert lines[7] == ("  total  CANCELLED=1  (cached=0, recomputed=0)  "
                        "(skipped: upstream task 'square' failed)")
    assert "boom" not in result.stdout

    errors = project.cli("status", runs.failed, "--errors", "--task", "square")
    out = errors.stdout
    assert "RuntimeError: boom on 2" in out
    assert "  prepare" not in out and "  total" not in out
    assert len([ln for ln in out.splitlines() if ln.startswith("        ")]) <= 15


def test_status_json_is_the_api_document(project: Project, runs: Runs) -> None:
    from reflow import Run

    result = project.cli("status", runs.failed, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == Run.load(runs.failed, store=str(project.store)).status(
        as_dict=True
    )
    task = json.loads(project.cli("status", runs.ok, "--json", "--task", "total").stdout)
    assert {i["task_name"] for i in task["instances"]} == {"total"}


def test_unknown_run_and_task_are_one_line_errors_with_suggestions(
    project: Project, runs: Runs
) -> None:
    typo = runs.ok[:-1] + ("0" if runs.ok[-1] != "0" else "1")
    unknown = project.cli("status", typo)
    assert unknown.returncode == 1
    assert f"no run '{typo}'" in error_line(unknown) and f"Did you mean '{runs.ok}'" in (
        unknown.stderr
    )
    task = project.cli("why", runs.ok, "squre", "--index", "0")
    assert task.returncode == 1
    assert "Did you mean 'square'?" in error_line(task)
    debug = project.cli("status", typo, "--debug")
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: no run")


def test_runs_filters_and_formats(project: Project, runs: Runs) -> None:
    other = project.root / "other.py"
    other.write_text(OTHER_PIPELINE)
    project.workflow(other).run_local(project.root / "o", store=str(project.store))

    listed = project.cli("runs")
    lines = listed.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [runs.failed, runs.ok]  # newest first, own only
    assert lines[0].startswith(f"  {runs.failed}  FAILED  20")
    assert project.cli("runs", "--last", "1").stdout.split()[0] == runs.failed
    assert project.cli("runs", "--status", "success").stdout.split()[0] == runs.ok
    assert (
        project.cli("runs", "--status", "failed,success", "--since", "1h", "--all").stdout.count(
            "\n"
        )
        == 2
    )
    assert project.cli("runs", "--until", "2000-01-01").stdout.strip() == "No runs found."
    documents = json.loads(project.cli("runs", "--json").stdout)
    assert [d["run_id"] for d in documents] == [runs.failed, runs.ok]
    assert documents[0]["status"] == "FAILED" and documents[0]["graph_name"] == "demo"
    bad = project.cli("runs", "--status", "DONE")
    assert bad.returncode == 2 and "unknown run status 'DONE'" in bad.stderr
    # values at the ends of the calendar or of a 64-bit integer are usage errors, not crashes
    for argv in (("--until", "9999-12-31"), ("--since", "99999999d"), ("--since", "0001-01-01"),
                 ("--last", "99999999999999999999")):
        extreme = project.cli("runs", *argv)
        assert extreme.returncode == 2 and "Traceback" not in extreme.stderr, argv
        assert argv[0] in extreme.stderr
    assert "is out of range" in project.cli("runs", "--until", "9999-12-31").stderr
    huge = project.cli("why", runs.failed, "square", "--index", "99999999999999999999")
    assert huge.returncode == 2 and "--index" in huge.stderr


def test_why_explains_in_text_and_json(project: Project, runs: Runs) -> None:
    text = project.cli("why", runs.failed, "square", "--index", "2")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("square[2]: param-changed:fail_on")
    assert "fail_on: -1 -> 2" in text.stdout
    doc = json.loads(project.cli("why", runs.failed, "square", "-i", "2", "--json").stdout)
    assert doc == {
        "run_id": runs.failed,
        "task": "square",
        "index": 2,
        "explanation": text.stdout.rstrip("\n"),
    }


def test_retry_marks_failed_work_and_leaves_finished_runs_alone(
    project: Project, runs: Runs
) -> None:
    from reflow import Run

    again = project.cli("retry", runs.failed, "--task", "square", "--no-verify")
    assert again.returncode == 0, again.stderr
    # an in-process run retries in this process: the task's own print comes first
    assert again.stdout.splitlines() == [
        "squaring 2",
        f"{runs.failed}: 1 instance(s) of task 'square' retried; run is FAILED",
    ]
    run = Run.load(runs.failed, store=str(project.store))
    square = [i for i in run.status(as_dict=True)["instances"] if i["task_name"] == "square"]
    assert [i["attempt"] for i in square if i["array_index"] == 2] == [2]

    nothing = project.cli("retry", runs.ok)
    assert nothing.returncode == 0
    assert "nothing to retry" in nothing.stdout
    assert Run.load(runs.ok, store=str(project.store)).state == "SUCCESS"
    unknown = project.cli("retry", runs.ok, "--task", "nope")
    assert unknown.returncode == 1 and "has no task 'nope'" in error_line(unknown)


def test_cancel_asks_first_and_refuses_without_an_answer(project: Project, runs: Runs) -> None:
    from reflow import Store
    from reflow.states import RunState

    finished = project.cli("cancel", runs.ok)  # nothing to cancel: nothing to confirm
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == f"{runs.ok}: nothing to cancel (run is SUCCESS)"
    with Store.open(str(project.store)) as store:  # as if it were still running
        store.set_run_status(runs.failed, RunState.RUNNING)
    refused = project.cli("cancel", runs.ok, runs.failed, input="")  # stdin at its end
    assert refused.returncode == 1
    assert "stdin gave no answer; pass --yes" in error_line(refused)
    declined = project.cli("cancel", runs.ok, runs.failed, input="n\n")
    assert declined.returncode == 1 and "nothing was changed" in error_line(declined)
    with Store.open(str(project.store)) as store:
        assert store.get_run(runs.failed).status == "RUNNING"
    piped = project.cli("cancel", runs.failed, input="y\n")  # as the older package took it
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[-1].endswith(  # after the prompt, which a pipe never ends
        f"{runs.failed}: run CANCELLED; it had no active instances")
    with Store.open(str(project.store)) as store:
        assert store.get_run(runs.failed).status == "CANCELLED"
        store.set_run_status(runs.failed, RunState.FAILED)
    unknown = project.cli("cancel", "demo-20000101-deadbeef", "--yes")
    assert unknown.returncode == 1 and "no run 'demo-20000101-deadbeef'" in error_line(unknown)
    done = project.cli("cancel", runs.ok, runs.failed, "--yes", "--task", "square")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{runs.ok}: nothing to cancel (run is SUCCESS)",
        f"{runs.failed}: nothing to cancel (run is FAILED)",
    ]


def test_dag_formats_and_describe(project: Project) -> None:
    text = project.cli("dag", store=False)
    assert text.stdout.splitlines() == ["prepare", "square [array]  <- prepare", "total  <- square"]
    mermaid = project.cli("dag", "--format", "mermaid", store=False).stdout
    assert mermaid.startswith("flowchart TD") and "square[[square]]" in mermaid
    assert "prepare --> square" in mermaid
    dot = project.cli("dag", "-f", "dot", store=False).stdout
    assert dot.startswith("digraph reflow {") and '"square" -> "total";' in dot
    assert "peripheries=2" in dot
    assert project.cli("dag", "--format", "png", store=False).returncode == 2
    described = json.loads(project.cli("describe", store=False).stdout)
    assert described == json.loads(json.dumps(project.workflow().describe()))
    assert described["entrypoint"] == str(project.script.resolve())
    assert json.loads(project.cli("describe", "--json", store=False).stdout) == described


def test_malformed_config_is_a_one_line_error_naming_the_file(project: Project) -> None:
    config = Path(project.env["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[executor]\nmode = 'teleport'\n")
    result = project.cli("runs", store=False)
    assert result.returncode == 1
    line = error_line(result)
    assert str(config) in line and "teleport" in line
    # an explicit store never needs the config file: this error is about the store alone
    explicit = project.cli("runs")
    assert "no reflow store at" in error_line(explicit) and "teleport" not in explicit.stderr


def test_store_url_selects_the_database(project: Project, store_url: str) -> None:
    """``--store URL`` on both supported databases (PostgreSQL when a server answers)."""
    from reflow import Run

    run = project.workflow().run_local(project.root / "u", store=store_url, label="pg")
    listed = project.cli("runs", "--store", store_url, store=False)
    assert listed.stdout.split()[:2] == [run.run_id, "SUCCESS"]
    status = project.cli("status", run.run_id, "--json", "--store", store_url, store=False)
    assert json.loads(status.stdout) == Run.load(run.run_id, store=store_url).status(as_dict=True)


def test_messages_for_a_wrong_index_and_a_skipped_task(project: Project, runs: Runs) -> None:
    wrong = project.cli("why", runs.failed, "total", "--index", "0")
    assert wrong.returncode == 1
    assert error_line(wrong).endswith("task 'total' is not an array: leave out --index (index=)")
    missing = project.cli("why", runs.failed, "square")
    assert error_line(missing).endswith(
        "task 'square' is an array: give an index 0-3 (--index, or index=)")
    beyond = project.cli("why", runs.failed, "square", "--index", "9")
    assert error_line(beyond).endswith("has no instance square[9]; its indices are 0-3")
    skipped = project.cli("why", runs.failed, "total")
    assert skipped.stdout.splitlines()[0] == "total: skipped (attempt 1)"
    retry = project.cli("retry", runs.failed, "--task", "total")
    assert retry.returncode == 0
    assert "it was skipped: upstream task 'square' failed; retry that task" in retry.stdout
