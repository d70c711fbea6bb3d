"""Wire modes: how a value travels along one data edge, inferred from the types at both ends.

The table in SPEC §1 is implemented by ``infer_mode``; the first step of a ``Result`` decides
the mode and every further step must fit the same mode, so a mistake shows up at
``validate()`` time with both ends named, not as a wrong value deep inside a run.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from reflow.core.spec import InputSpec, TaskSpec
from reflow.errors import WiringError


class WireMode(StrEnum):
    """How a downstream instance receives an upstream value; see SPEC §1's table."""

    DIRECT = "direct"
    FAN_OUT = "fan-out"
    BROADCAST = "broadcast"
    GATHER = "gather"
    GATHER_FLATTEN = "gather-flatten"
    CHAIN = "chain"
    CHAIN_FLATTEN = "chain-flatten"
    BROADCAST_GATHERED = "broadcast-gathered"

    @property
    def per_element(self) -> bool:
        """Modes that give each downstream instance its own element (they set the count)."""
        return self in (WireMode.FAN_OUT, WireMode.CHAIN, WireMode.CHAIN_FLATTEN)


@dataclass(frozen=True)
class Wire:
    """One resolved data input of a task."""

    param: str
    steps: tuple[str, ...]
    mode: WireMode


def list_item(tp: Any) -> Any | None:
    """The element type of ``list[T]`` (``Any`` for a bare ``list``), else None."""
    if tp is list:
        return Any
    if typing.get_origin(tp) is list:
        args = typing.get_args(tp)
        return args[0] if args else Any
    return None


def compatible(src: Any, dst: Any) -> bool:
    """Whether a value of type ``src`` may be passed where ``dst`` is declared.

    Deliberately structural and lenient where Python is (``Any``, int→float, unions,
    ``Literal``) but strict where values really differ (``str`` vs ``Path``, list vs scalar).
    """
    if src is Any or dst is Any or src is None or dst is None:
        return True
    if src == dst:
        return True
    d_origin, s_origin = typing.get_origin(dst), typing.get_origin(src)
    if d_origin in (typing.Union, types.UnionType):
        return any(compatible(src, d) for d in typing.get_args(dst))
    if s_origin in (typing.Union, types.UnionType):
        return all(compatible(s, dst) for s in typing.get_args(src))
    if s_origin is typing.Literal:
        return all(compatible(type(v), dst) for v in typing.get_args(src))
    if d_origin is typing.Literal:
        return compatible(src, type(typing.get_args(dst)[0]))
    if dst is float and src is int:
        return True
    if isinstance(src, type) and isinstance(dst, type) and issubclass(src, PurePath):
        return issubclass(dst, PurePath)
    if s_origin is not None or d_origin is not None:
        if (s_origin or src) != (d_origin or dst):
            return False
        s_args, d_args = typing.get_args(src), typing.get_args(dst)
        if not s_args or not d_args:
            return True
        if len(s_args) != len(d_args):
            return d_origin is tuple and Ellipsis in d_args
        return all(compatible(s, d) for s, d in zip(s_args, d_args, strict=True))
    if isinstance(src, type) and isinstance(dst, type):
        return issubclass(src, dst)
    return False


def type_name(tp: Any) -> str:
    """Readable type text for error messages (``list[str]``, not ``typing.List[str]``)."""
    if tp is Any:
        return "Any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return "Path" if issubclass(tp, Path) else tp.__name__
    return str(tp).replace("typing.", "").replace("pathlib.", "")


def infer_mode(up: TaskSpec, down: TaskSpec, inp: InputSpec, broadcast: bool) -> WireMode | None:
    """The wire mode for one upstream step, or None when the types cannot be wired."""
    out, want = up.return_type, inp.annotation
    if not up.is_array and not down.is_array:
        return WireMode.DIRECT if compatible(out, want) else None
    out_item, want_item = list_item(out), list_item(want)
    if not up.is_array:  # singleton -> array
        if broadcast:
            return WireMode.BROADCAST if compatible(out, want) else None
        if out_item is not None and compatible(out_item, want):
            return WireMode.FAN_OUT
        if out is Any:
            return WireMode.BROADCAST if want_item is not None else WireMode.FAN_OUT
        return WireMode.BROADCAST if compatible(out, want) else None
    if not down.is_array:  # array -> singleton
        if want_item is None:
            return WireMode.GATHER if want is Any else None
        if compatible(out, want_item):
            return WireMode.GATHER
        if out_item is not None and compatible(out_item, want_item):
            return WireMode.GATHER_FLATTEN
        return None
    if broadcast:  # array -> array, whole gathered list to every element
        if want_item is None:
            return WireMode.BROADCAST_GATHERED if want is Any else None
        return WireMode.BROADCAST_GATHERED if compatible(out, want_item) else None
    if compatible(out, want):
        return WireMode.CHAIN
    if out_item is not None and compatible(out_item, want):
        return WireMode.CHAIN_FLATTEN
    return None


def resolve_wires(task: TaskSpec, specs: dict[str, TaskSpec]) -> tuple[Wire, ...]:
    """Resolve and type-check every data input of ``task`` (upstream names must exist)."""
    wires: list[Wire] = []
    for inp in task.results:
        assert inp.result is not None
        mode: WireMode | None = None
        for step in inp.result.steps:
            up = specs[step]
            this = infer_mode(up, task, inp, inp.result.broadcast)
            if this is None or (mode is not None and this is not mode):
                detail = (
                    f"cannot wire {'array ' if up.is_array else ''}task '{step}' returning "
                    f"{type_name(up.return_type)} into {'array ' if task.is_array else ''}task "
                    f"'{task.name}' parameter '{inp.name}: {type_name(inp.annotation)}'"
                )
                if this is not None:
                    detail += f" ({this} does not match the first step's {mode})"
                raise WiringError(detail + "; fix one of the two annotations")
            mode = this
        assert mode is not None
        wires.append(Wire(inp.name, inp.result.steps, mode))
    if task.is_array and not any(w.mode.per_element for w in wires):
        raise WiringError(
            f"array task '{task.name}' has no input that fans out or chains (only broadcast "
            "inputs), so its size is unknown; give it a Result input that is a list element"
        )
    return tuple(wires)
