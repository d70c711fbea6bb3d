"""Where command output goes and in which form: rich for people, stable text for scripts.

Rich tables and colour only when stdout is a terminal; when it is piped, commands print the
SPEC §6 line shapes (scripts parse them) and ``--json`` prints documents. Rich is imported
only on the terminal path, so piped commands stay fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def is_terminal() -> bool:
    """True when a person is probably reading stdout (rich output is wanted)."""
    return sys.stdout.isatty()


def stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def emit(text: str) -> None:
    typer.echo(text)


def emit_json(document: Any) -> None:
    """A document as indented JSON; the same bytes whether or not stdout is a terminal."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)
