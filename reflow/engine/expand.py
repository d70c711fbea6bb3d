"""Expansion: from upstream outputs and parameters to the concrete instances of one task.

This is where the wire modes of SPEC §1 meet the Merkle identity of SPEC §3: every instance
gets the values its function will receive *and* the hash components of its pre-image. A
fan-out element is hashed by its own value, not its position, so appending one item to a list
of 10,000 creates exactly one new identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reflow.core.codec import canonical_json, encode
from reflow.core.hashing import preimage_json_and_digest, sha256_hex, value_hash
from reflow.core.spec import TaskSpec
from reflow.core.wiring import Wire, WireMode
from reflow.errors import WiringError


@dataclass(frozen=True, slots=True)
class TaskOutputs:
    """The successful outputs of one upstream task in index order (one item for a singleton)."""

    is_array: bool
    values: Sequence[Any]
    hashes: Sequence[str]


@dataclass(slots=True)
class Expanded:
    """One instance to be: what the function receives and what its identity is made of."""

    index: int | None
    kwargs: dict[str, Any]
    input_json: str
    input_hash: str
    preimage: dict[str, Any]
    preimage_json: str
    identity: str
    extra: dict[str, Any] = field(default_factory=dict)


def _where(task: str, param: str) -> str:
    return f"input '{param}' of task '{task}'"


def _wire_value(wire: Wire, upstream: Mapping[str, TaskOutputs]) -> tuple[Any, Any]:
    """Whole-value modes: (value passed, identity component)."""
    outs = [upstream[s] for s in wire.steps]
    many = len(outs) > 1
    if wire.mode in (WireMode.DIRECT, WireMode.BROADCAST):
        values = [o.values[0] for o in outs]
        comps = [o.hashes[0] for o in outs]
        if not many:
            return values[0], comps[0]
        joined: list[Any] = []
        for v in values:
            joined.extend(v)
        return joined, comps
    # gather-like modes: one list in index order across steps
    gathered: list[Any] = []
    hashes: list[str] = []
    for o in outs:
        if wire.mode is WireMode.GATHER_FLATTEN:
            for v in o.values:
                gathered.extend(v)
        else:
            gathered.extend(o.values)
        hashes.extend(o.hashes)
    return gathered, hashes


def _wire_elements(
    task: str, wire: Wire, upstream: Mapping[str, TaskOutputs]
) -> tuple[list[Any], list[str]]:
    """Per-element modes: the elements and each element's own hash."""
    elements: list[Any] = []
    hashes: list[str] = []
    for step in wire.steps:
        o = upstream[step]
        if wire.mode is WireMode.CHAIN:
            elements.extend(o.values)
            hashes.extend(o.hashes)
            continue
        items: list[Any] = []
        if wire.mode is WireMode.FAN_OUT:
            value = o.values[0]
            if not isinstance(value, list | tuple):
                raise WiringError(
                    f"task '{step}' returned {type(value).__name__}, but array task '{task}' "
                    f"fans out over it as '{wire.param}'; return a list"
                )
            items.extend(value)
        else:  # chain-flatten
            for v in o.values:
                items.extend(v)
        where = _where(task, wire.param)
        elements.extend(items)
        hashes.extend(value_hash(item, where=where).digest for item in items)
    return elements, hashes


def expand_task(
    workflow: str,
    spec: TaskSpec,
    wires: Sequence[Wire],
    upstream: Mapping[str, TaskOutputs],
    params: Mapping[str, Any],
) -> list[Expanded]:
    """All instances of ``spec`` given complete upstream outputs (empty fan-out -> [])."""
    encoded_params = {
        name: encode(value, where=f"parameter '{name}' of task '{spec.name}'")
        for name, value in params.items()
    }
    after = {}
    for dep in spec.after:
        o = upstream[dep]
        after[dep] = list(o.hashes) if o.is_array else o.hashes[0]
    base_inputs: dict[str, Any] = {}
    base_kwargs: dict[str, Any] = dict(params)
    per_element: list[tuple[str, list[Any], list[str]]] = []
    for wire in wires:
        if wire.mode.per_element:
            elements, hashes = _wire_elements(spec.name, wire, upstream)
            per_element.append((wire.param, elements, hashes))
        else:
            base_kwargs[wire.param], base_inputs[wire.param] = _wire_value(wire, upstream)
    order = [i.name for i in spec.inputs if i.kind != "rundir"]
    encoded_base = {
        name: encode(base_kwargs[name], where=_where(spec.name, name))
        for name in base_kwargs
        if name not in encoded_params
    }
    encoded_base.update(encoded_params)

    def make(index: int | None, kwargs: dict[str, Any], enc: dict[str, Any],
             inputs: dict[str, Any]) -> Expanded:
        preimage = {
            "workflow": workflow,
            "task": spec.name,
            "version": spec.version,
            "params": encoded_params,
            "inputs": {k: inputs[k] for k in order if k in inputs},
            "after": after,
        }
        pre_json, identity = preimage_json_and_digest(preimage)
        input_json = canonical_json({k: enc[k] for k in order if k in enc})
        return Expanded(index, kwargs, input_json, sha256_hex(input_json), preimage, pre_json,
                        identity)

    if not spec.is_array:
        return [make(None, base_kwargs, encoded_base, base_inputs)]
    sizes = {len(elements) for _, elements, _ in per_element}
    if len(sizes) > 1:
        detail = ", ".join(f"'{p}' has {len(e)}" for p, e, _ in per_element)
        raise WiringError(
            f"array task '{spec.name}' gets inputs of different lengths ({detail}); "
            "make the upstream lists the same length or broadcast one of them"
        )
    count = sizes.pop() if sizes else 0
    out: list[Expanded] = []
    for i in range(count):
        kwargs = dict(base_kwargs)
        enc = dict(encoded_base)
        inputs = dict(base_inputs)
        for param, elements, hashes in per_element:
            kwargs[param] = elements[i]
            enc[param] = encode(elements[i], where=_where(spec.name, param))
            inputs[param] = hashes[i]
        out.append(make(i, kwargs, enc, inputs))
    return out
