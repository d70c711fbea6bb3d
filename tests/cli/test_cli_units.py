"""The CLI's pure parts: value parsing, list flags, time filters, flag generation, loading."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
import typer

from reflow import Param, Workflow
from reflow.cli.flags import WorkflowFlags, spread_values
from reflow.cli.loading import load_pipeline
from reflow.cli.submit import RESERVED_FLAGS, workflow_flags
from reflow.cli.timespec import parse_when
from reflow.cli.values import metavar, parse_value
from reflow.core.parameters import collect_parameters
from reflow.errors import ParameterError, ReflowError


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@pytest.mark.parametrize(
    ("annotation", "given", "expected"),
    [
        (int, "1_000", 1000),
        (int, "-3", -3),
        (float, "2.5", 2.5),
        (str, "x y", "x y"),
        (Path, "a/b", Path("a/b")),
        (Path | None, "a", Path("a")),
        (
            datetime,
            "2024-05-01T12:30:00+02:00",
            datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
        (date, "2024-05-01", date(2024, 5, 1)),
        (
            UUID,
            "12345678-1234-5678-1234-567812345678",
            UUID("12345678-1234-5678-1234-567812345678"),
        ),
        (Literal["a", "b"], "b", "b"),
        (Literal[1, 2], "2", 2),
        (Color, "blue", Color.BLUE),
        (dict[str, Any], '{"k": [1]}', {"k": [1]}),
        (list[int], ["1", "2"], [1, 2]),
        (tuple[float, ...], ["1", "2.5"], (1.0, 2.5)),
        (list[Literal["x", "y"]], ["y", "x"], ["y", "x"]),
        (Any, "raw", "raw"),
    ],
)
def test_values_parse_by_annotation(annotation: Any, given: Any, expected: Any) -> None:
    value = parse_value(annotation, given, "--p")
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "given", "message"),
    [
        (int, "x", "--p got 'x'; pass a whole number"),
        (float, "1,5", "--p got '1,5'; pass a number"),
        (datetime, "yesterday", "ISO-8601 date-time"),
        (Literal["a", "b"], "c", "choose one of: a, b"),
        (list[int], ["1", "two"], "--p got 'two'"),
        (dict[str, Any], "[1]", "JSON object"),
    ],
)
def test_bad_values_name_the_flag_and_what_it_accepts(
    annotation: Any, given: Any, message: str
) -> None:
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_value(annotation, given, "--p")


def test_metavars_describe_the_expected_value() -> None:
    assert metavar(list[int]) == "INT..."
    assert metavar(Literal["a", "b"]) == "[a|b]"
    assert metavar(Path | None) == "PATH"
    assert metavar(datetime) == "DATETIME"


def test_list_flags_take_several_values_after_one_flag() -> None:
    multi = {"--files", "-f"}
    assert spread_values(["--files", "a", "b", "--n", "3", "-f", "c", "d"], multi) == [
        "--files",
        "a",
        "--files",
        "b",
        "--n",
        "3",
        "-f",
        "c",
        "-f",
        "d",
    ]
    # negative numbers are values; "--" stops the rewriting; other flags are untouched
    assert spread_values(["--files", "-1", "-2", "--", "x", "y"], multi) == [
        "--files",
        "-1",
        "--files",
        "-2",
        "--",
        "x",
        "y",
    ]
    assert spread_values(["--run-dir", "d", "--files=a"], multi) == ["--run-dir", "d", "--files=a"]
    # a list flag with no value goes last, where click says it needs one, instead of
    # swallowing the next flag as its value
    assert spread_values(["--files", "--n", "3"], multi) == ["--n", "3", "--files"]
    assert spread_values(["--n", "3", "-f"], multi) == ["--n", "3", "-f"]


def test_time_filters_accept_dates_times_and_ages() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_when("12h", "--since", end_of_day=False, now=now) == now - timedelta(hours=12)
    assert parse_when("7d", "--since", end_of_day=False, now=now) == now - timedelta(days=7)
    assert parse_when("2024-05-01T00:00:00+00:00", "--since", end_of_day=False) == datetime(
        2024, 5, 1, tzinfo=UTC
    )
    start = parse_when("2024-05-01", "--since", end_of_day=False)
    end = parse_when("2024-05-01", "--until", end_of_day=True)
    assert end - start == timedelta(days=1)
    assert start.tzinfo is not None
    with pytest.raises(typer.BadParameter, match="not a date or an age"):
        parse_when("last tuesday", "--since", end_of_day=False)


def _flags_workflow() -> Workflow:
    wf = Workflow("flags")

    @wf.job()
    def a(
        force: Annotated[bool, Param(help="clashes with submit's --force")] = False,
        size: Annotated[int, Param(help="size", short="s")] = 1,
    ) -> int:
        return size

    @wf.job()
    def b(
        size: Annotated[int, Param(help="shared global")] = 1,
        level: Annotated[int, Param(namespace="local")] = 0,
    ) -> int:
        return size + level

    return wf


def test_flags_merge_globals_and_refuse_clashes_with_submit_options() -> None:
    flags = workflow_flags(_flags_workflow())
    assert [f.param.flag for f in flags.flags] == ["--size", "--b-level"]
    assert flags.flags[0].param.tasks == ("a", "b")
    assert flags.flags[0].declarations() == ["--size", "-s"]
    flags.check()  # 'force' has a default: it keeps it, only its flag is unavailable
    wf = Workflow("needs")

    @wf.job()
    def c(force: Annotated[bool, Param(help="required, and clashes")]) -> bool:
        return force

    with pytest.raises(ParameterError, match="--force, which submit already uses"):
        workflow_flags(wf).check()


def test_only_given_flags_become_run_parameters() -> None:
    wf = _flags_workflow()
    reserved = RESERVED_FLAGS - {"--force", "--no-force"}
    flags = WorkflowFlags(collect_parameters(wf.tasks.values()), reserved)
    names = {f.param.key: f.argname for f in flags.flags}
    given = {names["force"]: True, names["size"]: "7", names["b_level"]: None}
    assert flags.run_parameters(given) == {"force": True, "size": 7}


def test_load_pipeline_finds_selects_and_explains(tmp_path: Path) -> None:
    one = tmp_path / "one.py"
    one.write_text("from reflow import Workflow\nwf = Workflow('solo')\n")
    wf = load_pipeline(str(one))
    assert wf.name == "solo"
    assert wf.entrypoint() == str(one.resolve())  # re-importable by path, not a module name

    two = tmp_path / "two.py"
    two.write_text("from reflow import Workflow\na = Workflow('first')\nb = Workflow('second')\n")
    with pytest.raises(ReflowError, match=r"several workflows \(first, second\).*:NAME"):
        load_pipeline(str(two))
    assert load_pipeline(f"{two}:b").name == "second"
    assert load_pipeline(f"{two}:first").name == "first"
    with pytest.raises(ReflowError, match=r"no workflow 'secnd'\. Did you mean 'second'"):
        load_pipeline(f"{two}:secnd")

    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(ReflowError, match="defines no Workflow"):
        load_pipeline(str(empty))
    with pytest.raises(ReflowError, match="does not exist"):
        load_pipeline(str(tmp_path / "missing.py"))
    with pytest.raises(ReflowError, match="neither a file nor an importable module"):
        load_pipeline("no_such_module_xyz:wf")


def test_parameter_flags_accept_the_spellings_users_type(tmp_path: Path) -> None:
    """``--<task>-<param>`` as the spec writes it and the Python keyword as a flag both set
    the dashed flag."""
    from reflow.cli.script import run_script_cli
    from reflow.store import Store

    script = tmp_path / "spelled.py"
    script.write_text(
        "from typing import Annotated\n"
        "from reflow import Param, Workflow\n"
        "wf = Workflow('spelled')\n"
        "@wf.job()\n"
        "def my_task(\n"
        "    b_val: Annotated[int, Param(namespace='local')] = 1,\n"
        "    dry_mode: Annotated[bool, Param(namespace='local')] = False,\n"
        "    start_day: Annotated[str, Param()] = 'mon',\n"
        ") -> str:\n"
        "    return f'{b_val}{dry_mode}{start_day}'\n"
    )
    wf = load_pipeline(str(script))
    assert workflow_flags(wf).spellings() == {
        "--my_task-b_val": "--my-task-b-val", "--my_task_b_val": "--my-task-b-val",
        "--my_task-dry_mode": "--my-task-dry-mode", "--no-my_task-dry_mode":
        "--no-my-task-dry-mode", "--my_task_dry_mode": "--my-task-dry-mode",
        "--no-my_task_dry_mode": "--no-my-task-dry-mode", "--start_day": "--start-day",
    }
    store = tmp_path / "m.db"
    for n, args in enumerate([
        ["--my_task-b_val", "3", "--my_task-dry_mode", "--start_day=tue"],
        ["--my_task_b_val=3", "--my-task-dry-mode", "--start-day", "tue"],
    ]):
        with pytest.raises(SystemExit) as done:
            run_script_cli(wf, ["submit", "--run-dir", str(tmp_path / f"r{n}"), "--store-path",
                                str(store), "--executor", "dry-run", *args])
        assert done.value.code == 0
    recorded = [r.parameters for r in Store.open(str(store)).list_runs(workflow="spelled")]
    assert len(recorded) == 2
    assert all('"my_task_b_val":3' in p and '"my_task_dry_mode":true' in p
               and '"start_day":"tue"' in p for p in recorded), recorded


def test_an_enum_parameter_shows_and_describes_the_values_its_flag_takes() -> None:
    wf = Workflow("enums")

    @wf.job()
    def paint(color: Annotated[Color, Param(help="hue")] = Color.BLUE,
              more: Annotated[list[Color], Param()] = [Color.RED]) -> str:  # noqa: B006
        return color.value

    flags = {f.param.name: f for f in workflow_flags(wf).flags}
    assert "[default: blue]" in flags["color"].help_text()
    assert "[default: red]" in flags["more"].help_text()
    described = {p["name"]: p for p in wf.describe()["cli_params"]}
    assert (described["color"]["default"], described["color"]["choices"]) == (
        "blue", ["red", "blue"])
    assert described["more"]["default"] == ["red"]
    assert flags["color"].param.choices == ["red", "blue"]
    assert parse_value(Color, described["color"]["default"], "--color") is Color.BLUE


def test_logs_of_an_instance_that_wrote_nothing_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reflow.cli import logs

    out, err = tmp_path / "t.out", tmp_path / "t.err"
    out.write_text("")
    err.write_text("")
    logs.show([out, err], "t of r1")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"(the log files of t of r1 are empty: {out}, {err})"
    err.write_text("boom\n")
    logs.show([out, err], "t of r1")
    assert capsys.readouterr().err == ""
    # following an instance that has ended and wrote nothing says so too
    err.write_text("")
    logs.follow([out, err], lambda: True, "t of r1")
    assert capsys.readouterr().err.strip() == f"(the log files of t of r1 are empty: {out}, {err})"
