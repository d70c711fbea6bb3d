"""The per-script command line, ``python pipeline.py COMMAND`` (``Workflow.cli()``).

Commands, flags and output shapes follow SPEC §6 so that existing users' scripts keep
working. The app is built without validating the graph first: ``--help`` must work on a
broken pipeline and say what is broken, while the commands that need a valid graph (submit,
dag, describe) fail with that same one-line error.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from reflow.cli.flags import respell, spread_values
from reflow.cli.guard import USER_ERRORS, DebugOption, error_message, guarded
from reflow.cli.options import JsonOption, StoreOption, StorePathOption
from reflow.cli.output import emit, emit_json
from reflow.cli.run_commands import (
    DEFAULT_LAST,
    AllOption,
    LastOption,
    SinceOption,
    StatusFilterOption,
    UntilOption,
    add_run_commands,
    list_runs,
)
from reflow.cli.submit import MULTI_VALUE_FLAGS, submit_command, workflow_flags
from reflow.errors import DEBUG_ENV

if TYPE_CHECKING:
    from reflow.cli.flags import WorkflowFlags
    from reflow.core.flow import Workflow

DagFormat = Literal["text", "mermaid", "dot"]
FormatOption = Annotated[DagFormat, typer.Option("--format", "-f", help="Output format.")]


def graph_problem(wf: Workflow) -> str | None:
    """What is wrong with the workflow's graph, or None when it is valid."""
    try:
        wf.validate()
    except USER_ERRORS as exc:
        return error_message(exc)
    return None


def _show_version(value: bool) -> None:
    if value:
        from reflow import __version__

        typer.echo(f"reflow {__version__}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Show reflow's version and exit."
    ),
]


def new_app(help_text: str) -> typer.Typer:
    """A typer app with the settings both command lines share."""
    app = typer.Typer(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(version: VersionOption = False, debug: DebugOption = False) -> None:
        """Only the global options live here; commands do the work."""
        if debug:  # `reflow --debug status ...` as well as `reflow status ... --debug`
            os.environ[DEBUG_ENV] = "1"

    return app


def _invalid_note(problem: str | None) -> str:
    if problem is None:
        return ""
    from rich.markup import escape

    return f"\n\n[bold red]This workflow is invalid:[/] {escape(problem)}"


def build_script_app(
    wf: Workflow, flags: WorkflowFlags | None = None, *, explain_invalid: bool = True
) -> typer.Typer:
    """Every per-script command for ``wf``.

    ``explain_invalid`` validates the graph up front to say in the help text what is wrong;
    commands that do not show help skip it (importing networkx costs a status call ~70 ms).
    """
    from rich.markup import escape

    flags = flags or workflow_flags(wf)
    note = _invalid_note(graph_problem(wf)) if explain_invalid else ""
    app = new_app(f"Workflow [bold]{escape(wf.name)}[/]: submit runs and inspect them.{note}")
    app.command(
        "submit",
        help=f"Submit a run of '{escape(wf.name)}'; prints its run id and run dir.{note}",
    )(submit_command(wf, flags))
    add_run_commands(app, wf)

    @app.command("runs")
    @guarded
    def runs(
        last: LastOption = DEFAULT_LAST,
        all_runs: AllOption = False,
        since: SinceOption = None,
        until: UntilOption = None,
        status: StatusFilterOption = None,
        as_json: JsonOption = False,
        store: StoreOption = None,
        store_path: StorePathOption = None,
    ) -> None:
        """This workflow's runs, newest first."""
        list_runs(wf.name, last, all_runs, since, until, status, as_json, store, store_path)

    @app.command("dag")
    @guarded
    def dag(fmt: FormatOption = "text", as_json: JsonOption = False,
            store: StoreOption = None, store_path: StorePathOption = None) -> None:
        """The task graph as text, mermaid or dot (reads no store)."""
        show_dag(wf, fmt, as_json)

    @app.command("describe")
    @guarded
    def describe(
        as_json: Annotated[bool, typer.Option(
            "--json", help="Accepted as on every reading command: describe always prints JSON."
        )] = True,
        store: StoreOption = None, store_path: StorePathOption = None,
    ) -> None:
        """The workflow as a JSON document (tasks, dependencies, parameters); reads no store."""
        emit_json(wf.describe())

    return app


def show_dag(wf: Workflow, fmt: str, as_json: bool) -> None:
    graph = wf.validate()
    if as_json:
        emit_json(graph.document())
    else:
        emit(graph.render(fmt))


def submit_args(args: list[str], flags: WorkflowFlags) -> list[str]:
    """Let list flags take several values (``--files a b``) after ``submit``, and accept the
    other spellings of parameter flags (``--my_task-b_val`` for ``--my-task-b-val``)."""
    multi = flags.multi_value_flags() | MULTI_VALUE_FLAGS
    return spread_values(respell(args, flags.spellings()), multi)


def run_script_cli(wf: Workflow, argv: list[str] | None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command; exits the process."""
    args = list(sys.argv[1:] if argv is None else argv)
    flags = workflow_flags(wf)
    command = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if command is not None and args[command] == "submit":
        args = args[: command + 1] + submit_args(args[command + 1 :], flags)
    wants_help = not args or any(a in ("-h", "--help") for a in args)
    build_script_app(wf, flags, explain_invalid=wants_help)(args=args)
