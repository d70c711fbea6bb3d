"""Python parameter values brought to their annotated type (what the command line parses)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from reflow.core.annotations import coerce
from reflow.errors import ParameterError


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Int64:
    """Stands in for numpy.int64: an integer by ``__index__``, not an int subclass."""

    def __index__(self) -> int:
        return 7


class Float64(float):
    """Stands in for numpy.float64, a float subclass the codec would refuse."""


@pytest.mark.parametrize(("annotation", "given", "expected"), [
    (Path, "/data", Path("/data")),
    (float, 1, 1.0),
    (float, Float64(2.5), 2.5),
    (int, Int64(), 7),
    (int, Level.HIGH, 3),
    (str, Path("/a"), "/a"),
    (datetime, "2024-05-01T06:00:00", datetime(2024, 5, 1, 6)),
    (date, "2024-05-01", date(2024, 5, 1)),
    (Color, "red", Color.RED),
    (list[Path], ("/a", "/b"), [Path("/a"), Path("/b")]),
    (tuple[int, ...], [1, 2], (1, 2)),
    (int | None, None, None),
    (Literal["a", "b"], "a", "a"),  # choices are checked elsewhere
    (Any, {1, 2}, {1, 2}),  # no rule: the task decides
])
def test_values_become_the_annotated_type(annotation: Any, given: Any, expected: Any) -> None:
    value = coerce(annotation, given, "p")
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("annotation", "given", "message"), [
    (int, True, "parameter 'p' expects int, got bool True; pass an int"),
    (float, "big", "parameter 'p' expects float, got str 'big'; pass a float"),
    (bool, 1, "parameter 'p' expects bool, got int 1; pass a bool"),
    (datetime, "yesterday", "parameter 'p' expects datetime, got str 'yesterday'"),
    (Color, "blue", "parameter 'p' got 'blue'; choose one of: 'red'"),
])
def test_values_that_cannot_be_the_type_are_refused(
    annotation: Any, given: Any, message: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        coerce(annotation, given, "p")
    assert str(caught.value).startswith(message)
