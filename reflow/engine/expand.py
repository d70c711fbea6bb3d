"""Expansion: from upstream outputs and parameters to the concrete instances of one task.

This is where the wire modes of SPEC §1 meet the Merkle identity of SPEC §3: every instance
gets the values its function will receive *and* the hash components of its pre-image. A
fan-out element is hashed by its own value, not its position, so appending one item to a list
of 10,000 creates exactly one new identity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from reflow.core.codec import SCALAR_TYPES, canonical_json, encode
from reflow.core.hashing import element_hashes, preimage_json_and_digest, sha256_hex
from reflow.core.shared import MIN_SHARED_CHARS, share
from reflow.core.spec import TaskSpec
from reflow.core.wiring import Wire, WireMode
from reflow.errors import WiringError


class TaskOutputs(NamedTuple):
    """The successful outputs of one upstream task in index order (one item for a singleton).

    ``fingerprints``: the file fingerprints recorded with each output (JSON text or a
    mapping; None or missing where it holds no ``Path``).
    """

    is_array: bool
    values: Sequence[Any]
    hashes: Sequence[str]
    fingerprints: Sequence[Mapping[str, Any] | str | None] = ()


def _recorded(fingerprints: Sequence[Mapping[str, Any] | str | None]) -> dict[str, Any] | None:
    """The fingerprints recorded with some outputs, by path; None when there are none.

    An element taken out of a list of ``Path`` outputs is hashed with them, not by looking at
    the files again: a normal run trusts what was recorded (SPEC §3), as it does for the
    hashes of whole outputs passed on directly.
    """
    known: dict[str, Any] = {}
    for fp in fingerprints:
        if fp:
            known.update(json.loads(fp) if isinstance(fp, str) else fp)
    return known or None


class Expanded:
    """One instance to be: what the function receives and what its identity is made of.

    ``input_hash`` and an array element's ``kwargs`` are made when first asked for: a cache
    hit records its source's input hash (equal identities mean equal inputs) and never calls
    the function, so a fully cached run makes neither.
    """

    __slots__ = ("_input_hash", "_kwargs", "_shared", "_values", "identity", "index",
                 "input_json", "preimage_json", "shared_texts")

    def __init__(self, index: int | None, kwargs: dict[str, Any] | None, input_json: str,
                 preimage_json: str, identity: str,
                 element: tuple[_ElementKwargs, tuple[Any, ...]] | None = None,
                 shared_texts: Mapping[str, str] | None = None) -> None:
        self.index = index
        # Texts ``input_json`` refers to by digest (core.shared); one mapping for all elements.
        self.shared_texts = shared_texts
        self._kwargs = kwargs
        self._shared: _ElementKwargs | None = None
        self._values: tuple[Any, ...] = ()
        if element is not None:
            self._shared, self._values = element
        self.input_json = input_json
        self.preimage_json = preimage_json
        self.identity = identity
        self._input_hash: str | None = None

    @property
    def kwargs(self) -> dict[str, Any]:
        if self._kwargs is None:
            assert self._shared is not None
            self._kwargs = self._shared.make(self._values)
        return self._kwargs

    @property
    def input_hash(self) -> str:
        if self._input_hash is None:
            self._input_hash = sha256_hex(self.input_json)
        return self._input_hash

    @property
    def preimage(self) -> dict[str, Any]:
        """The pre-image as data: parsed on demand, since only unexplained misses need it."""
        parsed: dict[str, Any] = json.loads(self.preimage_json)
        return parsed


class _ElementKwargs:
    """What every element of an array task shares: the constant kwargs and the element names."""

    __slots__ = ("base", "params")

    def __init__(self, base: dict[str, Any], params: list[str]) -> None:
        self.base = base
        self.params = params

    def make(self, values: tuple[Any, ...]) -> dict[str, Any]:
        kwargs = dict(self.base)
        kwargs.update(zip(self.params, values, strict=True))
        return kwargs


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
) -> tuple[list[Any], list[str], list[str]]:
    """Per-element modes: the elements, each element's own hash and its canonical text.

    Hashing an element already yields its canonical text, which is also its part of the
    instance's input payload, so it is kept instead of encoding the element twice.
    """
    elements: list[Any] = []
    hashes: list[str] = []
    texts: list[str] = []
    for step in wire.steps:
        o = upstream[step]
        if wire.mode is WireMode.CHAIN:
            # Upstream output hashes may fold in file fingerprints: not the text's hash.
            where = _where(task, wire.param)
            elements.extend(o.values)
            hashes.extend(o.hashes)
            texts.extend(canonical_json(encode(v, where=where)) for v in o.values)
            continue
        items: list[Any] = []
        if wire.mode is WireMode.FAN_OUT:
            known = _recorded(o.fingerprints[:1])
            value = o.values[0]
            if not isinstance(value, list | tuple):
                raise WiringError(
                    f"task '{step}' returned {type(value).__name__}, but array task '{task}' "
                    f"fans out over it as '{wire.param}'; return a list"
                )
            items.extend(value)
        else:  # chain-flatten
            known = _recorded(o.fingerprints)
            for v in o.values:
                items.extend(v)
        elements.extend(items)
        digests, item_texts = element_hashes(items, where=_where(task, wire.param), known=known)
        hashes.extend(digests)
        texts.extend(item_texts)
    return elements, hashes, texts


def _encoded(value: Any, where: str) -> Any:
    """``encode`` with its error location named only when needed (plain scalars encode as is)."""
    return value if type(value) in SCALAR_TYPES else encode(value, where=where)


def expand_task(
    workflow: str,
    spec: TaskSpec,
    wires: Sequence[Wire],
    upstream: Mapping[str, TaskOutputs],
    params: Mapping[str, Any],
) -> list[Expanded]:
    """All instances of ``spec`` given complete upstream outputs (empty fan-out -> [])."""
    encoded_params = {
        name: _encoded(value, f"parameter '{name}' of task '{spec.name}'")
        for name, value in params.items()
    }
    after = {}
    for dep in spec.after:
        o = upstream[dep]
        after[dep] = list(o.hashes) if o.is_array else o.hashes[0]
    if not spec.is_array:
        return [_singleton(workflow, spec, wires, upstream, params, encoded_params, after)]
    base_inputs: dict[str, Any] = {}
    base_kwargs: dict[str, Any] = dict(params)
    per_element: list[tuple[str, list[Any], list[str], list[str]]] = []
    for wire in wires:
        if wire.mode.per_element:
            elements, hashes, texts = _wire_elements(spec.name, wire, upstream)
            per_element.append((wire.param, elements, hashes, texts))
        else:
            base_kwargs[wire.param], base_inputs[wire.param] = _wire_value(wire, upstream)
    encoded_base = {
        name: _encoded(base_kwargs[name], _where(spec.name, name))
        for name in base_kwargs
        if name not in encoded_params
    }
    encoded_base.update(encoded_params)
    sizes = {len(elements) for _, elements, _, _ in per_element}
    if len(sizes) > 1:
        detail = ", ".join(f"'{p}' has {len(e)}" for p, e, _, _ in per_element)
        raise WiringError(
            f"array task '{spec.name}' gets inputs of different lengths ({detail}); "
            "make the upstream lists the same length or broadcast one of them"
        )
    # The pre-image and the input payload differ between elements only in the per-element
    # entries, so the constant parts are made canonical once and the texts assembled per
    # element. Keys sort "after" < "inputs" < "params" < "task" < "version" < "workflow".
    wanted = set(spec.identity_inputs)
    input_texts = {
        k: canonical_json(v) for k, v in base_inputs.items() if k in wanted
    }
    payload_texts = {
        k: canonical_json(v) for k, v in encoded_base.items() if k in wanted
    }
    shared_texts: dict[str, str] = {}
    for name, text in payload_texts.items():
        if len(text) >= MIN_SHARED_CHARS:  # the same for every element: referred to, not copied
            payload_texts[name], digest = share(text)
            shared_texts[digest] = text
    rest = canonical_json({"params": encoded_params, "task": spec.name,
                           "version": spec.version, "workflow": workflow})
    varying = [item for item in per_element if item[0] in wanted]
    names = [param for param, _, _, _ in varying]
    pre_template = (
        _escape('{"after":' + canonical_json(after) + ',"inputs":')
        + _object_template(input_texts, names, quoted=True)
        + _escape("," + rest[1:])
    )
    payload_template = _object_template(payload_texts, names, quoted=False)
    # One row of values, element hashes and element texts per instance (columns zipped).
    value_rows = zip(*[elements for _, elements, _, _ in per_element], strict=True)
    hash_rows = zip(*[hashes for _, _, hashes, _ in varying], strict=True)
    text_rows = zip(*[texts for _, _, _, texts in varying], strict=True)
    shared = _ElementKwargs(base_kwargs, [param for param, _, _, _ in per_element])
    pre_format, payload_format = pre_template.format, payload_template.format
    out: list[Expanded] = []
    rows = zip(value_rows, hash_rows, text_rows, strict=True)
    for i, (values, row_hashes, row_texts) in enumerate(rows):
        pre_json = pre_format(*row_hashes)
        out.append(Expanded(i, None, payload_format(*row_texts), pre_json,
                            sha256_hex(pre_json), (shared, values), shared_texts or None))
    return out


def _singleton(
    workflow: str, spec: TaskSpec, wires: Sequence[Wire], upstream: Mapping[str, TaskOutputs],
    params: Mapping[str, Any], encoded_params: dict[str, Any], after: dict[str, Any],
) -> Expanded:
    """The one instance of a singleton task: a chain of 1,000 tasks expands 1,000 of these."""
    kwargs: dict[str, Any] = dict(params)
    inputs: dict[str, Any] = {}
    for wire in wires:
        kwargs[wire.param], inputs[wire.param] = _wire_value(wire, upstream)
    order = spec.identity_inputs
    pre_json, identity = preimage_json_and_digest({
        "workflow": workflow,
        "task": spec.name,
        "version": spec.version,
        "params": encoded_params,
        "inputs": {k: inputs[k] for k in order if k in inputs},
        "after": after,
    })
    payload = {
        k: encoded_params[k] if k in encoded_params else _encoded(kwargs[k], _where(spec.name, k))
        for k in order if k in kwargs
    }
    return Expanded(None, kwargs, canonical_json(payload), pre_json, identity)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _object_template(constant: Mapping[str, str], varying: Sequence[str], *, quoted: bool) -> str:
    """A ``str.format`` template of a canonical object, so each element costs one format call.

    ``constant`` texts are written in; the n-th ``varying`` key's text (quoted: a hash) comes
    from argument n. Braces in the texts are escaped, so any JSON survives the template.
    """
    slot = '"{%d}"' if quoted else "{%d}"
    texts = {k: _escape(v) for k, v in constant.items()}
    texts.update({k: slot % n for n, k in enumerate(varying)})
    members = ",".join(f"{_escape(encode_basestring(k))}:{texts[k]}" for k in sorted(texts))
    return "{{" + members + "}}"
