"""The inspected form of one decorated task: what it takes, what it returns, how to run it.

Reading the signature once, at decoration time, means every later layer (wiring, planning,
CLI generation, describe) works on plain data and never re-inspects functions.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Annotated, Any, Literal

from reflow.core.params import Param, Result, RunDir
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

    # Derived views, computed once: planning asks for them several times per task and run.
    # (cached_property writes the instance __dict__ directly, so frozen=True still holds.)
    @cached_property
    def params(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind == "param")

    @cached_property
    def results(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind == "result")

    @cached_property
    def rundir_params(self) -> tuple[str, ...]:
        """Names of the parameters that receive the run directory."""
        return tuple(i.name for i in self.inputs if i.kind == "rundir")

    def upstream(self) -> tuple[str, ...]:
        """Every task this one waits for (data first, then ordering), without repeats."""
        return self._upstream

    @cached_property
    def _upstream(self) -> tuple[str, ...]:
        names: list[str] = []
        for inp in self.results:
            assert inp.result is not None
            names.extend(s for s in inp.result.steps if s not in names)
        names.extend(a for a in self.after if a not in names)
        return tuple(names)

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
