"""Definition layer: decorators, wire-mode inference and every validation error (SPEC §1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Literal  # noqa: UP035 (List is what is tested)

import pytest

from reflow import Flow, Param, Result, RunDir, Workflow
from reflow.core.wiring import WireMode
from reflow.errors import MissingParameterError, ParameterError, WiringError


def modes(wf: Workflow) -> dict[str, dict[str, WireMode]]:
    g = wf.validate()
    return {t: {w.param: w.mode for w in ws} for t, ws in g.wires.items() if ws}


def test_decorator_returns_function_unchanged() -> None:
    wf = Workflow("w")

    @wf.job()
    def a(x: int = 1) -> int:
        return x + 1

    assert a(2) == 3
    assert wf.tasks["a"].func is a


def test_bare_decorator_and_array_job_alias() -> None:
    wf = Workflow("w")

    @wf.job
    def a() -> list[int]:
        return [1]

    @wf.array_job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    assert not wf.tasks["a"].is_array and wf.tasks["b"].is_array


@pytest.mark.parametrize(
    ("up_array", "up_ret", "down_array", "param", "broadcast", "expected"),
    [
        (False, int, False, int, False, WireMode.DIRECT),
        (False, list[str], True, str, False, WireMode.FAN_OUT),
        (False, list[str], True, list[str], False, WireMode.BROADCAST),
        (False, list[str], True, str, True, None),  # broadcast of a list into str: mismatch
        (False, list[str], True, list[str], True, WireMode.BROADCAST),
        (True, int, False, list[int], False, WireMode.GATHER),
        (True, list[int], False, list[int], False, WireMode.GATHER_FLATTEN),
        (True, int, True, int, False, WireMode.CHAIN),
        (True, list[int], True, int, False, WireMode.CHAIN_FLATTEN),
        (True, int, True, list[int], True, WireMode.BROADCAST_GATHERED),
    ],
)
def test_wire_mode_inference(
    up_array: bool, up_ret: Any, down_array: bool, param: Any, broadcast: bool,
    expected: WireMode | None,
) -> None:
    wf = Workflow("w")

    @wf.job()
    def root() -> list[int]:
        return [1]

    def up(x: Annotated[int, Result(step="root")]) -> Any:
        return x

    up.__annotations__["return"] = up_ret
    wf.job(array=up_array)(up) if up_array else wf.job()(_singleton_up(up_ret))

    def down(v: Any) -> int:
        return 0

    down.__annotations__["v"] = Annotated[param, Result(step="up", broadcast=broadcast)]
    if down_array:  # an array needs one per-element input to know its size
        def down_arr(i: Annotated[int, Result(step="root")], v: Any) -> int:
            return 0

        down_arr.__annotations__["v"] = down.__annotations__["v"]
        wf.job(name="down", array=True)(down_arr)
    else:
        wf.job()(down)
    if expected is None:
        with pytest.raises(WiringError) as err:
            wf.validate()
        assert "'up'" in str(err.value) and "'down'" in str(err.value)
    else:
        assert modes(wf)["down"]["v"] is expected


def _singleton_up(ret: Any) -> Any:
    def up() -> Any:
        return None

    up.__annotations__["return"] = ret
    return up


def test_steps_concatenate_and_every_step_is_type_checked() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> list[int]:
        return [1]

    @wf.job()
    def b() -> list[int]:
        return [2]

    @wf.array_job()
    def c(x: Annotated[int, Result(steps=["a", "b"])]) -> int:
        return x

    assert modes(wf)["c"]["x"] is WireMode.FAN_OUT

    wf2 = Workflow("w2")
    wf2.job()(_named("a", list[int]))
    wf2.job()(_named("b", list[str]))

    @wf2.array_job()
    def d(x: Annotated[int, Result(steps=["a", "b"])]) -> int:
        return x

    with pytest.raises(WiringError, match=r"'b'.*'d'"):
        wf2.validate()


def _named(name: str, ret: Any) -> Any:
    def f() -> Any:
        return None

    f.__name__ = name
    f.__annotations__["return"] = ret
    return f


def test_type_mismatch_names_both_ends() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> int:
        return 1

    @wf.job()
    def b(p: Annotated[Path, Result(step="a")]) -> None:
        return None

    with pytest.raises(TypeError) as err:
        wf.validate()
    assert "task 'a'" in str(err.value) and "task 'b'" in str(err.value)
    assert "'p: Path'" in str(err.value)


def test_unknown_step_suggests_closest_name() -> None:
    wf = Workflow("w")

    @wf.job()
    def prepare() -> int:
        return 1

    @wf.job()
    def use(x: Annotated[int, Result(step="prepaer")]) -> int:
        return x

    with pytest.raises(ValueError, match="Did you mean 'prepare'"):
        wf.validate()


def test_unknown_after_name_suggests() -> None:
    wf = Workflow("w")

    @wf.job()
    def setup() -> None:
        return None

    @wf.job(after=["setpu"])
    def use() -> None:
        return None

    with pytest.raises(ValueError, match="Did you mean 'setup'"):
        wf.validate()


def test_cycle_names_its_members() -> None:
    wf = Workflow("w")

    @wf.job(after=["c"])
    def a() -> int:
        return 1

    @wf.job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    @wf.job()
    def c(x: Annotated[int, Result(step="b")]) -> int:
        return x

    with pytest.raises(ValueError) as err:
        wf.validate()
    msg = str(err.value)
    # The members in edge order, closed: a -> b -> c -> a.
    assert "the workflow has a cycle: a -> b -> c -> a;" in msg


def test_cycle_outside_the_first_tasks_and_self_dependency() -> None:
    wf = Workflow("w")

    @wf.job()
    def root() -> int:
        return 1

    @wf.job(after=["late"])
    def early(x: Annotated[int, Result(step="root")]) -> int:
        return x

    @wf.job(after=["early"])
    def late() -> int:
        return 2

    with pytest.raises(ValueError, match=r"cycle: early -> late -> early;"):
        wf.validate()

    alone = Workflow("s")

    @alone.job(after=["itself"])
    def itself() -> int:
        return 1

    with pytest.raises(ValueError, match=r"cycle: itself -> itself;"):
        alone.validate()


def test_graph_views_agree_with_networkx() -> None:
    wf = Workflow("w")

    @wf.job()
    def make() -> list[int]:
        return [1]

    @wf.array_job()
    def each(x: Annotated[int, Result(step="make")]) -> int:
        return x

    @wf.job(after=["make"])
    def audit() -> None:
        return None

    @wf.job(after=["audit"])
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        return sum(xs)

    graph = wf.validate()
    nx_graph = wf.graph
    assert set(nx_graph.edges) == {("make", "each"), ("make", "audit"), ("each", "total"),
                                   ("audit", "total")}
    assert nx_graph.edges["make", "audit"]["kind"] == "order"
    assert nx_graph.edges["each", "total"]["kind"] == "data"
    assert graph.generations() == [["make"], ["each", "audit"], ["total"]]
    assert graph.descendants(["audit"]) == {"audit", "total"}
    assert graph.descendants(["make"]) == {"make", "each", "audit", "total"}
    assert graph.dependencies("total") == ["audit", "each"]


def test_decorator_rejects_duplicates_and_array_without_result() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> int:
        return 1

    with pytest.raises(ValueError, match="defined twice"):
        wf.job(name="a")(lambda: 2)
    with pytest.raises(ValueError, match="no Result input"):

        @wf.array_job()
        def b(x: int = 1) -> int:
            return x


def test_result_requires_exactly_one_of_step_and_steps() -> None:
    with pytest.raises(ValueError):
        Result()
    with pytest.raises(ValueError):
        Result(step="a", steps=["b"])


def test_array_with_only_broadcast_inputs_is_rejected() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> list[int]:
        return [1]

    @wf.array_job()
    def b(x: Annotated[list[int], Result(step="a", broadcast=True)]) -> int:
        return 0

    with pytest.raises(WiringError, match="size is unknown"):
        wf.validate()


def test_include_prefixes_and_rewrites_references() -> None:
    flow = Flow("sub")

    @flow.job()
    def load() -> list[int]:
        return [1, 2]

    @flow.array_job()
    def square(x: Annotated[int, Result(step="load")]) -> int:
        return x * x

    wf = Workflow("main")

    @wf.job(after=["raw_square"])
    def done() -> None:
        return None

    wf.include(flow, prefix="raw")
    g = wf.validate()
    assert set(g.specs) == {"done", "raw_load", "raw_square"}
    assert g.wires["raw_square"][0].steps == ("raw_load",)
    assert g.order.index("done") > g.order.index("raw_square")
    with pytest.raises(ValueError, match="defined twice"):
        wf.include(flow, prefix="raw")


def test_include_with_a_clash_on_a_later_task_adds_nothing() -> None:
    flow = Flow("sub")
    flow.job()(_named("start", int))
    flow.job()(_named("sq", int))
    wf = Workflow("main")
    wf.job()(_named("sq", int))
    with pytest.raises(ValueError, match="task 'sq' is defined twice"):
        wf.include(flow)
    assert list(wf.tasks) == ["sq"]


def test_topological_order_breaks_ties_by_registration() -> None:
    wf = Workflow("w")
    for name in ("z", "y", "x"):
        wf.job()(_named(name, int))
    assert wf.topological_order() == ["z", "y", "x"]


def test_parameters_missing_reported_all_at_once_as_flags() -> None:
    from reflow.core.parameters import resolve_parameters

    wf = Workflow("w")

    @wf.job()
    def a(start: Annotated[str, Param(help="s")], end: str, run_dir: RunDir = RunDir()) -> int:
        return 1

    @wf.job()
    def b(x: Annotated[int, Result(step="a")],
          level: Annotated[int, Param(namespace="local")]) -> int:
        return x

    with pytest.raises(MissingParameterError) as err:
        resolve_parameters(wf.validate().specs, {})
    msg = str(err.value)
    assert "--start" in msg and "--end" in msg and "--b-level" in msg
    assert isinstance(err.value, TypeError)
    per_task, _ = resolve_parameters(wf.validate().specs, {"start": "1", "end": "2",
                                                           "b_level": 3})
    assert per_task == {"a": {"start": "1", "end": "2"}, "b": {"level": 3}}


def test_literal_choices_and_unknown_parameter() -> None:
    from reflow.core.parameters import resolve_parameters

    wf = Workflow("w")

    @wf.job()
    def a(model: Literal["era5", "icon"] = "era5") -> int:
        return 1

    specs = wf.validate().specs
    with pytest.raises(ParameterError, match="choose one of"):
        resolve_parameters(specs, {"model": "gfs"})
    with pytest.raises(ParameterError, match="Did you mean 'model'"):
        resolve_parameters(specs, {"modle": "era5"})


def test_describe_shape() -> None:
    wf = Workflow("w")

    @wf.job()
    def a(n: Annotated[int, Param(help="count")] = 2) -> list[int]:
        return list(range(n))

    @wf.array_job(verify=lambda v: True)
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    d = wf.describe()
    assert d["schema_version"] == 1 and d["name"] == "w"
    assert [t["name"] for t in d["tasks"]] == ["a", "b"]
    tb = d["tasks"][1]
    assert tb["is_array"] and tb["has_verify"] and tb["dependencies"] == ["a"]
    assert tb["result_deps"]["x"]["steps"] == ["a"]
    (p,) = d["cli_params"]
    assert p["flag"] == "--n" and p["default"] == 2 and p["required"] is False
    import json

    json.dumps(d)


def test_dag_renderings() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> list[int]:
        return [1]

    @wf.array_job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    g = wf.validate()
    assert g.render("text").splitlines() == ["a", "b [array]  <- a"]
    mer = g.render("mermaid")
    assert mer.startswith("flowchart TD") and "b[[b]]" in mer and "a --> b" in mer
    dot = g.render("dot")
    assert dot.startswith("digraph reflow {") and '"a" -> "b";' in dot and "peripheries=2" in dot


def test_ordering_edges_keep_the_edge_shapes_and_are_styled_apart() -> None:
    wf = Workflow("w")

    @wf.job()
    def a() -> int:
        return 1

    @wf.job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    @wf.job(after=["a"])
    def c() -> int:
        return 0

    g = wf.validate()
    mer = g.render("mermaid").splitlines()
    assert "    a --> b" in mer and "    a --> c" in mer
    assert mer[-1] == "    linkStyle 1 stroke-dasharray: 5 5"  # the second edge: a -> c
    dot = g.render("dot")
    assert '    "a" -> "b";' in dot and '        "a" -> "c";' in dot
    assert dot.index("edge [style=dashed]") < dot.index('"a" -> "c";') < dot.rindex("}")


def test_submit_options_given_as_one_string_are_split_like_a_command_line() -> None:
    wf = Workflow("opts")

    @wf.job(submit_options="--comment='a b' --exclusive")
    def a() -> int:
        return 1

    @wf.job(submit_options=["--qos=high"])
    def b() -> int:
        return 2

    assert wf.tasks["a"].config.submit_options == ("--comment=a b", "--exclusive")
    assert wf.tasks["b"].config.submit_options == ("--qos=high",)


@pytest.mark.parametrize(("options", "message"), [
    ({"mem": "lots"}, "task 'job': memory 'lots' is not understood"),
    ({"time": "forever"}, "task 'job': time 'forever' is not understood"),
    ({"cpus": 0}, "task 'job': cpus=0 must be a whole number of at least 1"),
    ({"array_parallelism": 0}, "array_parallelism=0 must be a whole number of at least 1"),
    ({"retries": -1}, "retries=-1 must be a whole number of at least 0"),
    ({"retry_on": ("OOM",)}, "retry_on='OOM' is neither an exit code (int) nor a scheduler"),
    ({"escalate": {"memory": 2.0}}, "cannot scale resource 'memory'"),
    ({"escalate": {"mem": 0}}, "scale factor for mem must be a positive number, not 0"),
    ({"escalate": {"mem": "2"}}, "scale factor for mem must be a positive number, not '2'"),
    ({"partition": "a", "queue": "b"}, "partition='a' and queue='b' disagree"),
], ids=repr)
def test_decorator_rejects_resources_and_retry_policies_a_driver_could_not_use(
        options: dict[str, Any], message: str) -> None:
    """Found at definition, naming the task: not when a driver submits or first retries it
    (a bad escalate key killed the driver and left the run RUNNING)."""
    wf = Workflow("resources")
    with pytest.raises(ValueError) as err:
        wf.job(**options)(job)
    assert message in str(err.value)
    assert wf.tasks == {}


def test_one_retry_on_state_may_be_given_alone() -> None:
    wf = Workflow("retry_one")
    wf.job(retries=2, retry_on="TIMEOUT")(job)
    wf.job(name="by_code", retry_on=137)(job)
    assert wf.tasks["job"].config.retry_on == ("TIMEOUT",)  # not seven letters
    assert wf.tasks["by_code"].config.retry_on == (137,)


def job() -> int:
    return 1


def a_int(n: Annotated[int, Param()] = 1) -> int:
    return n


def b_str(n: Annotated[str, Param()] = "1") -> int:
    return 1


def b_other_default(n: Annotated[int, Param()] = 2) -> int:
    return n


def choice_pq(m: Annotated[Literal["p", "q"], Param()]) -> int:
    return 1


def choice_rs(m: Annotated[Literal["r", "s"], Param()]) -> int:
    return 1


def tasks_a_b(first: Any, second: Any) -> Workflow:
    wf = Workflow("sharing")
    wf.job(name="a")(first)
    wf.job(name="b")(second)
    return wf


@pytest.mark.parametrize(("first", "second", "message"), [
    (a_int, b_str, "global parameter 'n' of task 'b' is str but parameter 'n' of task 'a' is int"),
    (a_int, b_other_default,
     "global parameter 'n' of task 'b' defaults to 2 but parameter 'n' of task 'a' to 1"),
    (choice_pq, choice_rs, "they share --m, so give them one type"),
], ids=["types", "defaults", "choices"])
def test_global_parameters_sharing_a_flag_must_agree(first: Any, second: Any,
                                                      message: str) -> None:
    """Otherwise one task silently got a value the other's type or choices allow."""
    with pytest.raises(ValueError, match="make one Param\\(namespace='local'\\)") as err:
        tasks_a_b(first, second).validate()
    assert message in str(err.value)


def test_global_parameters_that_agree_share_one_flag() -> None:
    wf = tasks_a_b(a_int, a_int)
    wf.validate()
    (flag,) = wf.describe()["cli_params"]
    assert (flag["flag"], flag["default"]) == ("--n", 1)


def test_parameters_whose_names_run_together_are_refused() -> None:
    """task a_b's local c and task a's local b_c would both be --a-b-c."""
    wf = Workflow("collide")

    @wf.job()
    def a_b(c: Annotated[int, Param(namespace="local")] = 1) -> int:
        return c

    @wf.job()
    def a(b_c: Annotated[int, Param(namespace="local")] = 2) -> int:
        return b_c

    with pytest.raises(ValueError, match="both become the flag --a-b-c; rename one"):
        wf.validate()


def test_short_flags_are_one_free_letter() -> None:
    for bad in ("h", "-h", "nn", ""):
        with pytest.raises(ValueError, match="use one letter or digit other than 'h'"):
            Param(short=bad)
    wf = Workflow("shorts")

    @wf.job()
    def a(x: Annotated[int, Param(short="x")] = 1, y: Annotated[int, Param(short="-x")] = 2,
          ) -> int:
        return x + y

    with pytest.raises(ValueError, match="asks for the short flag -x, which --x already has"):
        wf.validate()


@pytest.mark.parametrize("prefix", ["raw-x", "1a", "a b"])
def test_include_prefix_must_start_a_task_name(prefix: str) -> None:
    flow = Flow("f")
    flow.job()(job)
    wf = Workflow("w")
    with pytest.raises(ValueError, match=r"use a Python identifier, e\.g\. prefix='raw'"):
        wf.include(flow, prefix=prefix)
    assert wf.tasks == {}


def test_list_parameters_from_python_are_lists_of_allowed_values(tmp_path: Path) -> None:
    """The command line cannot give a list parameter a plain string, nor Python."""
    wf = Workflow("lists")

    @wf.job()
    def a(files: Annotated[list[str], Param()],
          modes: Annotated[list[Literal["x", "y"]], Param()] = ["x"]) -> int:  # noqa: B006
        return len(files) + len(modes)

    with pytest.raises(ParameterError, match=r"expects a list of str, got str 'abc'; pass a "
                                             r"list, e.g. \['abc'\]"):
        wf.run_local(tmp_path / "r", store=f"sqlite:///{tmp_path}/m.db", files="abc")
    with pytest.raises(ParameterError, match="parameter --modes got 'z'; choose one of"):
        wf.run_local(tmp_path / "r", store=f"sqlite:///{tmp_path}/m.db", files=[],
                     modes=["x", "z"])
    assert wf.describe()["cli_params"][1]["choices"] == ["x", "y"]


def test_whole_numbers_written_otherwise_are_still_taken() -> None:
    """cpus="4" and 4.0 worked before the decorator checked its options; they still do."""
    wf = Workflow("numbers")
    wf.job(cpus="4", retries=2.0)(job)
    assert (wf.tasks["job"].config.cpus, wf.tasks["job"].config.retries) == (4, 2)
    with pytest.raises(ValueError, match=r"cpus=2\.5 must be a whole number"):
        wf.job(name="half", cpus=2.5)(job)


def list_typing(xs: Annotated[List[str], Param()] = ["a"]) -> int:  # noqa: B006, UP006
    return len(xs)


def list_builtin(xs: Annotated[list[str], Param()] = ["a"]) -> int:  # noqa: B006
    return len(xs)


def short_s(start: Annotated[str, Param(short="s")] = "x") -> int:
    return 1


def short_t(start: Annotated[str, Param(short="t")] = "x") -> int:
    return 1


def test_one_type_spelt_two_ways_shares_a_flag_but_one_flag_has_one_short_form() -> None:
    tasks_a_b(list_typing, list_builtin).validate()
    with pytest.raises(ValueError, match="--start already has -s; give both the same letter"):
        tasks_a_b(short_s, short_t).validate()


@pytest.mark.parametrize("name", ["climate-era5", "era5.v2", "a", "x_1-b"])
def test_workflow_names_may_hold_dashes_as_the_older_package_allowed(name: str) -> None:
    assert Workflow(name).name == name
    assert Flow(name).name == name


@pytest.mark.parametrize("name", ["", "-lead", "trail-", "a b", "a/b", "_x", "ä"])
def test_workflow_names_that_would_break_run_ids_or_paths_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"workflow name {name!r} is not valid"):
        Workflow(name)
