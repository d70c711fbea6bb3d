"""The inspected form of one decorated task: what it takes, what it returns, how to run it.

Reading the signature once, at decoration time, means every later layer (wiring, planning,
CLI generation, describe) works on plain data and never re-inspects functions.
"""

from __future__ import annotations

import inspect
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Annotated, Any, Literal

from reflow.core.params import Param, Result, RunDir
from reflow.core.resources import (
    FAILURE_STATES,
    check_factors,
    check_option,
    chosen_partition,
    parse_duration,
    parse_memory,
)
from reflow.errors import GraphError

InputKind = Literal["param", "result", "rundir"]


@dataclass(frozen=True)
class JobConfig:
    """Scheduler-facing resources and policies of a task (SPEC §1, §5)."""

    cpus: int = 1
    time: str = "00:30:00"
    mem: str = "4G"
    array_parallelism: int | None = None
    submit_options: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    backend: str | None = None
    scheduler_options: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    retry_on: tuple[str | int, ...] = ()
    escalate: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for ``describe()`` and the stored task spec."""
        return {
            "cpus": self.cpus,
            "time": self.time,
            "mem": self.mem,
            "array_parallelism": self.array_parallelism,
            "submit_options": list(self.submit_options),
            "extra": dict(self.extra),
            "backend": self.backend,
            "scheduler_options": dict(self.scheduler_options),
            "retries": self.retries,
            "retry_on": list(self.retry_on),
            "escalate": dict(self.escalate),
        }


def checked_job_config(task: str, **options: Any) -> JobConfig:
    """``JobConfig(**options)``, every resource and retry option checked at decoration.

    A bad one would otherwise surface only when a driver submits or first retries the task,
    far from its definition (a driver that died on ``escalate={"memory": 2}`` left its run
    RUNNING), and on ``run_local`` never. Whole numbers written as ``"4"`` or ``4.0`` are
    taken as the numbers they are, as before these checks.
    """

    def bad(text: str) -> GraphError:
        return GraphError(f"task '{task}': {text}")

    for key, least in (("cpus", 1), ("retries", 0), ("array_parallelism", 1)):
        value = options[key] = _whole(options.get(key))
        if value is None and key == "array_parallelism":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(f"{key}={value!r} must be a whole number of at least {least}")
    for item in options.get("retry_on", ()):
        if isinstance(item, bool) or not isinstance(item, int | str) or (
                isinstance(item, str) and item.upper() not in FAILURE_STATES):
            raise bad(f"retry_on={item!r} is neither an exit code (int) nor a scheduler "
                      f"state; states: {', '.join(sorted(FAILURE_STATES))}")
    config = JobConfig(**options)
    try:
        parse_memory(config.mem)
        parse_duration(config.time)
        rest = dict(config.scheduler_options)
        chosen_partition(rest.pop("partition", None), rest.pop("queue", None))
        rest.pop("account", None)
        for key, value in rest.items():
            if value is not None:
                check_option(key, value)
        check_factors(config.escalate)
    except ValueError as exc:
        raise bad(str(exc)) from None
    return config


def _whole(value: Any) -> Any:
    """``4``, ``"4"`` and ``4.0`` as the int 4; anything else as it is (refused later)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or value is None:
        return value
    try:
        return operator.index(value)  # numpy integers and other int-like types
    except TypeError:
        return value


_NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class InputSpec:
    """One parameter of a task function, classified by its annotation."""

    name: str
    kind: InputKind
    annotation: Any
    default: Any = _NO_DEFAULT
    param: Param | None = None
    result: Result | None = None

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass(frozen=True)
class TaskSpec:
    """A task as the engine sees it: name, function, inputs, return type and options."""

    name: str
    func: Callable[..., Any]
    is_array: bool
    config: JobConfig
    version: str
    cache: bool
    verify: Callable[[Any], bool] | None
    after: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    return_type: Any

    # Derived views, computed once at definition: planning asks for them several times per
    # task and run. Set eagerly because ``functools.cached_property`` takes a lock on first
    # use, which cost more than the views themselves on a 1,000-task chain.
    params: tuple[InputSpec, ...] = field(init=False, repr=False, compare=False)
    results: tuple[InputSpec, ...] = field(init=False, repr=False, compare=False)
    # Names of the parameters that receive the run directory.
    rundir_params: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Inputs that are part of an instance's identity and payload: all but run dirs.
    identity_inputs: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _upstream: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derive = partial(object.__setattr__, self)  # frozen: set once, here
        derive("params", tuple(i for i in self.inputs if i.kind == "param"))
        results = tuple(i for i in self.inputs if i.kind == "result")
        derive("results", results)
        derive("rundir_params", tuple(i.name for i in self.inputs if i.kind == "rundir"))
        derive("identity_inputs", tuple(i.name for i in self.inputs if i.kind != "rundir"))
        names: list[str] = []
        for inp in results:
            assert inp.result is not None
            names.extend(s for s in inp.result.steps if s not in names)
        names.extend(a for a in self.after if a not in names)
        derive("_upstream", tuple(names))

    def upstream(self) -> tuple[str, ...]:
        """Every task this one waits for (data first, then ordering), without repeats."""
        return self._upstream

    def renamed(self, name: str, mapping: Mapping[str, str]) -> TaskSpec:
        """Copy with a new name and upstream references rewritten (for ``include``)."""
        inputs = tuple(
            replace(
                i,
                result=Result(
                    steps=[mapping.get(s, s) for s in i.result.steps],
                    broadcast=i.result.broadcast,
                ),
            )
            if i.result is not None
            else i
            for i in self.inputs
        )
        return replace(
            self, name=name, inputs=inputs, after=tuple(mapping.get(a, a) for a in self.after)
        )


def inspect_inputs(func: Callable[..., Any], task: str) -> tuple[tuple[InputSpec, ...], Any]:
    """Classify every parameter of ``func`` and read its return annotation."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # unresolvable forward reference in the user's module
        raise GraphError(
            f"task '{task}': cannot read the type annotations of {func.__qualname__} ({exc}); "
            "make every annotated name importable at module level"
        ) from exc
    inputs: list[InputSpec] = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise GraphError(
                f"task '{task}': *{p.name} / **{p.name} cannot be wired; name each input"
            )
        inputs.append(_classify(task, p.name, hints.get(p.name, Any), p.default))
    return tuple(inputs), hints.get("return", Any)


def _classify(task: str, name: str, hint: Any, default: Any) -> InputSpec:
    base, markers = _split_annotated(hint)
    if base is RunDir or isinstance(default, RunDir) or name == "run_dir":
        return InputSpec(name, "rundir", base, default)
    results = [m for m in markers if isinstance(m, Result)]
    params = [m for m in markers if isinstance(m, Param)]
    if results and params:
        raise GraphError(
            f"task '{task}': parameter '{name}' is annotated with both Result and Param; keep one"
        )
    if results:
        if default is not _NO_DEFAULT:
            raise GraphError(
                f"task '{task}': Result input '{name}' cannot have a default; remove it"
            )
        return InputSpec(name, "result", base, result=results[0])
    return InputSpec(name, "param", base, default, param=params[0] if params else Param())


def _split_annotated(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(hint) is Annotated:
        args = typing.get_args(hint)
        return args[0], tuple(args[1:])
    return hint, ()
