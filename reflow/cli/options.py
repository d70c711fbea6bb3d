"""Options and arguments shared by commands of both command lines, and the store they name.

Declaring them once keeps flag names, help text and completion identical between
``python pipeline.py status`` and ``reflow status``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from reflow.store import Store


def _complete_run_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion for run ids: the most recent runs in the store the command names."""
    try:
        store = open_store(ctx.params.get("store"), ctx.params.get("store_path"))
        runs = store.list_runs(limit=200)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [r.run_id for r in runs if r.run_id.startswith(incomplete)]


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Manifest store as a SQLAlchemy URL (postgresql+psycopg://... or sqlite:///...). "
        "Default: REFLOW_STORE, REFLOW_STORE_PATH, the config file, then the user cache.",
        show_default=False,
    ),
]
StorePathOption = Annotated[
    str | None,
    typer.Option(
        "--store-path",
        metavar="PATH",
        help="Manifest store as a SQLite file path.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of text.")]
TaskOption = Annotated[
    str | None,
    typer.Option("--task", "-t", metavar="TASK", help="Only this task.", show_default=False),
]
RunIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="RUN_ID",
        help="Run id, as printed by submit and runs.",
        autocompletion=_complete_run_id,
        show_default=False,
    ),
]
IndexOption = Annotated[
    int | None,
    typer.Option(
        "--index",
        "-i",
        min=0,
        max=2**31 - 1,
        metavar="I",
        help="Array index of the instance (for array tasks).",
        show_default=False,
    ),
]


def store_url(store: str | None, store_path: str | None) -> str:
    """The store URL a command works on, by SPEC §4's first-match order."""
    from reflow.config import resolve_store_location

    return resolve_store_location(store, store_path=store_path)


def open_store(store: str | None, store_path: str | None, *, create: bool = False) -> Store:
    """Open the store; only commands that record runs create a missing one.

    A mistyped ``--store-path`` on a reading command is then an error naming the path,
    not a new empty database left behind.
    """
    from reflow.store import Store

    return Store.open(store_url(store, store_path), create=create)
