"""The workflow's run parameters as ``submit`` flags, generated from ``collect_parameters``.

One list of parameters feeds the flags, ``describe()`` and the engine's own checks, so the
command line and Python can never disagree about a name, a default or whether a value is
required. Flags are declared to typer as text (or switches for ``bool``) and parsed by
``reflow.cli.values``; none is marked required for typer, so that the engine reports every
missing parameter at once (SPEC §1) instead of typer stopping at the first.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reflow.cli.values import is_flag, metavar, parse_value
from reflow.core.annotations import sequence_item
from reflow.core.parameters import as_cli_value
from reflow.errors import ParameterError

if TYPE_CHECKING:
    from reflow.core.parameters import CliParam

PANEL = "Workflow parameters"


@dataclass(frozen=True)
class Flag:
    """One generated flag: the parameter it sets and the keyword typer passes it under."""

    param: CliParam
    argname: str

    @property
    def switch(self) -> bool:
        return is_flag(self.param.annotation)

    @property
    def multiple(self) -> bool:
        return sequence_item(self.param.annotation) is not None

    @property
    def short(self) -> str | None:
        short = self.param.short
        if not short:
            return None
        return short if short.startswith("-") else f"-{short}"

    def names(self) -> list[str]:
        """Every option name the flag occupies (for clash detection)."""
        names = [self.param.flag]
        if self.switch:
            names.append("--no-" + self.param.flag[2:])
        if self.short:
            names.append(self.short)
        return names

    def declarations(self) -> list[str]:
        first = self.param.flag
        if self.switch:
            first = f"{first}/--no-{first[2:]}"
        return [first, self.short] if self.short else [first]

    def help_text(self) -> str:
        from rich.markup import escape

        p = self.param
        parts = [escape(p.help)] if p.help else []
        parts.append(escape(f"(task{'s' if len(p.tasks) > 1 else ''}: {', '.join(p.tasks)})"))
        if p.required:
            parts.append("[red]\\[required][/]")
        elif p.default is not None:
            parts.append(escape(f"[default: {self._default_text()}]"))
        return " ".join(parts)

    def _default_text(self) -> str:
        default = self.param.default
        if self.switch:
            return self.param.flag if default else "--no-" + self.param.flag[2:]
        value = as_cli_value(default)  # an Enum member as the value the flag takes
        if isinstance(value, list):
            return " ".join(str(v) for v in value) or "(empty)"
        return str(value)

    def parameter(self) -> inspect.Parameter:
        value_type: Any = (
            bool | None if self.switch else (list[str] | None if self.multiple else str | None)
        )
        option = typer.Option(
            *self.declarations(),
            help=self.help_text(),
            metavar=None if self.switch else metavar(self.param.annotation),
            rich_help_panel=PANEL,
            show_default=False,
        )
        return inspect.Parameter(
            self.argname,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[value_type, option],
        )


class WorkflowFlags:
    """The flags of a workflow's parameters, minus any that collide with ``reserved`` names."""

    def __init__(self, params: Iterable[CliParam], reserved: Iterable[str]) -> None:
        taken = set(reserved)
        self.flags: list[Flag] = []
        self.clashes: list[str] = []
        for i, param in enumerate(params):
            flag = Flag(param, f"param_{i}")
            clash = [n for n in flag.names() if n in taken]
            if clash:
                if not param.required:  # keeps its default; only the flag is unavailable
                    continue
                self.clashes.append(
                    f"parameter '{param.name}' of task '{param.tasks[0]}' needs the flag "
                    f"{clash[0]}, which submit already uses; rename the parameter or give it "
                    "Param(namespace='local')"
                )
                continue
            taken.update(flag.names())
            self.flags.append(flag)

    def parameters(self) -> list[inspect.Parameter]:
        return [f.parameter() for f in self.flags]

    def multi_value_flags(self) -> set[str]:
        return {n for f in self.flags if f.multiple for n in (f.param.flag, f.short) if n}

    def spellings(self) -> dict[str, str]:
        """Other accepted spellings of the flags (``CliParam.spellings``), to their flag.

        A spelling that is itself some option's name keeps that meaning.
        """
        taken = {n for f in self.flags for n in f.names()}
        out: dict[str, str] = {}
        for f in self.flags:
            for other in f.param.spellings:
                pairs = [(other, f.param.flag)]
                if f.switch:
                    pairs.append(("--no-" + other[2:], "--no-" + f.param.flag[2:]))
                out.update((a, b) for a, b in pairs if a not in taken)
        return out

    def check(self) -> None:
        """Refuse to submit when a required parameter could not get a flag (no submit from
        the command line could ever set it); one with a default simply keeps it."""
        if self.clashes:
            raise ParameterError(self.clashes[0])

    def run_parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``submit``/``plan``: only the flags that were given."""
        out: dict[str, Any] = {}
        for flag in self.flags:
            raw = given.get(flag.argname)
            if raw is None or (flag.multiple and not raw):
                continue
            out[flag.param.key] = (
                raw if flag.switch else parse_value(flag.param.annotation, raw, flag.param.flag)
            )
        return out


def respell(args: Sequence[str], spellings: Mapping[str, str]) -> list[str]:
    """``args`` with every other spelling of a flag (also as ``--flag=value``) replaced by the
    flag itself; everything after ``--`` is left alone."""
    out: list[str] = []
    for i, token in enumerate(args):
        if token == "--":
            out.extend(args[i:])
            break
        name, eq, value = token.partition("=")
        flag = spellings.get(name)
        out.append(token if flag is None else flag + eq + value)
    return out


def spread_values(args: Sequence[str], multi: set[str]) -> list[str]:
    """Accept ``--files a b c`` as well as ``--files a --files b --files c``.

    click options take one value per occurrence; users of the older command line pass
    several after one flag. ``submit`` has no positional arguments, so every bare word after
    a list flag can only be one of its values. ``--`` ends the rewriting. A list flag given
    no value is moved to the end, where click reports that it needs one, instead of taking
    the next flag as its value.
    """
    out: list[str] = []
    empty: list[str] = []
    current: str | None = None
    for i, token in enumerate(args):
        if token == "--":
            out.extend(args[i:])
            break
        if token.startswith("-") and not _is_number(token):
            if current is not None and out[-1] == current:
                empty.append(out.pop())
            current = token if token in multi else None
            out.append(token)
            continue
        if current is not None and out and out[-1] != current:
            out.append(current)
        out.append(token)
    else:
        if current is not None and out[-1] == current:
            empty.append(out.pop())
    return out + empty


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
