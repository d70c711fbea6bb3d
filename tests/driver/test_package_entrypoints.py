"""Pipelines inside a package, started as ``python -m pkg.pipeline`` or imported from it.

The package lies in the submitter's current directory, which the driver's and the workers'
``sys.path`` does not have; and a module run with ``-m`` may use relative imports, so it can
only be imported again by its module name, never by its file path (SPEC §13.9).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

PIPELINE = '''
import enum
from typing import Annotated

from reflow import Param, Result, Workflow

from .helpers import OFFSET


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


wf = Workflow("packaged")


@wf.job()
def pick(color: Annotated[Color, Param()] = Color.RED) -> Color:
    return color


@wf.job()
def score(color: Annotated[Color, Result(step="pick")]) -> int:
    return OFFSET + (color is Color.BLUE)


if __name__ == "__main__":
    wf.cli()
'''


def _project(root: Path) -> Path:
    package = root / "proj" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("OFFSET = 40\n")
    (package / "pipeline.py").write_text(PIPELINE)
    return root / "proj"


def _python(*args: str, cwd: Path) -> str:
    return _run([sys.executable, *args], cwd)


def _reflow(*args: str, cwd: Path) -> str:
    """The ``reflow`` console script: unlike ``python -m``, it has no cwd on ``sys.path``."""
    return _run([str(Path(sys.executable).parent / "reflow"), *args], cwd)


def _run(argv: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _runs(store: Path) -> list[tuple[str, str, str, dict[str, object]]]:
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT id, entrypoint, status, options FROM runs "
                            "ORDER BY created_at").fetchall()
    return [(i, e, s, json.loads(o)) for i, e, s, o in rows]


def test_python_dash_m_pipeline_with_relative_imports_runs_on_the_driver_path(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    store = tmp_path / "m.db"
    for run_dir in ("r1", "r2"):
        _python("-m", "mypkg.pipeline", "submit", "--run-dir", str(tmp_path / run_dir),
                "--store-path", str(store), "--executor", "local", "--wait", "--color", "blue",
                cwd=project)
    runs = _runs(store)
    assert [(e, s) for _, e, s, _ in runs] == [("mypkg.pipeline:wf", "SUCCESS")] * 2
    assert runs[0][3]["import_root"] == str(project.resolve())
    with sqlite3.connect(store) as conn:
        second = conn.execute("SELECT task_name, cached, output FROM instances WHERE run_id = ?"
                              " ORDER BY task_name", (runs[1][0],)).fetchall()
    # The script's Enum is stored by the module's import name, so the rerun is all cached.
    assert second == [("pick", 1, '{"$t":"enum","cls":"mypkg.pipeline:Color","v":"blue"}'),
                      ("score", 1, "41")]


def test_package_imported_from_the_current_directory_is_found_by_workers_and_later(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    store = tmp_path / "m.db"
    _python("-c", "from mypkg.pipeline import wf\n"
            f"wf.submit({str(tmp_path / 'r')!r}, store={str(store)!r}, executor='local', "
            "wait=True)", cwd=project)
    [(run_id, entry, status, _)] = _runs(store)
    assert (entry, status) == ("mypkg.pipeline:wf", "SUCCESS")
    # Days later, from elsewhere: the run's workflow is imported again from its package.
    out = _python("-c", "from reflow import Run\n"
                  f"run = Run.load({run_id!r}, store={str(store)!r})\n"
                  "print(run.workflow().tasks['score'].func.__module__)", cwd=tmp_path)
    assert out.strip() == "mypkg.pipeline"


def test_the_global_cli_submits_a_package_module_by_name_or_by_file(tmp_path: Path) -> None:
    """``reflow submit pkg.pipeline:wf`` finds the package in the current directory (as
    ``python -m`` would), and ``reflow submit pkg/pipeline.py`` imports a module written
    for ``python -m`` (relative imports) by its module name."""
    project = _project(tmp_path)
    store = tmp_path / "m.db"
    common = ["--store-path", str(store), "--executor", "local", "--wait"]
    _reflow("submit", "mypkg.pipeline:wf", "--run-dir", str(tmp_path / "r1"), *common,
            cwd=project)
    _reflow("submit", str(project / "mypkg" / "pipeline.py"), "--run-dir", str(tmp_path / "r2"),
            *common, "--color", "blue", cwd=tmp_path)
    runs = _runs(store)
    assert [(e, s, o["import_root"]) for _, e, s, o in runs] == [
        ("mypkg.pipeline:wf", "SUCCESS", str(project.resolve()))] * 2
