"""What a person at a terminal sees: rich tables, the confirmation prompt; and import cost."""

from __future__ import annotations

import subprocess
import sys

from cli_harness import Project, Runs, in_pty


def test_status_and_runs_are_tables_in_a_terminal(project: Project, runs: Runs) -> None:
    store = ["--store-path", str(project.store)]
    code, out = in_pty(
        [str(project.script), "status", runs.failed, "--errors", *store], project.env, project.root
    )
    assert code == 0, out
    assert "┃" in out and "Recomputed" in out  # a table header, not the piped line shapes
    assert "Failed instances" in out and "square[2]" in out and "boom on 2" in out
    assert f"Run {runs.failed}" not in out
    code, out = in_pty([str(project.script), "runs", *store], project.env, project.root)
    assert code == 0, out
    assert runs.ok in out and runs.failed in out and "Created" in out  # ids never shortened


def test_cancel_asks_and_a_no_changes_nothing(project: Project, runs: Runs) -> None:
    from reflow import Store
    from reflow.states import RunState

    store = ["--store-path", str(project.store)]
    with Store.open(str(project.store)) as st:  # as if it were still running
        st.set_run_status(runs.ok, RunState.RUNNING)
    code, out = in_pty(
        [str(project.script), "cancel", runs.ok, *store], project.env, project.root, answer="n"
    )
    assert code == 1, out
    assert f"Cancel 1 run(s): {runs.ok}? [y/N]" in out
    assert "error: cancel refused; nothing was changed" in out
    with Store.open(str(project.store)) as st:
        assert st.get_run(runs.ok).status == "RUNNING"
        st.set_run_status(runs.ok, RunState.SUCCESS)
    code, out = in_pty(  # a finished run: nothing to cancel, so nothing is asked
        [str(project.script), "cancel", runs.ok, *store], project.env, project.root, answer="y"
    )
    assert code == 0, out
    assert "[y/N]" not in out and f"{runs.ok}: nothing to cancel (run is SUCCESS)" in out


def test_import_reflow_loads_no_cli_or_ui_library(project: Project) -> None:
    probe = (
        "import sys, reflow\n"
        "from reflow import Workflow, Param, Result, RunDir\n"
        "wf = Workflow('probe')\n"
        "heavy = [m for m in ('typer', 'rich', 'textual', 'reflow.cli') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=project.env, check=True
    )
    assert result.stdout.strip() == "[]"
