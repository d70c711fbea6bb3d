"""The run screen's DAG text: readable in a 34-column panel for long pipelines."""

from __future__ import annotations

from reflow.tui.dag import MAX_INDENT, render_dag
from reflow.tui.data import TaskSummary


def chain(n: int) -> list[TaskSummary]:
    return [TaskSummary(f"t{i:02d}", i, False, (f"t{i - 1:02d}",) if i else (), (),
                        {"SUCCESS": 1}, 0, 1) for i in range(n)]


def test_deep_levels_stop_indenting() -> None:
    lines = render_dag(chain(30)).plain.splitlines()
    assert len(lines) == 30
    assert lines[29].startswith("  " * MAX_INDENT + "✔ t29")
    assert lines[1].startswith("  ✔ t01")


def test_a_window_of_lines_follows_the_selected_task() -> None:
    tasks = chain(30)
    assert [x.split()[1] for x in render_dag(tasks, "t00", 9).plain.splitlines()] == [
        f"t{i:02d}" for i in range(9)]
    middle = render_dag(tasks, "t15", 9).plain.splitlines()
    assert len(middle) == 9 and "t15" in middle[4]
    end = render_dag(tasks, "t29", 9).plain.splitlines()
    assert "t29" in end[-1] and "t21" in end[0]
    assert len(render_dag(chain(5), "t04", 9).plain.splitlines()) == 5


def test_large_counts_are_compact_so_they_fit_the_panel() -> None:
    """A 20,000-element array showed `20000/20000 c0 r2…`: the recomputed count was cut."""
    big = TaskSummary("square", 0, True, (), (), {"SUCCESS": 19_950, "RUNNING": 50}, 0, 19_950)
    (line,) = render_dag([big]).plain.splitlines()
    assert line.endswith(" square[] 19.9k/20k c0 r19.9k")
    assert len(line) <= 32


def test_a_long_workflow_name_is_cut_once_and_the_run_id_keeps_what_tells_runs_apart() -> None:
    from reflow.tui.runs_screen import NAME_WIDTH, short_names

    assert short_names("demo", "demo-20300101-bbbbbbbbbb") == ("demo", "demo-20300101-bbbbbbbbbb")
    name = "climate_preprocessing_era5_daily"
    workflow, run_id = short_names(name, f"{name}-20300101-0123456789")
    assert workflow == name[:NAME_WIDTH - 1] + "…" and len(workflow) == NAME_WIDTH
    assert run_id == "…-20300101-0123456789"
