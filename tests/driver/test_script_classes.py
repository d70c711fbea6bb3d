"""Enums and dataclasses defined in the pipeline script itself, on every path.

The script is ``__main__`` for ``python pipeline.py``, and a module loaded by path in the
driver and in the workers; values of its classes must decode in each of them and hash alike,
so a submit after a ``run_local`` of the same script is fully cached.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = '''
import dataclasses
import enum
import sys
from typing import Annotated

from reflow import Param, Result, Workflow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Box:
    x: int


wf = Workflow("classes")


@wf.job()
def paint(col: Annotated[Color, Param()] = Color.RED) -> str:
    return col.value


@wf.job()
def make() -> Box:
    return Box(1)


@wf.job()
def use(box: Annotated[Box, Result(step="make")], col: Annotated[Color, Param()]) -> int:
    return box.x + len(col.value)


if __name__ == "__main__":
    if sys.argv[1] == "local":
        wf.run_local(sys.argv[2], store=sys.argv[3], col=Color.BLUE)
    else:
        wf.cli()
'''


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def _newest(cwd: Path, store: str) -> dict[str, dict[str, object]]:
    """The instances of the newest run, by task."""
    out = _run("pipeline.py", "runs", "--store-path", store, "--json", cwd=cwd).stdout
    newest = json.loads(out)[0]["run_id"]
    doc = json.loads(_run("pipeline.py", "status", newest, "--store-path", store, "--json",
                          cwd=cwd).stdout)
    assert doc["run"]["status"] == "SUCCESS", doc["instances"]
    return {i["task_name"]: i for i in doc["instances"]}


def test_script_enum_and_dataclass_work_on_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "pipeline.py").write_text(SCRIPT)
    store = str(tmp_path / "m.db")
    _run("pipeline.py", "local", "r1", store, cwd=tmp_path)
    local = _newest(tmp_path, store)
    assert local["use"]["output"] == 5

    submit = ["pipeline.py", "submit", "--store-path", store, "--executor", "local", "--wait",
              "--col", "blue"]
    _run(*submit, "--run-dir", "r2", cwd=tmp_path)
    cached = _newest(tmp_path, store)
    assert {t: i["reason"] for t, i in cached.items()} == dict.fromkeys(cached, "cached")

    # Forced: the workers decode the Box and the Color in their own processes.
    _run(*submit, "--run-dir", "r3", "--force", cwd=tmp_path)
    forced = _newest(tmp_path, store)
    assert {t: i["reason"] for t, i in forced.items()} == dict.fromkeys(forced, "forced")
    assert forced["use"]["output"] == 5 and forced["make"]["identity"] == local["make"][
        "identity"]
