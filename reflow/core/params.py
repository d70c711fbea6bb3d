"""Annotation markers that turn plain function parameters into wired task inputs.

A task's signature is its interface: ``Annotated[T, Param(...)]`` is a run parameter (a CLI
flag), ``Annotated[T, Result(step=...)]`` is a data edge from another task, and ``RunDir``
receives the run directory. Keeping the markers inert (plain frozen objects) lets the
definition layer read them without importing anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reflow.errors import GraphError

Namespace = Literal["global", "local"]


@dataclass(frozen=True, init=False)
class Param:
    """CLI metadata for a run parameter.

    ``namespace="local"`` scopes the parameter to one task (flag ``--<task>-<param>``), so two
    tasks may each take their own ``threshold``; global parameters of one name share a flag.
    """

    help: str = ""
    short: str | None = None
    namespace: Namespace = "global"
    extra: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        help: str = "",
        short: str | None = None,
        namespace: Namespace = "global",
        **extra: Any,
    ) -> None:
        if namespace not in ("global", "local"):
            raise GraphError(
                f"Param(namespace={namespace!r}) is not valid; use 'global' or 'local'"
            )
        if short is not None:
            letter = short[1:] if isinstance(short, str) and short.startswith("-") else short
            if not isinstance(letter, str) or len(letter) != 1 or not letter.isalnum() or (
                    letter == "h"):
                raise GraphError(
                    f"Param(short={short!r}) is not valid; use one letter or digit other "
                    "than 'h' (-h is help), e.g. short='n'"
                )
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "short", short)
        object.__setattr__(self, "namespace", namespace)
        object.__setattr__(self, "extra", dict(extra))


@dataclass(frozen=True, init=False)
class Result:
    """A data edge: this parameter receives the output of ``step`` (or of ``steps``, joined).

    How the value arrives (direct, fan-out, gather, chain, broadcast) is inferred from the
    types on both ends, so the annotation only names where data comes from.
    """

    steps: tuple[str, ...]
    broadcast: bool = False

    def __init__(
        self,
        step: str | None = None,
        *,
        steps: list[str] | tuple[str, ...] | None = None,
        broadcast: bool = False,
    ) -> None:
        if step is not None and steps is not None:
            raise GraphError("Result() takes step= or steps=, not both; pick one")
        if step is None and not steps:
            raise GraphError("Result() needs a step: write Result(step='name') or steps=[...]")
        names = (step,) if step is not None else tuple(steps or ())
        for name in names:
            if not isinstance(name, str) or not name:
                raise GraphError(f"Result() step names must be non-empty strings, got {name!r}")
        object.__setattr__(self, "steps", names)
        object.__setattr__(self, "broadcast", bool(broadcast))

    @property
    def step(self) -> str:
        """The first (deciding) step, as the older single-step API exposed it."""
        return self.steps[0]


class RunDir:
    """Marker for the parameter that receives the run directory as a ``Path``.

    Used both as the annotation (``run_dir: RunDir``) and as the default (``= RunDir()``); the
    engine substitutes the real directory, and it never enters the identity (runs in different
    directories must share cache).
    """

    def __repr__(self) -> str:
        return "RunDir()"
