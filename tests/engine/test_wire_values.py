"""Every wire mode end to end through run_local: what each instance actually receives."""

from __future__ import annotations

from typing import Annotated, Any

from reflow import Result, Workflow


def outputs(run: Any, task: str) -> list[Any]:
    doc = run.status(as_dict=True)
    rows = [i for i in doc["instances"] if i["task_name"] == task]
    rows.sort(key=lambda i: -1 if i["array_index"] is None else i["array_index"])
    from reflow.core.codec import decode

    return [decode(i["output"]) for i in rows]


def test_direct_fanout_gather(tmp_path, store_url) -> None:
    wf = Workflow("wires1")

    @wf.job()
    def a() -> list[int]:
        return [1, 2, 3]

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="a")]) -> int:
        return sum(xs)

    @wf.array_job()
    def sq(x: Annotated[int, Result(step="a")]) -> int:
        return x * x

    @wf.job()
    def gather(xs: Annotated[list[int], Result(step="sq")]) -> list[int]:
        return xs

    run = wf.run_local(tmp_path / "r", store=store_url)
    assert run.state == "SUCCESS"
    assert outputs(run, "total") == [6]
    assert outputs(run, "sq") == [1, 4, 9]
    assert outputs(run, "gather") == [[1, 4, 9]]


def test_broadcast_chain_and_flatten_modes(tmp_path, sqlite_url) -> None:
    wf = Workflow("wires2")

    @wf.job()
    def items() -> list[str]:
        return ["a", "b"]

    @wf.array_job()
    def whole(i: Annotated[str, Result(step="items")],
              all_: Annotated[list[str], Result(step="items", broadcast=True)]) -> str:
        return i + "/" + "".join(all_)

    @wf.array_job()
    def chained(x: Annotated[str, Result(step="whole")]) -> list[str]:
        return [x, x.upper()]

    @wf.array_job()
    def flat(x: Annotated[str, Result(step="chained")]) -> str:
        return x + "!"

    @wf.job()
    def gflat(xs: Annotated[list[str], Result(step="chained")]) -> int:
        return len(xs)

    @wf.array_job()
    def bg(x: Annotated[str, Result(step="whole")],
           every: Annotated[list[str], Result(step="whole", broadcast=True)]) -> int:
        return len(every)

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    assert outputs(run, "whole") == ["a/ab", "b/ab"]
    assert outputs(run, "chained") == [["a/ab", "A/AB"], ["b/ab", "B/AB"]]
    assert outputs(run, "flat") == ["a/ab!", "A/AB!", "b/ab!", "B/AB!"]
    assert outputs(run, "gflat") == [4]
    assert outputs(run, "bg") == [2, 2]


def test_steps_are_concatenated_in_order(tmp_path, sqlite_url) -> None:
    wf = Workflow("wires3")

    @wf.job()
    def a() -> list[int]:
        return [1, 2]

    @wf.job()
    def b() -> list[int]:
        return [10]

    @wf.array_job()
    def each(x: Annotated[int, Result(steps=["a", "b"])]) -> int:
        return x

    @wf.job()
    def joined(xs: Annotated[list[int], Result(steps=["a", "b"])]) -> list[int]:
        return xs

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    assert outputs(run, "each") == [1, 2, 10]
    assert outputs(run, "joined") == [[1, 2, 10]]


def test_empty_fan_out_creates_no_instances_and_gather_gets_empty_list(
    tmp_path, sqlite_url
) -> None:
    wf = Workflow("wires4")

    @wf.job()
    def none() -> list[int]:
        return []

    @wf.array_job()
    def each(x: Annotated[int, Result(step="none")]) -> int:
        return x

    @wf.array_job()
    def chained(x: Annotated[int, Result(step="each")]) -> int:
        return x

    @wf.job()
    def gather(xs: Annotated[list[int], Result(step="chained")]) -> int:
        return len(xs)

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    assert run.state == "SUCCESS"
    assert outputs(run, "each") == [] and outputs(run, "chained") == []
    assert outputs(run, "gather") == [0]


def test_run_dir_is_passed_and_parallel_workers(tmp_path, sqlite_url) -> None:
    import threading

    wf = Workflow("wires5")
    seen: set[str] = set()

    @wf.job()
    def a() -> list[int]:
        return list(range(20))

    @wf.array_job()
    def b(x: Annotated[int, Result(step="a")], run_dir) -> str:
        seen.add(threading.current_thread().name)
        return str(run_dir)

    run = wf.run_local(tmp_path / "r", store=sqlite_url, max_workers=4)
    assert set(outputs(run, "b")) == {str((tmp_path / "r").resolve())}
    assert all(name.startswith("reflow") for name in seen)


def test_progress_display_draws_every_task_and_the_final_state(tmp_path, sqlite_url,
                                                               capsys) -> None:
    wf = Workflow("shown")

    @wf.job()
    def a() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    run = wf.run_local(tmp_path / "r", store=sqlite_url, progress=True)
    out = capsys.readouterr().out
    assert run.run_id in out and "SUCCESS" in out
    assert "2/2" in out and "1/1" in out
    quiet = wf.run_local(tmp_path / "q", store=sqlite_url)  # stdout is no terminal here
    assert quiet.run_id not in capsys.readouterr().out
