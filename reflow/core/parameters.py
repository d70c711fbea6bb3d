"""Run parameters: from the tasks' ``Param`` inputs to one flat, CLI-shaped list and back.

One list (``collect_parameters``) feeds the generated CLI flags, ``describe()`` and
``resolve_parameters``, so Python calls and the command line can never disagree about what a
parameter is called or whether it is required.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reflow.core.annotations import coerce, literal_choices
from reflow.core.codec import dumps
from reflow.core.spec import TaskSpec
from reflow.core.wiring import type_name
from reflow.errors import MissingParameterError, ParameterError, suggestion

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
        """A ``Literal``'s values or an Enum's member values: what the flag accepts."""
        choices = literal_choices(self.annotation)
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


def collect_parameters(specs: Iterable[TaskSpec]) -> list[CliParam]:
    """Every run parameter of the workflow, global ones merged by name, in task order."""
    out: dict[str, CliParam] = {}
    for spec in specs:
        for inp in spec.params:
            assert inp.param is not None
            local = inp.param.namespace == "local"
            key = f"{spec.name}_{inp.name}" if local else inp.name
            default = _MISSING if inp.required else inp.default
            seen = out.get(key)
            if seen is None:
                out[key] = CliParam(
                    name=inp.name,
                    key=key,
                    flag="--" + key.replace("_", "-"),
                    tasks=(spec.name,),
                    annotation=inp.annotation,
                    required=inp.required,
                    default=default,
                    namespace=inp.param.namespace,
                    help=inp.param.help,
                    short=inp.param.short,
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
                    help=seen.help or inp.param.help,
                    short=seen.short or inp.param.short,
                )
    return list(out.values())


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
    if choices is not None and as_cli_value(value) not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ParameterError(f"parameter {p.flag} got {value!r}; choose one of: {allowed}")


def as_cli_value(value: Any) -> Any:
    """A default or choice as the command line writes it (an Enum member by its value)."""
    if isinstance(value, enum.Enum):
        return as_cli_value(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [as_cli_value(v) for v in value]
    return str(value)
