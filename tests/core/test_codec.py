"""The typed JSON codec: exact round-trips, distinct encodings, errors that locate the culprit."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import typing
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reflow.core.codec import (
    JSON,
    ManifestCodec,
    canonical_json,
    decode,
    display,
    dumps,
    encode,
    loads,
)
from reflow.errors import EncodeError


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SLOW = "slow"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Shape(enum.Enum):
    SQUARE = (2, 2)


@dataclasses.dataclass(frozen=True)
class Tile:
    path: Path
    bounds: tuple[int, int]
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Mosaic:
    name: str
    tiles: list[Tile]
    mode: Mode
    extra: dict[str, Any]
    area: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.area = len(self.tiles)


@dataclasses.dataclass
class Bag:
    tags: Any


class Pair(typing.NamedTuple):
    a: int
    b: int


class Label(str):
    pass


def assert_identical(got: Any, expected: Any) -> None:
    """Equal AND the same types all the way down (== alone treats True as 1 and (1,) unlike)."""
    assert type(got) is type(expected), f"{type(got)} != {type(expected)}"
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_identical(g, e)
    elif isinstance(expected, dict):
        assert sorted(got) == sorted(expected)  # key order is not part of a value
        for key in expected:
            assert_identical(got[key], expected[key])
    elif dataclasses.is_dataclass(expected):
        for field in dataclasses.fields(expected):
            assert_identical(getattr(got, field.name), getattr(expected, field.name))
    else:
        assert got == expected
        if isinstance(expected, float):
            assert math.copysign(1, got) == math.copysign(1, expected)


ROUND_TRIP = {
    "str": "hello",
    "empty str": "",
    "unicode": "ünïcødé ☃ \u2028",
    "control chars": "a\x00b\nc",
    "int": -42,
    "big int": 2**90,
    "float": 1.25,
    "negative zero": -0.0,
    "tiny float": 5e-324,
    "true": True,
    "false": False,
    "none": None,
    "empty list": [],
    "empty dict": {},
    "mixed list": [1, "a", None, 2.5, False],
    "nested dict": {"a": {"b": [1, {"c": None}]}},
    "tuple": (1, "two", 3.0),
    "empty tuple": (),
    "nested tuple": ((1,), [2, (3,)]),
    "absolute path": Path("/data/run/out.nc"),
    "relative path": Path("rel/x.txt"),
    "naive datetime": datetime(2024, 5, 1, 12, 30, 15, 123456),
    "utc datetime": datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
    "offset datetime": datetime(
        2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))
    ),
    "date": date(2024, 2, 29),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "enum": Color.RED,
    "enum int value": Color.BLUE,
    "str enum": Mode.FAST,
    "int enum": Level.HIGH,
    "enum tuple value": Shape.SQUARE,
    "dict with $t key": {"$t": "tuple", "v": [1, 2]},
    "nested $t keys": {"$t": {"$t": 1}, "v": [{"$t": "path"}]},
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "non-finite in list": [math.inf, 1.0, -math.inf],
    "dataclass": Tile(Path("a.tif"), (0, 1), ["x"]),
    "nested dataclass": Mosaic(
        "m",
        [Tile(Path("a.tif"), (0, 1)), Tile(Path("b.tif"), (1, 2), ["sea"])],
        Mode.SLOW,
        {"when": date(2020, 1, 1), "ids": (uuid.UUID(int=7),)},
    ),
    "everything in a list": [Path("p"), (1,), Color.RED, {"$t": 0}, math.nan, date(2000, 1, 1)],
}


@pytest.mark.parametrize("value", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_round_trip_is_exact(value: Any) -> None:
    assert_identical(decode(encode(value)), value)
    assert_identical(loads(dumps(value)), value)


@pytest.mark.parametrize("value", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_encoding_is_stable_after_a_round_trip(value: Any) -> None:
    # A cached value read back from the store must hash exactly as the freshly produced one.
    text = dumps(value)
    assert dumps(loads(text)) == text


def test_non_str_enum_members_keep_their_class() -> None:
    assert encode(Mode.FAST) == {"$t": "enum", "cls": f"{__name__}:Mode", "v": "fast"}
    assert encode(Level.LOW)["$t"] == "enum"  # type: ignore[index,call-overload]
    assert loads(dumps(Mode.FAST)) is Mode.FAST


def test_zoneinfo_datetime_comes_back_as_the_same_instant() -> None:
    value = datetime(2024, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    back = loads(dumps(value))
    assert back == value
    assert back.utcoffset() == timedelta(hours=2)


def test_every_pure_path_flavour_decodes_to_path() -> None:
    assert loads(dumps(PurePosixPath("a/b"))) == Path("a/b")
    assert loads(dumps(PureWindowsPath(r"C:\data\x.nc"))) == Path("C:/data/x.nc")


def test_non_init_dataclass_field_is_restored_as_stored() -> None:
    mosaic = Mosaic("m", [], Mode.FAST, {})
    mosaic.area = 99
    assert loads(dumps(mosaic)).area == 99


def test_canonical_text_is_sorted_compact_and_keeps_unicode() -> None:
    assert dumps({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert dumps({"a": 1, "b": 2}) == dumps({"b": 2, "a": 1})
    assert canonical_json({"z": [1, 2], "a": None}) == '{"a":null,"z":[1,2]}'
    assert dumps((1,)) == '{"$t":"tuple","v":[1]}'
    assert dumps({"$t": 1}) == '{"$t":"dict","v":{"$t":1}}'


def test_manifest_codec_is_the_same_codec() -> None:
    value = {"p": Path("x"), "t": (1, 2)}
    assert ManifestCodec.dumps(value) == dumps(value)
    assert ManifestCodec().encode(value) == encode(value)
    assert_identical(ManifestCodec.loads(ManifestCodec.dumps(value)), value)
    assert ManifestCodec.canonical_json(encode(value)) == dumps(value)


DISTINCT = {
    "list vs tuple": ([1, 2], (1, 2)),
    "path vs str": (Path("a/b"), "a/b"),
    "true vs 1": (True, 1),
    "false vs 0": (False, 0),
    "1 vs 1.0": (1, 1.0),
    "0.0 vs -0.0": (0.0, -0.0),
    "enum vs its value": (Color.RED, "red"),
    "str enum vs str": (Mode.FAST, "fast"),
    "int enum vs int": (Level.LOW, 1),
    "tuple vs its tagged look-alike": ((1,), {"$t": "tuple", "v": [1]}),
    "date vs midnight": (date(2024, 1, 1), datetime(2024, 1, 1)),
    "naive vs utc datetime": (datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC)),
    "uuid vs str": (uuid.UUID(int=1), str(uuid.UUID(int=1))),
    "nan vs 'nan'": (math.nan, "nan"),
    "none vs 'null'": (None, "null"),
    "dataclass vs its fields": (Bag([1]), {"tags": [1]}),
}


@pytest.mark.parametrize(("a", "b"), DISTINCT.values(), ids=DISTINCT.keys())
def test_different_values_never_share_an_encoding(a: Any, b: Any) -> None:
    assert dumps(a) != dumps(b)
    assert type(loads(dumps(a))) is type(a)
    assert type(loads(dumps(b))) is type(b)


def _encode_error(value: Any, where: str = "output of task 'convert'") -> str:
    with pytest.raises(EncodeError) as info:
        encode(value, where=where)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot encode {where}: ")
    return message


REFUSED = {
    "set deep in a list": ([1, 2, {"x": {3, 4}}], "'set' at [2][\"x\"]", "sorted list"),
    "frozenset": (frozenset({1}), "'frozenset' is not supported", "sorted list"),
    "bytes in tuple": ((1, b"raw"), "'bytes' at [1]", "decode the bytes"),
    "bytearray": ({"blob": bytearray(b"x")}, "'bytearray' at [\"blob\"]", "decode the bytes"),
    "object": ([object()], "'object' at [0]", "dataclass instead"),
    "int key": ({"a": {1: "x"}}, "dict key of type 'int' at [\"a\"]", "str keys"),
    "tuple key": ({(1, 2): "x"}, "dict key of type 'tuple' is not a str", "str keys"),
    "str enum key": ({Mode.FAST: 1}, "dict key of type", "Enum's .value"),
    "class": (Tile, f"class '{__name__}.Tile'", "import name as a str"),
    "function": ({"f": len}, "'builtin_function_or_method' at [\"f\"]", "function's name"),
    "lambda": (lambda: 1, "'function'", "function's name"),
    "generator": ((i for i in range(3)), "'generator'", "list(...)"),
    "namedtuple": (Pair(1, 2), f"'{__name__}.Pair'", "use a dataclass"),
    "str subclass": (Label("x"), "subclass of str", "plain str"),
    "ordered dict": (OrderedDict(a=1), "subclass of dict", "plain dict"),
    "complex": (1j, "'complex'", "dataclass instead"),
    "dataclass field": (Bag({1}), "'set' at .tags", "sorted list"),
    "dataclass field nested": ([Bag([b"x"])], "'bytes' at [0].tags[0]", "decode the bytes"),
    "key of escaped dict": ({"$t": 1, "k": {2}}, "'set' at [\"k\"]", "sorted list"),
}


@pytest.mark.parametrize(("value", "located", "fix"), REFUSED.values(), ids=REFUSED.keys())
def test_unencodable_values_are_refused_with_location_and_fix(
    value: Any, located: str, fix: str
) -> None:
    message = _encode_error(value)
    assert located in message
    assert fix in message


def test_parameter_is_named_and_str_is_never_used_as_fallback() -> None:
    class Friendly:
        def __str__(self) -> str:
            return "looks fine"

    message = _encode_error({"start": Friendly()}, where="parameter 'start' of task 'prepare'")
    assert "parameter 'start' of task 'prepare'" in message
    assert "looks fine" not in message
    assert "Friendly" in message


def test_encode_error_is_a_type_error_with_default_where() -> None:
    with pytest.raises(TypeError, match=r"^cannot encode value: value of type 'set'"):
        dumps({1})


def test_class_defined_in_a_function_is_refused_at_encode_time() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    message = _encode_error([Local(1)])
    assert "at [0]" in message
    assert "move class 'Local' to module level" in message


def test_self_referencing_value_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    assert "contains itself" in _encode_error(loop)


def test_decoding_a_class_that_cannot_be_imported_names_it() -> None:
    data: JSON = {"$t": "dataclass", "cls": "no_such_module_xyz:Thing", "v": {}}
    with pytest.raises(EncodeError, match=r"class 'no_such_module_xyz:Thing' cannot be imported"):
        decode(data)
    with pytest.raises(EncodeError, match=r"class 'codec_test_gone:Old' cannot be imported"):
        loads('{"$t":"enum","cls":"codec_test_gone:Old","v":1}')
    with pytest.raises(EncodeError, match=r"'reflow.core.codec:TAG' is no longer a dataclass"):
        decode({"$t": "dataclass", "cls": "reflow.core.codec:TAG", "v": {}})


def test_decoding_stale_enum_and_dataclass_values_fails_clearly() -> None:
    with pytest.raises(EncodeError, match=r"Enum '.*:Color' has no member with value 'green'"):
        decode({"$t": "enum", "cls": f"{__name__}:Color", "v": "green"})
    stale: JSON = {"$t": "dataclass", "cls": f"{__name__}:Bag", "v": {"tags": 1, "gone": 2}}
    with pytest.raises(EncodeError, match=r"no longer has field\(s\) gone"):
        decode(stale)
    incomplete: JSON = {"$t": "dataclass", "cls": f"{__name__}:Bag", "v": {}}
    with pytest.raises(EncodeError, match=r"dataclass '.*:Bag' rejected its stored fields"):
        decode(incomplete)


def test_decoding_unknown_or_malformed_tags_fails_clearly() -> None:
    with pytest.raises(EncodeError, match=r"unknown tag 'frobnicate'"):
        decode({"$t": "frobnicate", "v": 1})
    with pytest.raises(EncodeError, match=r"malformed tagged data"):
        decode({"$t": "path"})
    with pytest.raises(EncodeError, match=r"malformed tagged data"):
        decode({"$t": "float", "v": "huge"})


def test_non_finite_floats_in_canonical_json_are_rejected() -> None:
    # canonical_json is for already-encoded data: a raw NaN there is a bug, not a value.
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json([math.nan])


def test_loads_skips_the_decoding_walk_only_when_no_tag_can_be_present() -> None:
    assert loads('[1,"a",{"b":[null,true]}]') == [1, "a", {"b": [None, True]}]
    assert loads(dumps((1, 2))) == (1, 2)  # tagged: decoded
    assert loads(dumps(["$t", {"$t": 1}])) == ["$t", {"$t": 1}]  # user data spelling the tag
    # An escaped "$" still spells the tag key: decoded, not returned raw.
    assert loads('{"\\u0024t":"tuple","v":[1]}') == (1,)


def test_display_writes_encoded_values_as_python_would_for_people() -> None:
    tile = Tile(Path("/d/a.tif"), (1, 2))
    assert display(encode(Color.RED)) == "Color('red')"
    assert display(encode(Shape.SQUARE)) == "Shape((2, 2))"
    assert display(encode(tile)) == "Tile(path=Path('/d/a.tif'), bounds=(1, 2), tags=[])"
    assert display(encode((1,))) == "(1,)"
    assert display(encode({"when": date(2020, 1, 2), "n": None, "ok": True})) == (
        "{'when': date('2020-01-02'), 'n': None, 'ok': True}")
    assert display(encode({"$t": "not a tag"})) == "{'$t': 'not a tag'}"  # escaped user key


def test_undecodable_file_name_bytes_survive_as_escapes() -> None:
    """``os.fsdecode`` gives lone surrogates for them; raw, no database could store the text."""
    names = [os.fsdecode(b"data_\xff.nc"), "caf\u00e9.nc"]
    text = dumps(names)
    text.encode("utf-8")  # strict: what a database driver does
    assert "\u00e9" in text  # other text is kept as it is
    assert loads(text) == names
