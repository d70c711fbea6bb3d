"""Fixtures for the CLI tests: a pipeline in tmp_path with a real SQLite store, and runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_harness import PIPELINE, Project, Runs


@pytest.fixture
def project(tmp_path: Path) -> Project:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    env = dict(os.environ)  # the autouse fixture has pointed XDG_* at temporary folders
    env.pop("REFLOW_DEBUG", None)
    return Project(tmp_path, script, tmp_path / "manifest.db", env)


@pytest.fixture
def runs(project: Project) -> Runs:
    ok = project.run_local("ok", label="x").run_id
    failed = project.run_local("bad", label="x", n=4, square_fail_on=2, on_error="continue")
    return Runs(ok, failed.run_id)
