"""Array expansion assembles pre-image and payload texts from parts: they must be canonical."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from reflow import Param, Result, RunDir, Workflow
from reflow.core.codec import canonical_json, encode
from reflow.core.hashing import sha256_hex, value_hash
from reflow.engine.expand import Expanded, TaskOutputs, expand_task


def _outputs(values: list[Any], is_array: bool) -> TaskOutputs:
    return TaskOutputs(is_array, values, [value_hash(v).digest for v in values])


def _assert_canonical(items: list[Expanded], params: dict[str, Any]) -> None:
    assert items
    for e in items:
        assert e.preimage_json == canonical_json(e.preimage)
        assert e.identity == sha256_hex(canonical_json(e.preimage))
        payload = {k: encode(v) for k, v in e.kwargs.items() if k != "run_dir"}
        assert e.input_json == canonical_json(payload)
        assert e.input_hash == sha256_hex(e.input_json)
        assert e.preimage["params"] == {k: encode(v) for k, v in params.items()}


def test_fan_out_with_broadcast_params_and_after_is_canonical(tmp_path: Path) -> None:
    wf = Workflow("texts_fan")

    @wf.job()
    def items() -> list[Any]:
        return ["ü", ("t", 1), {"z": 1, "a": [Path("/p")]}]

    @wf.job()
    def others() -> list[str]:
        return ["x", "y", "w"]

    @wf.job()
    def config() -> dict[str, int]:
        return {"b": 2, "a": 1}

    @wf.job()
    def setup() -> None:
        return None

    @wf.array_job(after=["setup"])
    def work(
        zeta: Annotated[Any, Result(step="items")],
        alpha: Annotated[str, Result(step="others")],
        cfg: Annotated[dict[str, int], Result(step="config", broadcast=True)],
        label: Annotated[str, Param()] = "é",
    ) -> str:
        return f"{zeta}{alpha}{cfg}{label}"

    graph = wf.validate()
    upstream = {
        "items": _outputs([["ü", ("t", 1), {"z": 1, "a": [Path("/p")]}]], False),
        "others": _outputs([["x", "y", "w"]], False),
        "config": _outputs([{"b": 2, "a": 1}], False),
        "setup": _outputs([None], False),
    }
    params = {"label": "é"}
    items_ = expand_task(wf.name, graph.specs["work"], graph.wires["work"], upstream, params)
    assert [e.index for e in items_] == [0, 1, 2]
    assert items_[1].kwargs["zeta"] == ("t", 1)
    _assert_canonical(items_, params)


def test_chain_elements_are_canonical(tmp_path: Path) -> None:
    wf = Workflow("texts_chain")

    @wf.array_job()
    def first(x: Annotated[int, Result(step="src")]) -> dict[str, Any]:
        return {"v": x}

    @wf.job()
    def src() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def second(y: Annotated[dict[str, Any], Result(step="first")]) -> int:
        return 0

    graph = wf.validate()
    upstream = {"first": _outputs([{"v": 1, "ö": None}, {"v": 2}], True)}
    items_ = expand_task(wf.name, graph.specs["second"], graph.wires["second"], upstream, {})
    assert len(items_) == 2
    _assert_canonical(items_, {})


def test_singleton_preimage_text_is_pinned() -> None:
    """Identities are stored: a singleton's pre-image text must not change between releases."""
    wf = Workflow("texts_single")

    @wf.job()
    def setup() -> None:
        return None

    @wf.job()
    def src() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def parts(x: Annotated[int, Result(step="src")]) -> int:
        return x

    @wf.job(after=["setup"])
    def total(
        xs: Annotated[list[int], Result(step="parts")],
        where: Annotated[Path, RunDir()],
        scale: Annotated[float, Param()] = 1.5,
        tag: Annotated[tuple[str, ...], Param()] = ("é", "b"),
    ) -> float:
        return sum(xs) * scale

    graph = wf.validate()
    upstream = {"parts": _outputs([1, 2], True), "setup": _outputs([None], False)}
    params = {"scale": 1.5, "tag": ("é", "b")}
    [e] = expand_task(wf.name, graph.specs["total"], graph.wires["total"], upstream, params)
    assert e.preimage_json == (
        '{"after":{"setup":"74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"},'
        '"inputs":{"xs":["6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",'
        '"d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"]},'
        '"params":{"scale":1.5,"tag":{"$t":"tuple","v":["é","b"]}},'
        '"task":"total","version":"1","workflow":"texts_single"}'
    )
    assert e.input_json == '{"scale":1.5,"tag":{"$t":"tuple","v":["é","b"]},"xs":[1,2]}'
    assert e.identity == "4e0563e3b3dc038169809738b0062a60b01f4f35048f3a9a4d8c566b77ce692f"
    assert sorted(e.kwargs) == ["scale", "tag", "xs"]  # the run dir is added at call time
    _assert_canonical([e], params)
