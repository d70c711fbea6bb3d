"""Run parameters: from the tasks' ``Param`` inputs to one flat, CLI-shaped list and back.

One list (``collect_parameters``) feeds the generated CLI flags, ``describe()`` and
``resolve_parameters``, so Python calls and the command line can never disagree about what a
parameter is called or whether it is required.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reflow.core.annotations import coerce, literal_choices, sequence_item
from reflow.core.codec import dumps
from reflow.core.params import Param
from reflow.core.spec import InputSpec, TaskSpec
from reflow.core.wiring import type_name
from reflow.errors import GraphError, MissingParameterError, ParameterError, suggestion

_MISSING: Any = object()


@dataclass(frozen=True)
class CliParam:
    """One run parameter as users address it: a Python keyword and a CLI flag."""

    name: str
    key: str  # keyword for run_local/submit: name, or <task>_<name> for local params
    flag: str
    tasks: tuple[str, ...]
    annotation: Any
    required: bool
    default: Any
    namespace: str
    help: str
    short: str | None

    @property
    def spellings(self) -> list[str]:
        """Other flags accepted for this parameter besides ``flag`` (never shown in help).

        ``flag`` turns underscores into dashes; the spec writes a local flag as
        ``--<task>-<param>``, and users type Python names, so ``--my_task-b_val`` and
        ``--my_task_b_val`` set ``--my-task-b-val`` too.
        """
        forms = [f"--{self.tasks[0]}-{self.name}" if self.namespace == "local" else "",
                 f"--{self.key}"]
        return [f for f in dict.fromkeys(forms) if f and f != self.flag]

    @property
    def choices(self) -> list[Any] | None:
        """A ``Literal``'s values or an Enum's member values: what the flag accepts (for
        ``list[Literal[...]]``, what each of its values may be)."""
        item = sequence_item(self.annotation)
        choices = literal_choices(item[0] if item is not None else self.annotation)
        return None if choices is None else [as_cli_value(c) for c in choices]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.tasks[0],
            "flag": self.flag,
            "type": type_name(self.annotation),
            "required": self.required,
            "default": None if self.required else as_cli_value(self.default),
            "namespace": self.namespace,
            "help": self.help,
            "choices": self.choices,
        }


def _keyed(specs: Iterable[TaskSpec]) -> Iterator[tuple[TaskSpec, InputSpec, Param, str]]:
    """Each parameter input with its Param and its key: its name, or ``<task>_<name>`` when
    local (the Python keyword; the flag is the key with dashes)."""
    for spec in specs:
        for inp in spec.params:
            assert inp.param is not None
            local = inp.param.namespace == "local"
            yield spec, inp, inp.param, f"{spec.name}_{inp.name}" if local else inp.name


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def collect_parameters(specs: Iterable[TaskSpec]) -> list[CliParam]:
    """Every run parameter of the workflow, global ones merged by name, in task order."""
    out: dict[str, CliParam] = {}
    for spec, inp, param, key in _keyed(specs):
        default = _MISSING if inp.required else inp.default
        seen = out.get(key)
        if seen is None:
            out[key] = CliParam(
                name=inp.name,
                key=key,
                flag=_flag(key),
                tasks=(spec.name,),
                annotation=inp.annotation,
                required=inp.required,
                default=default,
                namespace=param.namespace,
                help=param.help,
                short=param.short,
            )
        else:
            out[key] = CliParam(
                name=seen.name,
                key=key,
                flag=seen.flag,
                tasks=(*seen.tasks, spec.name),
                annotation=seen.annotation,
                required=seen.required or inp.required,
                default=seen.default if seen.default is not _MISSING else default,
                namespace=seen.namespace,
                help=seen.help or param.help,
                short=seen.short or param.short,
            )
    return list(out.values())


def check_parameters(specs: Iterable[TaskSpec]) -> None:
    """Raise for parameters that cannot share the flag they would get (``validate()``).

    Two parameters meet on one flag when both are global with one name (they must then
    agree on type and default, or one task would silently get the other's) or when names
    run together (task ``a_b``'s local ``c`` and task ``a``'s local ``b_c`` are both
    ``--a-b-c``). ``collect_parameters`` merges regardless, so ``--help`` still works on
    such a workflow and can show the flags.
    """
    first: dict[str, tuple[str, InputSpec]] = {}
    owners: dict[str, str] = {}  # short letter -> its flag
    shorts: dict[str, str] = {}  # flag -> its short letter
    for spec, inp, param, key in _keyed(specs):
        local = param.namespace == "local"
        flag = _flag(key)
        where = f"parameter '{inp.name}' of task '{spec.name}'"
        if key in first:
            task, other = first[key]
            assert other.param is not None
            there = f"parameter '{other.name}' of task '{task}'"
            if local or other.param.namespace == "local":
                raise GraphError(f"{where} and {there} both become the flag {flag}; "
                                 "rename one of them")
            fix = "or make one Param(namespace='local')"
            if not _same_type(other.annotation, inp.annotation):
                raise GraphError(
                    f"global {where} is {type_name(inp.annotation)} but {there} is "
                    f"{type_name(other.annotation)}; they share {flag}, so give them one "
                    f"type, {fix}")
            if not (inp.required or other.required) and not _same(inp.default,
                                                                 other.default):
                raise GraphError(
                    f"global {where} defaults to {inp.default!r} but {there} to "
                    f"{other.default!r}; they share {flag}, so give them one default, {fix}")
        else:
            first[key] = (spec.name, inp)
        short = (param.short or "").lstrip("-")
        if short and owners.setdefault(short, flag) != flag:
            raise GraphError(f"{where} asks for the short flag -{short}, which "
                             f"{owners[short]} already has; give it another letter")
        if short and shorts.setdefault(flag, short) != short:  # one flag, one short form
            raise GraphError(f"{where} asks for the short flag -{short}, but {flag} already "
                             f"has -{shorts[flag]}; give both the same letter")


def _same_type(a: Any, b: Any) -> bool:
    """Whether two annotations name one type: ``List[str]`` is ``list[str]``, and
    ``Optional[int]`` is ``int | None``."""
    return bool(a == b) or _type_key(a) == _type_key(b)


def _type_key(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    if origin is types.UnionType:
        origin = typing.Union
    return origin, tuple(_type_key(arg) for arg in typing.get_args(annotation))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # a default whose == cannot answer: only the same object is the same
        return a is b


def resolve_parameters(
    specs: Mapping[str, TaskSpec], given: Mapping[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Per-task parameter values (defaults applied) and the run's parameter record.

    Passing a default explicitly yields exactly the same values as omitting it, so the two
    produce the same identity. All missing required parameters are reported at once.
    """
    params = collect_parameters(specs.values())
    by_key = {p.key: p for p in params}
    unknown = [k for k in given if k not in by_key]
    if unknown:
        k = unknown[0]
        hint = suggestion(k, by_key) or (
            f" Known parameters: {', '.join(by_key)}." if by_key else " This workflow has none."
        )
        raise ParameterError(f"unknown parameter '{k}'.{hint}")
    missing = [p for p in params if p.required and p.key not in given]
    if missing:
        flags = ", ".join(f"{p.flag} ({'/'.join(p.tasks)})" for p in missing)
        keys = ", ".join(f"{p.key}=..." for p in missing)
        raise MissingParameterError(
            f"missing required parameter{'s' if len(missing) > 1 else ''}: {flags}; "
            f"pass {'them' if len(missing) > 1 else 'it'} on the command line or as {keys}"
        )
    given = {key: coerce(by_key[key].annotation, value, key) for key, value in given.items()}
    for key, value in given.items():
        _check_choice(by_key[key], value)
    # Given values first, then defaults: the error names what the user is most likely to fix.
    for p in sorted(params, key=lambda p: p.key not in given):
        value = given.get(p.key, p.default)
        if value is not _MISSING:
            tasks = ", ".join(f"'{t}'" for t in p.tasks)
            dumps(value, where=f"parameter '{p.key}' of task {tasks}")
    per_task: dict[str, dict[str, Any]] = {name: {} for name in specs}
    record: dict[str, Any] = {}
    for p in params:
        for task in p.tasks:
            inp = next(i for i in specs[task].params if i.name == p.name)
            value = given[p.key] if p.key in given else _typed_default(inp.annotation, inp.default)
            per_task[task][p.name] = value
        record[p.key] = given.get(p.key, None if p.default is _MISSING else p.default)
    return per_task, record


def _typed_default(annotation: Any, default: Any) -> Any:
    """A default as its annotated type, so omitting it and passing it give one identity.

    A default that is not of its type (a sentinel, say) is the author's choice and stays.
    """
    try:
        return coerce(annotation, default, "")
    except ParameterError:
        return default


def _check_choice(p: CliParam, value: Any) -> None:
    choices = p.choices  # as the command line writes them: an Enum member by its value
    if choices is None or value is None:
        return
    values = value if sequence_item(p.annotation) is not None else [value]
    for one in values:
        if as_cli_value(one) not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ParameterError(f"parameter {p.flag} got {one!r}; choose one of: {allowed}")


def as_cli_value(value: Any) -> Any:
    """A default or choice as the command line writes it (an Enum member by its value)."""
    if isinstance(value, enum.Enum):
        return as_cli_value(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [as_cli_value(v) for v in value]
    return str(value)
