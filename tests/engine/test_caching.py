"""The caching rules of SPEC §3, end to end through run_local on a real store."""

from __future__ import annotations

import enum
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Param, Result, RunDir, Workflow
from reflow.errors import ParameterError, RunFailedError


class Resampling(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"


def reasons_of(run: Any, task: str) -> list[str]:
    rows = [i for i in run.status(as_dict=True)["instances"] if i["task_name"] == task]
    rows.sort(key=lambda i: -1 if i["array_index"] is None else i["array_index"])
    return [i["reason"] for i in rows]


def make_pipeline(name: str = "cache", calls: list[str] | None = None) -> Workflow:
    wf = Workflow(name)
    log = calls if calls is not None else []

    @wf.job()
    def items(n: Annotated[int, Param(help="count")] = 3) -> list[int]:
        log.append("items")
        return list(range(n))

    @wf.array_job()
    def double(x: Annotated[int, Result(step="items")],
               factor: Annotated[int, Param(help="factor")] = 2) -> int:
        log.append(f"double{x}")
        return x * factor

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="double")]) -> int:
        log.append("total")
        return sum(xs)

    return wf


def test_second_run_is_fully_cached_with_links_to_sources(tmp_path, store_url) -> None:
    calls: list[str] = []
    wf = make_pipeline(calls=calls)
    first = wf.run_local(tmp_path / "a", store=store_url)
    assert reasons_of(first, "double") == ["new"] * 3
    calls.clear()
    second = wf.run_local(tmp_path / "b", store=store_url)
    assert calls == []
    doc = second.status(as_dict=True)
    assert all(i["cached"] and i["reason"] == "cached" for i in doc["instances"])
    sources = {i["cache_source"] for i in doc["instances"]}
    firsts = {i["id"] for i in first.status(as_dict=True)["instances"]}
    assert sources == firsts
    assert all(len(i["identity"]) == 64 for i in doc["instances"])


def test_changed_parameter_recomputes_only_its_consumers(tmp_path, store_url) -> None:
    calls: list[str] = []
    wf = make_pipeline(calls=calls)
    wf.run_local(tmp_path / "a", store=store_url)
    calls.clear()
    run = wf.run_local(tmp_path / "b", store=store_url, factor=3)
    assert reasons_of(run, "items") == ["cached"]
    assert reasons_of(run, "double") == ["param-changed:factor"] * 3
    assert reasons_of(run, "total") == ["upstream-changed:xs"]
    assert "items" not in calls


def test_default_passed_explicitly_has_same_identity(tmp_path, sqlite_url) -> None:
    wf = make_pipeline()
    wf.run_local(tmp_path / "a", store=sqlite_url)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, n=3, factor=2)
    assert set(reasons_of(run, "double")) == {"cached"}


def test_python_values_are_brought_to_the_annotated_type(tmp_path, sqlite_url) -> None:
    """``"/x"`` for a Path, ``1`` for a float, ISO text for a datetime: the values the command
    line would parse, so both give one identity; a value that cannot be the type is refused."""
    wf = Workflow("typed")
    seen: list[tuple[Any, ...]] = []

    @wf.job()
    def a(
        p: Annotated[Path, Param()],
        scale: Annotated[float, Param()] = 1,
        when: Annotated[datetime, Param()] = datetime(2024, 1, 1),
        paths: Annotated[list[Path], Param()] = [],  # noqa: B006
    ) -> str:
        seen.append((p, scale, when, paths))
        return "ok"

    first = wf.run_local(tmp_path / "a", store=sqlite_url, p="/x", paths=("/y",))
    assert seen == [(Path("/x"), 1.0, datetime(2024, 1, 1), [Path("/y")])]
    assert isinstance(seen[0][1], float)
    again = wf.run_local(tmp_path / "b", store=sqlite_url, p=Path("/x"), scale=1.0,
                         when="2024-01-01T00:00:00", paths=[Path("/y")])
    assert reasons_of(again, "a") == ["cached"]
    assert first.status(as_dict=True)["run"]["parameters"]["p"] == {"$t": "path", "v": "/x"}
    with pytest.raises(ParameterError, match="parameter 'scale' expects float, got str"):
        wf.run_local(tmp_path / "c", store=sqlite_url, p="/x", scale="big")


def test_appending_one_item_recomputes_exactly_one_element(tmp_path, store_url) -> None:
    calls: list[str] = []
    wf = make_pipeline(calls=calls)
    wf.run_local(tmp_path / "a", store=store_url, n=5)
    calls.clear()
    run = wf.run_local(tmp_path / "b", store=store_url, n=6)
    assert reasons_of(run, "double") == ["cached"] * 5 + ["upstream-changed:x"]
    assert [c for c in calls if c.startswith("double")] == ["double5"]


def test_reordered_fan_out_recomputes_nothing_new(tmp_path, sqlite_url) -> None:
    wf = Workflow("order")
    data = {"v": [1, 2, 3]}

    @wf.job()
    def items() -> list[int]:
        return list(data["v"])

    @wf.array_job()
    def inc(x: Annotated[int, Result(step="items")]) -> int:
        return x + 1

    wf.run_local(tmp_path / "a", store=sqlite_url)
    data["v"] = [3, 1, 2]
    run = wf.run_local(tmp_path / "b", store=sqlite_url, force_tasks=["items"])
    assert reasons_of(run, "items") == ["forced"]
    assert reasons_of(run, "inc") == ["cached"] * 3


def test_version_bump_recomputes_task_and_downstream_only_if_output_changes(
    tmp_path, sqlite_url
) -> None:
    def build(version: str) -> Workflow:
        wf = Workflow("ver")

        @wf.job(version=version)
        def a() -> int:
            return 1

        @wf.job()
        def b(x: Annotated[int, Result(step="a")]) -> int:
            return x + 1

        return wf

    build("1").run_local(tmp_path / "a", store=sqlite_url)
    run = build("2").run_local(tmp_path / "b", store=sqlite_url)
    assert reasons_of(run, "a") == ["version-changed"]
    assert reasons_of(run, "b") == ["cached"]  # same output, same downstream identity


def test_force_force_tasks_and_cache_disabled(tmp_path, sqlite_url) -> None:
    wf = make_pipeline()
    wf.run_local(tmp_path / "a", store=sqlite_url)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, force=True)
    assert set(reasons_of(run, "double")) == {"forced"}
    run = wf.run_local(tmp_path / "c", store=sqlite_url, force_tasks=["total"])
    assert reasons_of(run, "double") == ["cached"] * 3 and reasons_of(run, "total") == ["forced"]
    with pytest.raises(KeyError, match=r"force_tasks \(--force-tasks\): unknown task 'totl'"
                       r"\. Did you mean 'total'"):
        wf.run_local(tmp_path / "d", store=sqlite_url, force_tasks=["totl"])
    # one name as a plain string is that name, not its letters; commas join names
    run = wf.run_local(tmp_path / "e", store=sqlite_url, force_tasks="total")
    assert reasons_of(run, "total") == ["forced"]
    run = wf.run_local(tmp_path / "f", store=sqlite_url, force_tasks="double, total")
    assert set(reasons_of(run, "double")) == {"forced"} and reasons_of(run, "total") == ["forced"]

    nc = Workflow("nocache")

    @nc.job(cache=False)
    def stamp() -> int:
        return 1

    nc.run_local(tmp_path / "e", store=sqlite_url)
    assert reasons_of(nc.run_local(tmp_path / "f", store=sqlite_url), "stamp") == [
        "cache-disabled"]


def test_same_task_name_in_two_workflows_does_not_share_cache(tmp_path, sqlite_url) -> None:
    make_pipeline("alpha").run_local(tmp_path / "a", store=sqlite_url)
    run = make_pipeline("beta").run_local(tmp_path / "b", store=sqlite_url)
    assert reasons_of(run, "items") == ["new"]


def test_rewritten_or_missing_path_output_is_caught_by_verify(tmp_path, store_url) -> None:
    wf = Workflow("paths")
    produced: list[int] = []

    @wf.job()
    def write(run_dir: RunDir = RunDir()) -> Path:
        produced.append(1)
        out = tmp_path / "shared.txt"
        out.write_text("hello")
        return out

    @wf.job()
    def read(p: Annotated[Path, Result(step="write")]) -> int:
        return len(p.read_text())

    wf.run_local(tmp_path / "a", store=store_url)
    # trusted without verify: cached even though we rewrite the file
    (tmp_path / "shared.txt").write_text("hello, world")
    os.utime(tmp_path / "shared.txt", ns=(1, 1_000_000_000))
    assert reasons_of(wf.run_local(tmp_path / "b", store=store_url), "write") == ["cached"]
    run = wf.run_local(tmp_path / "c", store=store_url, verify=True)
    assert reasons_of(run, "write") == ["verify-failed:changed"]
    assert reasons_of(run, "read") == ["upstream-changed:p"]  # new mtime, new output hash
    fails = run.store.verify_failures(run.run_id)
    assert [(f.task_name, f.check) for f in fails] == [("write", str(tmp_path / "shared.txt"))]
    (tmp_path / "shared.txt").unlink()
    run = wf.run_local(tmp_path / "d", store=store_url, verify=True)
    assert reasons_of(run, "write") == ["verify-failed:missing"]
    assert len(produced) == 3


def test_a_missing_file_with_an_undecodable_name_is_recorded_as_a_verify_failure(
    tmp_path, store_url
) -> None:
    """Its path, as ``os.fsdecode`` gives it (a lone surrogate), names the check; raw, the
    store could not write the verify-failure row."""
    wf = Workflow("odd_paths")
    odd = tmp_path / os.fsdecode(b"data_\xff.nc")

    @wf.job()
    def write() -> Path:
        odd.write_text("hello")
        return odd

    wf.run_local(tmp_path / "a", store=store_url)
    odd.unlink()
    run = wf.run_local(tmp_path / "b", store=store_url, verify=True)
    assert reasons_of(run, "write") == ["verify-failed:missing"]
    (failure,) = run.store.verify_failures(run.run_id)
    assert failure.check == str(tmp_path / "data_\\udcff.nc")


def test_fan_out_over_path_outputs_trusts_the_recorded_files_like_other_wires(
    tmp_path, store_url
) -> None:
    wf = Workflow("fan_paths")

    @wf.job()
    def write() -> list[Path]:
        paths = [tmp_path / f"f{i}.txt" for i in range(2)]
        for path in paths:
            path.write_text(path.name)
        return paths

    @wf.array_job()
    def each(p: Annotated[Path, Result(step="write")]) -> str:
        return p.read_text()

    wf.run_local(tmp_path / "a", store=store_url)
    (tmp_path / "f1.txt").write_text("rewritten")
    os.utime(tmp_path / "f1.txt", ns=(1, 1_000_000_000))
    # a normal run trusts the stored identities: the elements are hashed with the recorded
    # fingerprints, not by looking at the files again
    assert reasons_of(wf.run_local(tmp_path / "b", store=store_url), "each") == ["cached"] * 2
    run = wf.run_local(tmp_path / "c", store=store_url, verify=True)
    assert reasons_of(run, "write") == ["verify-failed:changed"]
    assert reasons_of(run, "each") == ["upstream-changed:p"] * 2  # all files written again


def test_custom_verify_callable(tmp_path, sqlite_url) -> None:
    wf = Workflow("cv")
    ok = {"v": True}

    @wf.job(verify=lambda out: ok["v"])
    def a() -> int:
        return 1

    wf.run_local(tmp_path / "a", store=sqlite_url)
    assert reasons_of(wf.run_local(tmp_path / "b", store=sqlite_url, verify=True), "a") == [
        "cached"]
    ok["v"] = False
    run = wf.run_local(tmp_path / "c", store=sqlite_url, verify=True)
    assert reasons_of(run, "a") == ["verify-failed:callable"]
    (fail,) = run.store.verify_failures(run.run_id)
    assert fail.check == f"{__name__}:test_custom_verify_callable.<locals>.<lambda> (line " \
        f"{test_custom_verify_callable.__code__.co_firstlineno + 4})"
    assert "returned False" in fail.reason


def test_unencodable_output_fails_with_clear_message(tmp_path, sqlite_url) -> None:
    wf = Workflow("enc")

    @wf.job()
    def bad() -> Any:
        return {1, 2}

    with pytest.raises(RunFailedError) as err:
        wf.run_local(tmp_path / "a", store=sqlite_url)
    run_id = err.value.run_id
    from reflow import Run

    doc = Run.load(run_id, store=sqlite_url).status(as_dict=True)
    (inst,) = doc["instances"]
    assert inst["state"] == "FAILED"
    assert "output of task 'bad'" in inst["error_text"] and "set" in inst["error_text"]
    assert doc["run"]["status"] == "FAILED"

    arr = Workflow("unencodable_element")

    @arr.job()
    def items() -> list[int]:
        return [0, 1]

    @arr.array_job()
    def bad_each(x: Annotated[int, Result(step="items")]) -> Any:
        return {x} if x else x

    run = arr.run_local(tmp_path / "b", store=sqlite_url, on_error="continue")
    (failed,) = [i for i in run.status(as_dict=True)["instances"] if i["state"] == "FAILED"]
    assert "output of task 'bad_each[1]'" in failed["error_text"]  # as the workers say it


def test_why_explains_each_changed_component(tmp_path, sqlite_url) -> None:
    wf = make_pipeline()
    wf.run_local(tmp_path / "a", store=sqlite_url)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, factor=5)
    text = run.why("double", 1)
    assert "param-changed:factor" in text and "param:factor: 2 -> 5" in text
    assert "cached" in run.why("items")
    (items,) = run.store.latest_instances(run.run_id, "items")
    source = run.store.instance(items.cache_source or 0)
    assert f"reused the output of instance {source.id} of run {source.run_id}" in run.why("items")
    with pytest.raises(KeyError, match="Did you mean 'double'"):
        run.why("doubel")


def test_why_shows_a_changed_enum_parameter_as_python_would(tmp_path, sqlite_url) -> None:
    wf = Workflow("why_enum")

    @wf.job()
    def warp(method: Annotated[Resampling, Param()] = Resampling.NEAREST) -> str:
        return method.value

    wf.run_local(tmp_path / "a", store=sqlite_url)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, method=Resampling.BILINEAR)
    assert ("param:method: Resampling('nearest') -> Resampling('bilinear')"
            in run.why("warp"))  # not the codec's {"$t": "enum", ...}


def test_an_element_missing_from_the_last_run_is_explained_by_its_own_index(
    tmp_path, sqlite_url
) -> None:
    """Run 2 had only element 0; element 2 of run 3 is compared with element 2 of run 1
    (what ``why`` shows), not with run 2's element 0, whose input is another item."""
    wf = Workflow("nearest_index")

    @wf.job()
    def items(names: Annotated[list[str], Param()]) -> list[str]:
        return names

    @wf.array_job()
    def work(x: Annotated[str, Result(step="items")],
             k: Annotated[int, Param()] = 1) -> str:
        return x * k

    wf.run_local(tmp_path / "a", store=sqlite_url, names=["a", "b", "c"], k=1)
    wf.run_local(tmp_path / "b", store=sqlite_url, names=["a"], k=2)
    run = wf.run_local(tmp_path / "c", store=sqlite_url, names=["a", "b", "c"], k=2)
    assert reasons_of(run, "work") == ["cached", "param-changed:k", "param-changed:k"]
    assert "param:k: 1 -> 2" in run.why("work", 2) and "input:x" not in run.why("work", 2)


def test_why_lists_differences_for_forced_and_uncached_work_and_names_absent_parameters(
    tmp_path, sqlite_url
) -> None:
    def build(version: str, cache: bool = True, extra: bool = False) -> Workflow:
        wf = Workflow("why_bypass")
        if extra:
            @wf.job(version=version, cache=cache)
            def a(k: Annotated[int, Param()] = 1, j: Annotated[int, Param()] = 0) -> int:
                return k + j
        else:
            @wf.job(version=version, cache=cache)
            def a(k: Annotated[int, Param()] = 1) -> int:  # type: ignore[misc]
                return k
        return wf

    build("1").run_local(tmp_path / "a", store=sqlite_url)
    text = build("2").run_local(tmp_path / "b", store=sqlite_url, force=True).why("a")
    assert text.startswith("a: forced") and "version: '1' -> '2'" in text
    text = build("2", cache=False).run_local(tmp_path / "c", store=sqlite_url, k=3).why("a")
    assert text.startswith("a: cache-disabled") and "param:k: 1 -> 3" in text
    text = build("2", extra=True).run_local(tmp_path / "d", store=sqlite_url, k=3).why("a")
    assert "param:j: (absent) -> 0" in text  # added, not "None -> None"


def test_why_explains_a_retry_in_a_new_run(tmp_path, sqlite_url) -> None:
    flag = tmp_path / "fixed"
    wf = Workflow("why_retry_new")

    @wf.job()
    def a() -> int:
        if not flag.exists():
            raise RuntimeError("not yet")
        return 1

    wf.run_local(tmp_path / "a", store=sqlite_url, on_error="continue")
    flag.touch()
    run = wf.run_local(tmp_path / "b", store=sqlite_url)  # the same work, asked for again
    assert reasons_of(run, "a") == ["retry"]
    assert run.why("a").endswith("same inputs as the nearest earlier instance, which did not "
                                 "succeed")


def test_plan_reports_cached_and_recomputed_without_recording(
    tmp_path, sqlite_url, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = make_pipeline()
    wf.run_local(tmp_path / "a", store=sqlite_url, n=4)
    capsys.readouterr()
    report = wf.submit(tmp_path / "b", store=sqlite_url, plan=True, n=5)
    assert capsys.readouterr().out.strip() == str(report).strip()  # printed, as SPEC §3 says
    assert "param-changed:n" in str(report)
    tasks = {t["task"]: t for t in report.as_dict()["tasks"]}
    assert tasks["items"]["recompute"] == {"param-changed:n": 1}
    assert tasks["double"]["instances"] is None and tasks["double"]["waits_on"] == ["items"]
    report = wf.submit(tmp_path / "b", store=sqlite_url, plan=True, n=4, factor=3)
    tasks = {t["task"]: t for t in report.as_dict()["tasks"]}
    assert tasks["items"]["cached"] == 1
    assert tasks["double"]["recompute"] == {"param-changed:factor": 4}
    from reflow import Store

    assert len(Store.open(sqlite_url).list_runs()) == 1


def test_why_on_a_first_run_does_not_compare_with_sibling_elements(tmp_path, sqlite_url) -> None:
    run = make_pipeline("firstwhy").run_local(tmp_path / "a", store=sqlite_url)
    text = run.why("double", 2)
    assert text.startswith("double[2]: new")
    assert "no earlier run of workflow 'firstwhy' ran task 'double'" in text
    assert "->" not in text


def test_a_parameter_changed_to_an_equal_comparing_value_is_named(tmp_path, sqlite_url) -> None:
    """1, 1.0 and True compare equal in Python but are different inputs (and identities)."""
    wf = Workflow("eq")

    @wf.job()
    def takes(cfg: Any = None) -> Any:
        return cfg

    wf.run_local(tmp_path / "a", store=sqlite_url, cfg=1)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, cfg=True)
    (row,) = run.store.latest_instances(run.run_id, "takes")
    assert row.reason == "param-changed:cfg"
    assert "param:cfg: 1 -> True" in run.why("takes")


def test_why_tells_two_gathered_hash_lists_apart(tmp_path, sqlite_url) -> None:
    wf = Workflow("gw")

    @wf.job()
    def items(last: str = "c") -> list[str]:
        return ["a", "b", last]

    @wf.array_job()
    def up(x: Annotated[str, Result(step="items")]) -> str:
        return x.upper()

    @wf.job()
    def join(xs: Annotated[list[str], Result(step="up")]) -> str:
        return "".join(xs)

    wf.run_local(tmp_path / "a", store=sqlite_url)
    run = wf.run_local(tmp_path / "b", store=sqlite_url, last="d")
    line = next(x for x in run.why("join").splitlines() if x.strip().startswith("input:xs"))
    old, new = line.split(": ", 1)[1].split(" -> ")
    assert old != new and old.startswith("[3 hashes")


def test_status_json_is_written_in_pages_with_the_bytes_of_the_whole_document(
    tmp_path, sqlite_url, monkeypatch
) -> None:
    import json

    from reflow import status_report

    wf = Workflow("paged")

    @wf.job()
    def make() -> list[int]:
        return list(range(7))

    @wf.array_job()
    def half(x: Annotated[int, Result(step="make")]) -> float:
        if x == 3:
            raise ValueError("three")
        return x / 2

    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    monkeypatch.setattr(status_report, "_PAGE", 2)  # several pages of each list
    for task in (None, "half", "make"):
        parts: list[str] = []
        status_report.write_status_json(run.store, run.run_id, task, parts.append)
        document = run.status(task=task, as_dict=True)
        assert "".join(parts) == json.dumps(document, indent=2, ensure_ascii=False)
        assert len(document["transitions"]) > 2
    assert [i["array_index"] for i in document["failed_instances"]] == []
    assert [i["array_index"] for i in run.status(task="half", as_dict=True)[
        "failed_instances"]] == [3]
