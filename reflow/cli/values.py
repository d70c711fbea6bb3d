"""Command-line text to typed parameter values, by the parameter's annotation.

typer only parses a fixed set of simple types, while task parameters may be ``list[Literal]``,
``Path | None``, ``datetime`` with a time zone or an ``Enum``. Parsing here, from the same
annotation the engine checks, means a value given on the command line and the same value
given from Python produce the same identity; a bad value is a one-line ``ParameterError``
naming the flag and what it accepts.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from reflow.core.annotations import literal_choices, sequence_item, strip_optional
from reflow.errors import ParameterError


def is_flag(annotation: Any) -> bool:
    """True for ``bool`` parameters, which become ``--x/--no-x`` switches."""
    return strip_optional(annotation) is bool


def metavar(annotation: Any) -> str:
    """What a flag's value looks like, for the help text."""
    item = sequence_item(annotation)
    if item is not None:
        return metavar(item[0]) + "..."
    choices = literal_choices(annotation)
    if choices is not None:
        return "[" + "|".join(str(c) for c in choices) + "]"
    base = strip_optional(annotation)
    names: dict[Any, str] = {
        int: "INT",
        float: "FLOAT",
        str: "TEXT",
        datetime: "DATETIME",
        date: "DATE",
        UUID: "UUID",
        dict: "JSON",
    }
    if isinstance(base, type) and issubclass(base, Path):
        return "PATH"
    return names.get(base, names.get(typing.get_origin(base), "VALUE"))


def _parse_int(text: str) -> int:
    return int(text.replace("_", ""))


def _parse_float(text: str) -> float:
    return float(text)


def _parse_json_object(text: str) -> Any:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


_PARSERS: dict[Any, tuple[Callable[[str], Any], str]] = {
    str: (str, "text"),
    int: (_parse_int, "a whole number"),
    float: (_parse_float, "a number"),
    datetime: (datetime.fromisoformat, "an ISO-8601 date-time such as 2024-05-01T12:00:00"),
    date: (date.fromisoformat, "an ISO-8601 date such as 2024-05-01"),
    UUID: (UUID, "a UUID"),
    dict: (_parse_json_object, "a JSON object such as '{\"a\": 1}'"),
}


def parse_one(annotation: Any, text: str, flag: str) -> Any:
    """One value of ``annotation`` from its command-line text."""
    base = strip_optional(annotation)
    choices = literal_choices(base)
    if choices is not None:
        for choice in choices:
            if str(choice) == text:
                return base(choice) if isinstance(base, type) else choice
        allowed = ", ".join(str(c) for c in choices)
        raise ParameterError(f"{flag} got {text!r}; choose one of: {allowed}")
    if isinstance(base, type) and issubclass(base, Path):
        return base(text)
    parser = _PARSERS.get(base) or _PARSERS.get(typing.get_origin(base))
    if parser is None:
        # Any, or a type the CLI has no rule for: hand over the text and let the task decide.
        return text
    parse, what = parser
    try:
        return parse(text)
    except ValueError:
        raise ParameterError(f"{flag} got {text!r}; pass {what}") from None


def parse_value(annotation: Any, given: str | Sequence[str], flag: str) -> Any:
    """The parameter value for a flag's text (or, for list parameters, its several texts)."""
    item = sequence_item(annotation)
    if item is None:
        assert isinstance(given, str)
        return parse_one(annotation, given, flag)
    item_type, container = item
    texts = [given] if isinstance(given, str) else list(given)
    return container(parse_one(item_type, text, flag) for text in texts)
