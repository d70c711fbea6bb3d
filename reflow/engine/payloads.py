"""Payload files: what the driver hands to the workers of one submission.

A submission (one singleton job, or one array over any set of indices) gets a directory under
``<run_dir>/.reflow/payloads/``: ``meta.json`` (which workflow and task to import),
``elements.jsonl`` (one JSON line per element: instance id, attempt, index, encoded inputs),
``shared.json`` (the texts of inputs every element shares, which its line refers to by
digest; see ``core.shared``) and ``offsets`` (a dense table of 8-byte byte offsets, one per
array index, -1 for an index not in this submission). An element of a 100,000-element array
is read with one seek in each file, so element start-up never grows with the array. Workers
never touch the store.

This module is imported by workers: stdlib only.
"""

from __future__ import annotations

import json
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_OFFSET = struct.Struct("<q")
META = "meta.json"
ELEMENTS = "elements.jsonl"
OFFSETS = "offsets"
SHARED = "shared.json"
SINGLETON_KEY = 0


@dataclass(frozen=True)
class Element:
    """One instance to run: its store id and attempt, its array index and encoded kwargs."""

    instance_id: int
    attempt: int
    index: int | None
    input_json: str


@dataclass(frozen=True)
class Meta:
    workflow: str
    entrypoint: str
    task: str
    run_dir: Path
    state_dir: Path  # the run's own folder, where workers write results (run_state_dir)
    is_array: bool
    import_root: str | None = None  # see Workflow.import_root


def payloads_dir(run_dir: Path) -> Path:
    return run_dir / ".reflow" / "payloads"


def write_payload(run_dir: Path, meta: Meta, elements: Sequence[Element],
                  shared: Mapping[str, str] | None = None) -> Path:
    """Write a new payload directory and return it (written before the job is submitted).

    ``shared``: the texts the elements' inputs refer to by digest (``core.shared``), written
    once for the whole submission.
    """
    directory = payloads_dir(run_dir) / f"{meta.task}-{secrets.token_hex(6)}"
    directory.mkdir(parents=True)
    if shared:
        (directory / SHARED).write_text(json.dumps(dict(shared)), encoding="utf-8")
    lines: list[bytes] = []
    keys: list[int] = []
    for e in elements:
        lines.append(json.dumps({"instance_id": e.instance_id, "attempt": e.attempt,
                                 "index": e.index, "input": e.input_json},
                                separators=(",", ":")).encode() + b"\n")
        keys.append(SINGLETON_KEY if e.index is None else e.index)
    table = [-1] * (max(keys) + 1 if keys else 0)
    position = 0
    for key, line in zip(keys, lines, strict=True):
        table[key] = position
        position += len(line)
    (directory / ELEMENTS).write_bytes(b"".join(lines))
    (directory / OFFSETS).write_bytes(b"".join(_OFFSET.pack(v) for v in table))
    (directory / META).write_text(json.dumps({
        "workflow": meta.workflow, "entrypoint": meta.entrypoint, "task": meta.task,
        "run_dir": str(meta.run_dir), "state_dir": str(meta.state_dir), "is_array": meta.is_array,
        "import_root": meta.import_root,
    }), encoding="utf-8")
    return directory


def read_shared(directory: Path) -> dict[str, str]:
    """The shared input texts of a submission, by digest (none written: empty)."""
    try:
        data: dict[str, str] = json.loads((directory / SHARED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def read_meta(directory: Path) -> Meta:
    data: dict[str, Any] = json.loads((directory / META).read_text(encoding="utf-8"))
    return Meta(data["workflow"], data["entrypoint"], data["task"], Path(data["run_dir"]),
                Path(data["state_dir"]), bool(data["is_array"]), data.get("import_root"))


class PayloadError(LookupError):
    """The payload does not hold the element a worker was started for."""


def read_element(directory: Path, index: int | None) -> Element:
    """The element for array index ``index`` (None for a singleton), by two seeks."""
    key = SINGLETON_KEY if index is None else index
    with open(directory / OFFSETS, "rb") as table:
        table.seek(key * _OFFSET.size)
        raw = table.read(_OFFSET.size)
    offset = _OFFSET.unpack(raw)[0] if len(raw) == _OFFSET.size else -1
    if offset < 0:
        raise PayloadError(f"payload {directory} has no element for index {index}")
    with open(directory / ELEMENTS, "rb") as handle:
        handle.seek(offset)
        data = json.loads(handle.readline())
    return Element(int(data["instance_id"]), int(data["attempt"]), data["index"], data["input"])

