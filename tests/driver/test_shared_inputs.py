"""A large value broadcast to an array is recorded once, not once per element (core.shared):
on both execution paths, for retries, and in the workers' payloads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any

import pytest
from driver_helpers import states

from reflow import Result, Store, Workflow
from reflow.core.codec import decode
from reflow.core.shared import MIN_SHARED_CHARS, referenced, resolve, share
from reflow.engine.entrypoints import load_workflow
from reflow.engine.payloads import payloads_dir

ELEMENTS = 5
BIG = [f"/data/file-{i:05d}.nc" for i in range(2_000)]  # ~40 KB of JSON

PIPELINE = '''
from typing import Annotated
from pathlib import Path
from reflow import Result, Workflow

wf = Workflow("{name}")


@wf.job()
def files() -> list[str]:
    return ["/data/file-%05d.nc" % i for i in range(2_000)]


@wf.job()
def picks() -> list[int]:
    return list(range({elements}))


@wf.array_job()
def pick(i: Annotated[int, Result(step="picks")],
         names: Annotated[list[str], Result(step="files", broadcast=True)]) -> str:
    flag = Path(__file__).with_name("fail-" + str(i))
    if flag.exists():
        raise RuntimeError("flagged")
    return names[i * 100]
'''


def pipeline(directory: Path, name: str) -> Workflow:
    path = directory / f"{name}.py"
    path.write_text(PIPELINE.format(name=name, elements=ELEMENTS))
    return load_workflow(str(path), name)


def stored_inputs(url: str, run_id: str) -> list[str]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return [row[0] for row in conn.execute(
            "SELECT input FROM instances WHERE run_id = ? AND task_name = 'pick' AND latest "
            "ORDER BY array_index", (run_id,))]


def picked(run: Any) -> list[str]:
    rows = sorted(run.store.latest_instances(run.run_id, "pick"), key=lambda r: r.array_index)
    return [decode(json.loads(r.output)) for r in rows]


def test_a_reference_stands_for_a_top_level_member_only() -> None:
    text = json.dumps(BIG, separators=(",", ":"))
    assert len(text) >= MIN_SHARED_CHARS
    ref, digest = share(text)
    payload = '{"i":3,"names":' + ref + "}"
    assert referenced(payload) == {digest}
    assert json.loads(resolve(payload, lambda wanted: {digest: text})) == {"i": 3, "names": BIG}
    # A user's dict that looks like one is wrapped by the codec, one level down: left alone.
    lookalike = '{"d":{"$t":"dict","v":' + ref + "}}"
    assert referenced(lookalike) == set()
    assert resolve(lookalike, lambda wanted: {}) == lookalike
    with pytest.raises(LookupError, match=f"shared input {digest} is not recorded"):
        resolve(payload, lambda wanted: {})


def test_in_process_a_broadcast_is_stored_once_and_a_retry_reads_it_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    wf = pipeline(tmp_path, "sharedlocal")
    (tmp_path / "fail-3").write_text("")
    run = wf.run_local(tmp_path / "r", store=sqlite_url, on_error="continue")
    assert states(run, "pick") == ["SUCCESS"] * 3 + ["FAILED", "SUCCESS"]
    inputs = stored_inputs(sqlite_url, run.run_id)
    assert all(len(text) < 200 for text in inputs), inputs[0][:300]
    (digest,) = referenced(inputs[0])
    assert run.store.shared_values([digest])[digest] == json.dumps(BIG, separators=(",", ":"))
    (tmp_path / "fail-3").unlink()
    assert run.retry("pick") == 1  # the retried element reads its input back from the store
    assert picked(run) == [BIG[i * 100] for i in range(ELEMENTS)]
    again = wf.run_local(tmp_path / "r2", store=sqlite_url)  # cached: the copies refer too
    assert picked(again) == picked(run)
    doc = again.status(as_dict=True)  # the documents show the input as it was received
    inputs_shown = [i["input"] for i in doc["instances"] if i["task_name"] == "pick"]
    assert inputs_shown == [{"i": i, "names": BIG} for i in range(ELEMENTS)]
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("SELECT count(*) FROM shared_values").fetchone() == (1,)


def test_through_the_driver_workers_read_the_shared_text_from_their_payload(
    local_env: Path
) -> None:
    wf = pipeline(local_env, "shareddriver")
    store = str(local_env / "m.db")
    run = wf.submit(local_env / "r", store=store, executor="local", wait=True)
    assert run.state == "SUCCESS"
    assert picked(run) == [BIG[i * 100] for i in range(ELEMENTS)]
    (payload,) = [p for p in payloads_dir(local_env / "r").iterdir()
                  if p.name.startswith("pick-")]
    assert (payload / "elements.jsonl").stat().st_size < 200 * ELEMENTS
    assert list(json.loads((payload / "shared.json").read_text()).values()) == [
        json.dumps(BIG, separators=(",", ":"))]


def test_a_small_broadcast_stays_inline(tmp_path: Path, sqlite_url: str) -> None:
    wf = Workflow("sharedsmall")

    @wf.job()
    def items() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def add(x: Annotated[int, Result(step="items")],
            all_: Annotated[list[int], Result(step="items", broadcast=True)]) -> int:
        return x + sum(all_)

    run = wf.run_local(tmp_path / "r", store=sqlite_url)
    doc = run.status(as_dict=True)
    assert [i["input"] for i in doc["instances"] if i["task_name"] == "add"] == [
        {"all_": [1, 2], "x": 1}, {"all_": [1, 2], "x": 2}]


def test_the_store_keeps_each_text_once(store_url: str) -> None:
    with Store.open(store_url) as store:
        store.put_shared({"a" * 64: "[1]", "b" * 64: "[2]"})
        store.put_shared({"a" * 64: "[1]"})  # already kept: nothing happens
        assert store.shared_values(["a" * 64, "b" * 64, "c" * 64]) == {
            "a" * 64: "[1]", "b" * 64: "[2]"}
