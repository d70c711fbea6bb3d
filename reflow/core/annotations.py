"""What a parameter's annotation asks for, and values from Python brought to that type.

The command line parses text by the annotation (``reflow.cli.values``); values passed from
Python arrive as whatever the caller had. A ``Path`` parameter given ``"/data"`` or a ``float``
given ``1`` would then hash differently from the same value typed on the command line
(``Path`` and ``str``, ``1`` and ``1.0`` never hash alike), and be recomputed for no reason.
``coerce`` applies the same lossless conversions the command line implies and refuses values
that cannot be the annotated type, naming the parameter.
"""

from __future__ import annotations

import enum
import numbers
import operator
import types
import typing
from datetime import date, datetime
from pathlib import PurePath
from typing import Any
from uuid import UUID

from reflow.errors import ParameterError


def strip_optional(annotation: Any) -> Any:
    """``T | None`` -> ``T``; anything else unchanged."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def sequence_item(annotation: Any) -> tuple[Any, type] | None:
    """For ``list[T]`` and ``tuple[T, ...]``: (T, container); else None."""
    base = strip_optional(annotation)
    origin = typing.get_origin(base)
    args = typing.get_args(base)
    if base is list or origin is list:
        return (args[0] if args else str), list
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0], tuple
    return None


def literal_choices(annotation: Any) -> list[Any] | None:
    """The allowed values of a ``Literal`` (or an Enum's member values), else None."""
    base = strip_optional(annotation)
    if typing.get_origin(base) is typing.Literal:
        return list(typing.get_args(base))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [m.value for m in base]
    return None


def coerce(annotation: Any, value: Any, name: str) -> Any:
    """``value`` as the type ``annotation`` names, for the conversions that lose nothing.

    Types without a rule here (``Any``, unions, dataclasses, ...) are left to the task.
    """
    if value is None:
        return None
    item = sequence_item(annotation)
    if item is not None:
        item_type, container = item
        if not isinstance(value, list | tuple):  # a str would be taken letter by letter
            raise ParameterError(
                f"parameter '{name}' expects a {container.__name__} of "
                f"{_type_text(item_type)}, got {type(value).__name__} "
                f"{value!r}; pass a {container.__name__}, e.g. {container([value])!r}"
            )
        return container(coerce(item_type, v, name) for v in value)
    base = strip_optional(annotation)
    if not isinstance(base, type) or not _has_rule(base):
        return value
    if base in _NUMBERS_AND_TEXT:
        exact = _exact(base, value)
        if exact is not None:
            return exact
    elif isinstance(value, base):
        return value
    if issubclass(base, PurePath) and isinstance(value, str | PurePath):
        return base(value)
    if issubclass(base, enum.Enum):
        return _enum_member(base, value, name)
    parse = _FROM_TEXT.get(base)
    if parse is not None and isinstance(value, str):
        try:
            return parse(value)
        except ValueError:
            pass
    article = "an" if base.__name__[0] in "aeiouAEIOU" else "a"
    raise ParameterError(
        f"parameter '{name}' expects {base.__name__}, got {type(value).__name__} {value!r}; "
        f"pass {article} {base.__name__}"
    )


def _type_text(annotation: Any) -> str:
    """``int``, ``Literal['x', 'y']``: a type as the annotation wrote it."""
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _exact(base: type, value: Any) -> Any:
    """An int, float or str of exactly that type (numpy's ``int64``/``float64``/``str_``
    included: the codec refuses subclasses and foreign numbers), or None.

    A bool is no number here. A member of an Enum that is also an int or str (IntEnum,
    StrEnum) becomes its value, as the command line would give it.
    """
    if isinstance(value, bool):
        return value if base is bool else None
    if isinstance(value, enum.Enum):
        return base(value.value) if isinstance(value, base) else None
    if base is int and hasattr(value, "__index__"):
        return operator.index(value)
    if base is float and isinstance(value, numbers.Real):
        return float(value)
    if base is str and isinstance(value, str | PurePath):
        return str(value)
    return None


_NUMBERS_AND_TEXT = frozenset({int, float, str, bool})


def _has_rule(base: type) -> bool:
    return base in _PLAIN or issubclass(base, PurePath | enum.Enum)


_PLAIN = frozenset({str, int, float, bool, dict, datetime, date, UUID})

_FROM_TEXT: dict[type, Any] = {
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    UUID: UUID,
}


def _enum_member(cls: type[enum.Enum], value: Any, name: str) -> enum.Enum:
    if isinstance(value, enum.Enum):  # the same Enum from the script loaded under another name
        value = value.value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ParameterError(
            f"parameter '{name}' got {value!r}; choose one of: {allowed}"
        ) from None
