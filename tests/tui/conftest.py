"""TUI fixtures: real runs of ``tui_pipeline.demo``, pinned for snapshots, and the SVG shim.

Snapshots live in the top-level ``snapshots/<test module>/`` folder (SPEC §11): the plugin
has no option for that, so its extension class is swapped for one whose ``dirname`` points
there (see ../shared/notes/tui-testing.md §2). Snapshot stores are made with the real engine,
then their run ids, times, paths and tracebacks are pinned so the pictures never drift.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_textual_snapshot as pts  # type: ignore[import-untyped]
from syrupy.extensions.single_file import WriteMode
from tui_demo import USER, Demo
from tui_pipeline import demo

from reflow.states import RunState, TaskState
from reflow.store import StateChange

SNAPSHOT_ROOT = Path(__file__).resolve().parents[2] / "snapshots"
_IDS = re.compile(r"\bterminal-\d+-([\w-]+)")


class TopLevelSVG(pts.SVGImageExtension):  # type: ignore[misc]
    file_extension = "svg"
    _file_extension = "svg"
    _write_mode = WriteMode.TEXT

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOT_ROOT / test_location.basename)

    def serialize(self, *a: Any, **kw: Any) -> Any:
        return _IDS.sub(r"terminal-\1", super().serialize(*a, **kw))

    def read_snapshot_data_from_location(self, *a: Any, **kw: Any) -> Any:
        data = super().read_snapshot_data_from_location(*a, **kw)
        return data and _IDS.sub(r"terminal-\1", data)


pts.SVGImageExtension = TopLevelSVG


@pytest.fixture(autouse=True)
def _tui_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Colours on, the demo's flag file unset (so ``work[1]`` fails) and no stale outputs."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("REFLOW_TUI_STALE", raising=False)
    flag = tmp_path / "flag"
    monkeypatch.setenv("REFLOW_TUI_FLAG", str(flag))
    return flag


def _make_runs(tmp_path: Path, url: str, flag: Path) -> Demo:
    first = demo.run_local(tmp_path / "a", store=url, on_error="continue")
    second = demo.run_local(tmp_path / "b", store=url, on_error="continue", factor=3)
    return Demo(url, first.store, first.run_id, second.run_id, flag)


@pytest.fixture
def runs(tmp_path: Path, sqlite_url: str, _tui_env: Path) -> Iterator[Demo]:
    """Two real runs: all-new with a failure, then cached + recomputed + failed + skipped."""
    made = _make_runs(tmp_path, sqlite_url, _tui_env)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE runs SET username = ?", (USER,))
    yield made
    made.store.close()


def _pin(db: Path, repo: Path) -> None:
    """Fixed times, paths and hosts, and one-line errors, so snapshots are stable."""
    base = "2030-01-01 11:00:00"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET username = ?, host = 'login1', "
                     "run_dir = '/scratch/alice/demo/' || substr(id, -1), "
                     "created_at = datetime(?, '+' || ((SELECT count(*) FROM runs r2 "
                     "WHERE r2.id <= runs.id) * 10) || ' minutes'), updated_at = created_at",
                     (USER, base))
        conn.execute("UPDATE instances SET created_at = datetime(?, '+' || id || ' seconds'),"
                     " updated_at = datetime(?, '+' || id || ' seconds')", (base, base))
        for col, shift in (("submitted_at", 0), ("started_at", 1), ("finished_at", 3)):
            conn.execute(f"UPDATE instances SET {col} = datetime(created_at, '+{shift} seconds')"
                         f" WHERE {col} IS NOT NULL")
        conn.execute("UPDATE instances SET stdout_path = NULL, stderr_path = NULL")
        for (iid, text) in conn.execute("SELECT id, error_text FROM instances "
                                        "WHERE error_text IS NOT NULL").fetchall():
            last = text.strip().splitlines()[-1].replace(str(repo), "<repo>")
            conn.execute("UPDATE instances SET error_text = ? WHERE id = ?", (last, iid))
        conn.execute("UPDATE transitions SET at = datetime(?, '+' || instance_id || ' seconds',"
                     " '+' || (id % 3) || ' seconds')", (base,))
        conn.execute("UPDATE verify_failures SET at = datetime(?, '+30 minutes')", (base,))


@pytest.fixture
def pinned(tmp_path: Path, sqlite_url: str, _tui_env: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    """Three runs with fixed ids; the second is mid-run (``report`` running again).

    The third ran with ``verify=True`` while ``stamp``'s check fails, so it has a verify
    failure.
    """
    names = (f"demo-20300101-{c * 10}" for c in itertools.cycle("abc"))
    monkeypatch.setattr("reflow.engine.run_records.new_run_id",
                        lambda workflow, now=None: next(names))
    made = _make_runs(tmp_path, sqlite_url, _tui_env)
    store = made.store
    (report,) = store.latest_instances(made.second, "report")
    (again,) = store.new_attempts([report.id], detail="rerun for the snapshot", force=True)
    store.apply([StateChange(again, frozenset({TaskState.RETRYING.value}),
                             TaskState.RUNNING.value, "running in-process")])
    store.set_run_status(made.second, RunState.RUNNING)
    monkeypatch.setenv("REFLOW_TUI_STALE", "1")
    demo.run_local(tmp_path / "c", store=sqlite_url, on_error="continue", verify=True)
    _pin(Path(sqlite_url.removeprefix("sqlite:///")), Path(__file__).resolve().parents[2])
    yield made
    store.close()
