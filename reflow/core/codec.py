"""Typed JSON codec: the one canonical way a value becomes text for hashing and storage.

Identities must be stable across processes, machines and releases, and two different values must
never share a text (a list and a tuple, a ``Path`` and a ``str``, ``True`` and ``1``).  So every
type beyond plain JSON gets an explicit ``{"$t": tag, "v": payload}`` tag, and anything without
a well-defined encoding is refused with a one-line error that says where it sits in the value,
instead of falling back to ``str()`` (whose text can change between runs or collide).

Decisions worth knowing:

- ``1`` and ``1.0`` are different values: JSON keeps ``1`` and ``1.0`` apart and decoding gives
  back an int and a float, so they hash differently.
- Subclasses of supported built-ins that are not Enums (a NamedTuple, an ``OrderedDict``, a
  ``str`` subclass, a pandas ``Timestamp``) are refused: decoding would hand back the base type,
  so a cache hit would give downstream tasks a different object than a fresh run does.
- Dict key order is not part of a value: canonical text sorts keys, so decoded dicts come back
  in sorted order and ``{"a": 1, "b": 2}`` hashes like ``{"b": 2, "a": 1}``.
- Every ``PurePath`` flavour is stored as its posix text and decodes to ``Path``.
- Aware datetimes keep their UTC offset; a ``ZoneInfo`` zone comes back as a fixed offset (the
  same instant, and ``==`` holds).
- Enum and dataclass classes are stored as ``"module:QualName"`` and must be importable from
  module level in the process that decodes them; a class defined in the pipeline script is
  stored under the script's file stem, whatever it was loaded as (``script_modules``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from functools import cache
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path, PurePath
from typing import Any, TypeAlias
from uuid import UUID

from reflow.core import script_modules
from reflow.errors import EncodeError

JSON: TypeAlias = str | int | float | bool | list["JSON"] | dict[str, "JSON"] | None

TAG = "$t"
_TAG_KEY = f'"{TAG}"'
SCALAR_TYPES = _SCALARS = frozenset({str, int, bool, type(None)})
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_SUPPORTED_BASES: tuple[type, ...] = (str, int, float, list, dict, tuple, datetime, date, UUID)
_GENERIC_FIX = (
    "return a str, int, float, bool, None, list, str-keyed dict, tuple, Path, datetime, date, "
    "UUID, Enum or dataclass instead"
)


class _Refusal(Exception):
    """A value with no encoding, raised from deep inside the walk.

    Containers add their step on the way out, so locating the offending element costs nothing
    while encoding succeeds (the common case).
    """

    def __init__(self, subject: str, complaint: str, fix: str) -> None:
        super().__init__(subject)
        self.subject = subject
        self.complaint = complaint
        self.fix = fix
        self.steps: list[str] = []

    def to_error(self, where: str) -> EncodeError:
        at = f" at {''.join(reversed(self.steps))}" if self.steps else ""
        return EncodeError(
            f"cannot encode {where}: {self.subject}{at} {self.complaint}; {self.fix}"
        )


@dataclasses.dataclass(frozen=True)
class _DataclassInfo:
    """What encoding and decoding need about a dataclass, computed once per class."""

    names: tuple[str, ...]
    init_names: frozenset[str]


def encode(value: object, *, where: str = "value") -> JSON:
    """Turn ``value`` into JSON-able data with type tags; ``where`` names it in errors."""
    encoded: JSON = _encode_top(value, where, None)
    return encoded


def encode_collecting_paths(value: object, *, where: str = "value") -> tuple[JSON, list[PurePath]]:
    """Encode and also return every path met, so hashing needs no second walk of the value."""
    paths: list[PurePath] = []
    encoded: JSON = _encode_top(value, where, paths)
    return encoded, paths


def decode(data: JSON) -> Any:
    """Exact inverse of :func:`encode`."""
    try:
        return _dec(data)
    except EncodeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EncodeError(
            f"cannot decode stored value: malformed tagged data ({type(exc).__name__}: {exc}); "
            "the store entry is corrupt or was written by a newer reflow"
        ) from exc


def canonical_json(encoded: object) -> str:
    """Canonical text of already-encoded data: sorted keys, no spaces, UTF-8 kept, no NaN.

    Typed ``object`` so callers can pass their own JSON-shaped dicts (identity pre-images,
    fingerprints) without casts; anything not plain JSON raises ``TypeError``/``ValueError``.
    """
    return _canonical(encoded)


def dumps(value: object, *, where: str = "value") -> str:
    """Canonical JSON text of ``encode(value)``."""
    return _canonical(_encode_top(value, where, None))


def loads(text: str) -> Any:
    """Inverse of :func:`dumps`.

    Text without a tag key decodes to itself, so the walk is skipped when no ``"$t"`` can be
    in it (an escaped character could spell one, hence the ``\\u`` check): most stored outputs
    are plain numbers, strings and lists.
    """
    data = json.loads(text)
    if _TAG_KEY not in text and "\\u" not in text:
        return data
    return decode(data)


# Tagged values shown as the call that makes them (``display``).
_SHOWN_AS = {"path": "Path", "datetime": "datetime", "date": "date", "uuid": "UUID"}


def display(encoded: Any) -> str:
    """An encoded value as Python would write it, for people: ``Color('red')``, not the tag.

    ``why`` shows parameters and inputs that changed; the JSON form of an Enum member or a
    dataclass is noise there. Classes are named, never imported (a reader needs no code).
    """
    if isinstance(encoded, list):
        return "[" + ", ".join(map(display, encoded)) + "]"
    if not isinstance(encoded, dict):
        return repr(encoded)
    tag, payload = encoded.get(TAG), encoded.get("v")
    if tag == "enum":
        return f"{str(encoded['cls']).rpartition(':')[2]}({display(payload)})"
    if tag == "dataclass" and isinstance(payload, dict):
        inner = ", ".join(f"{k}={display(v)}" for k, v in payload.items())
        return f"{str(encoded['cls']).rpartition(':')[2]}({inner})"
    if tag == "tuple" and isinstance(payload, list):
        return "(" + ", ".join(map(display, payload)) + ("," if len(payload) == 1 else "") + ")"
    if tag in _SHOWN_AS:
        return f"{_SHOWN_AS[tag]}({payload!r})"
    items = payload if tag == "dict" and isinstance(payload, dict) else encoded
    return "{" + ", ".join(f"{k!r}: {display(v)}" for k, v in items.items()) + "}"


def _canonical_encoder() -> Callable[[object], str]:
    """Build the canonical serializer once.

    ``JSONEncoder.encode`` rebuilds its C scanner on every call, which costs as much as
    encoding a small value; the engine serializes ~10,000 values per run, so keep one.  No
    circular-reference check: encoded data is a fresh tree.
    """
    reference = json.JSONEncoder(
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    if c_make_encoder is None:  # interpreters without the _json accelerator
        return lambda obj: _escape_surrogates(reference.encode(obj))
    chunks = c_make_encoder(
        None, reference.default, encode_basestring, None, ":", ",", True, False, False
    )
    return lambda obj: _escape_surrogates("".join(chunks(obj, 0)))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(text: str) -> str:
    """``text`` with lone surrogates as JSON escapes, which decode back to them.

    ``os.fsdecode`` and ``Path.iterdir`` turn a file name's undecodable bytes (common on old
    HPC file systems) into lone surrogates; kept raw, the text cannot be written as UTF-8 and
    the store refused it, failing the driver on every step.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def storable_text(text: str) -> str:
    """Free text (an error message, a traceback) that a database can store: lone surrogates
    (see ``_escape_surrogates``) written as ``\\udcff``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_canonical = _canonical_encoder()


class ManifestCodec:
    """The typed JSON codec under its public name ``reflow.ManifestCodec``.

    Stateless, so ``ManifestCodec.dumps(x)`` and ``ManifestCodec().dumps(x)`` both work; engine
    code calls the module functions directly and saves an attribute lookup per value.
    """

    encode = staticmethod(encode)
    decode = staticmethod(decode)
    dumps = staticmethod(dumps)
    loads = staticmethod(loads)
    canonical_json = staticmethod(canonical_json)


# --- encoding ------------------------------------------------------------------------------


def _encode_top(value: object, where: str, paths: list[PurePath] | None) -> Any:
    try:
        return _enc(value, paths)
    except _Refusal as refusal:
        raise refusal.to_error(where) from None
    except RecursionError:
        raise EncodeError(
            f"cannot encode {where}: it is nested too deeply or contains itself; "
            "return a flatter value, or write it to a file and return its Path"
        ) from None


def _enc(x: Any, paths: list[PurePath] | None) -> Any:
    # Exact type checks first: plain JSON is by far the most common input and must stay cheap.
    t = type(x)
    if t in _SCALARS:
        return x
    if t is float:
        return x if math.isfinite(x) else {TAG: "float", "v": _float_text(x)}
    if t is list:
        try:
            return [_enc(item, paths) for item in x]
        except _Refusal as refusal:
            raise _locate(refusal, _indexed(x)) from None
    if t is dict:
        try:
            out = {(k if type(k) is str else _bad_key(k)): _enc(v, paths) for k, v in x.items()}
        except _Refusal as refusal:
            raise _locate(refusal, _keyed(x)) from None
        return {TAG: "dict", "v": out} if TAG in out else out
    return _enc_tagged(x, t, paths)


def _enc_tagged(x: Any, t: type, paths: list[PurePath] | None) -> Any:
    if isinstance(x, Enum):  # before the base types: a StrEnum member is also a str
        try:
            member_value = _enc(x.value, paths)
        except _Refusal as refusal:
            refusal.steps.append(".value")
            raise
        return {TAG: "enum", "cls": _class_ref(t), "v": member_value}
    if t is tuple:
        try:
            return {TAG: "tuple", "v": [_enc(item, paths) for item in x]}
        except _Refusal as refusal:
            raise _locate(refusal, _indexed(x)) from None
    if isinstance(x, PurePath):
        if paths is not None:
            paths.append(x)
        return {TAG: "path", "v": x.as_posix()}
    if t is datetime:
        return {TAG: "datetime", "v": x.isoformat()}
    if t is date:
        return {TAG: "date", "v": x.isoformat()}
    if t is UUID:
        return {TAG: "uuid", "v": str(x)}
    info = _dataclass_info(t)
    if info is not None:
        try:
            fields = {name: _enc(getattr(x, name), paths) for name in info.names}
        except _Refusal as refusal:
            raise _locate(
                refusal, ((f".{name}", getattr(x, name)) for name in info.names)
            ) from None
        return {TAG: "dataclass", "cls": _class_ref(t), "v": fields}
    raise _refusal_for(x)


def _float_text(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def _bad_key(key: object) -> str:
    raise _Refusal(
        f"dict key of type '{_type_name(type(key))}'",
        "is not a str",
        "use str keys (e.g. {str(k): v for k, v in d.items()}, or an Enum's .value), "
        "or a list of (key, value) pairs",
    )


def _indexed(items: Iterable[object]) -> Iterable[tuple[str, object]]:
    return ((f"[{i}]", item) for i, item in enumerate(items))


def _keyed(mapping: Mapping[object, object]) -> Iterable[tuple[str | None, object]]:
    # A key that is not a str is the dict's own fault: it yields None (no step).
    for k, v in mapping.items():
        yield (f"[{json.dumps(k, ensure_ascii=False)}]" if type(k) is str else None), v


def _locate(refusal: _Refusal, children: Iterable[tuple[str | None, object]]) -> _Refusal:
    """Add the step to the first child that refuses to encode (the one that raised).

    Encoding is deterministic, so re-walking the children only on failure finds the same child
    without paying for index bookkeeping on every successful encode.
    """
    for step, child in children:
        if step is None:
            return refusal
        try:
            _enc(child, None)
        except _Refusal:
            refusal.steps.append(step)
            return refusal
    return refusal


@cache
def _class_ref(cls: type) -> str:
    """``module:QualName`` of a class, refused unless decoding will import the same class."""
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise _Refusal(
            f"instance of class '{qualname}'",
            "is defined inside a function",
            f"move class '{cls.__name__}' to module level so it can be imported when decoding",
        )
    module = script_modules.stored_name(cls.__module__)
    try:
        found = script_modules.resolve(module, qualname)
    except (ImportError, AttributeError):
        found = None
    if found is not cls:
        raise _Refusal(
            f"instance of class '{cls.__module__}.{qualname}'",
            "cannot be found again by its import name",
            "define the class once, at module level, in an importable module",
        )
    return f"{module}:{qualname}"


@cache
def _dataclass_info(cls: type) -> _DataclassInfo | None:
    if not dataclasses.is_dataclass(cls):
        return None
    fields = dataclasses.fields(cls)
    return _DataclassInfo(
        names=tuple(f.name for f in fields),
        init_names=frozenset(f.name for f in fields if f.init),
    )


def _type_name(t: type) -> str:
    """A class as the user knows it: a pipeline script's by its file stem (``pipeline.Weird``),
    however this process loaded the script (``script_modules``)."""
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{script_modules.stored_name(t.__module__)}.{t.__qualname__}"


def _refusal_for(x: object) -> _Refusal:
    """Explain why ``x`` has no encoding and what to return instead."""
    t = type(x)
    subject = f"value of type '{_type_name(t)}'"
    complaint = "is not supported"
    if isinstance(x, set | frozenset):
        fix = "convert the set to a sorted list, or return a dataclass"
    elif isinstance(x, bytes | bytearray | memoryview):
        fix = "decode the bytes to a str, or write them to a file and return its Path"
    elif isinstance(x, type):
        subject = f"class '{_type_name(x)}'"
        fix = "store the class's import name as a str instead"
    elif isinstance(x, tuple) and hasattr(x, "_fields"):
        fix = "use a dataclass instead of a NamedTuple, or convert it with tuple(...)"
    elif isinstance(x, _SUPPORTED_BASES):
        base = next(b for b in _SUPPORTED_BASES if isinstance(x, b))
        complaint = (
            f"is a subclass of {base.__name__}, which would decode as a plain {base.__name__}"
        )
        fix = f"convert it to a plain {base.__name__} first"
    elif callable(x):
        fix = "store the function's name as a str instead"
    elif hasattr(x, "tolist"):
        fix = "convert it with .tolist(), or write it to a file and return its Path"
    elif hasattr(x, "__next__"):
        fix = "materialise it with list(...)"
    else:
        fix = _GENERIC_FIX
    return _Refusal(subject, complaint, fix)


# --- decoding ------------------------------------------------------------------------------


def _dec(x: Any) -> Any:
    t = type(x)
    if t is list:
        return [_dec(item) for item in x]
    if t is dict:
        if TAG not in x:
            return {k: _dec(v) for k, v in x.items()}
        decoder = _DECODERS.get(x[TAG])
        if decoder is None:
            raise EncodeError(
                f"cannot decode stored value: unknown tag {x[TAG]!r}; "
                "the value was written by a newer reflow or is corrupt"
            )
        return decoder(x)
    return x


def _dec_enum(x: dict[str, Any]) -> Enum:
    cls = _import_class(x["cls"])
    if not (isinstance(cls, type) and issubclass(cls, Enum)):
        raise EncodeError(f"cannot decode stored value: '{x['cls']}' is no longer an Enum class")
    member_value = _dec(x["v"])
    try:
        return cls(member_value)
    except ValueError:
        raise EncodeError(
            f"cannot decode stored value: Enum '{x['cls']}' has no member with value "
            f"{member_value!r}; restore the member or rerun the task that produced it"
        ) from None


def _dec_dataclass(x: dict[str, Any]) -> object:
    ref = x["cls"]
    cls = _import_class(ref)
    if not isinstance(cls, type) or (info := _dataclass_info(cls)) is None:
        raise EncodeError(f"cannot decode stored value: '{ref}' is no longer a dataclass")
    stored: dict[str, Any] = x["v"]
    unknown = sorted(set(stored) - set(info.names))
    if unknown:
        raise EncodeError(
            f"cannot decode stored value: dataclass '{ref}' no longer has field(s) "
            f"{', '.join(unknown)}; restore them or rerun the task that produced the value"
        )
    kwargs = {name: _dec(v) for name, v in stored.items() if name in info.init_names}
    try:
        obj = cls(**kwargs)
    except Exception as exc:
        raise EncodeError(
            f"cannot decode stored value: dataclass '{ref}' rejected its stored fields "
            f"({type(exc).__name__}: {exc}); rerun the task that produced the value"
        ) from exc
    for name, v in stored.items():
        if name not in info.init_names:  # restore exactly what was stored, even if frozen
            object.__setattr__(obj, name, _dec(v))
    return obj


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tuple": lambda x: tuple(_dec(item) for item in x["v"]),
    "path": lambda x: Path(x["v"]),
    "datetime": lambda x: datetime.fromisoformat(x["v"]),
    "date": lambda x: date.fromisoformat(x["v"]),
    "uuid": lambda x: UUID(x["v"]),
    "float": lambda x: _NON_FINITE[x["v"]],
    "dict": lambda x: {k: _dec(v) for k, v in x["v"].items()},
    "enum": _dec_enum,
    "dataclass": _dec_dataclass,
}


@cache
def _import_class(ref: str) -> object:
    module_name, _, qualname = ref.partition(":")
    try:
        return script_modules.resolve(module_name, qualname)
    except (ImportError, AttributeError) as exc:
        raise EncodeError(
            f"cannot decode stored value: class '{ref}' cannot be imported ({exc}); make module "
            f"'{module_name}' importable (PYTHONPATH) in this process"
        ) from None

