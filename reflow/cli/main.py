"""The global ``reflow`` command: any run in the store, without its pipeline script.

Run commands (status, retry, cancel, why, logs, resume) re-import a run's workflow from the
entry point recorded with it when they need it, so they work from any directory; ``submit``
and ``dag`` take the pipeline file and behave exactly like ``python pipeline.py submit``.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from reflow.cli.guard import USER_ERRORS, fail, guarded, report
from reflow.cli.logs import Stream
from reflow.cli.options import (
    IndexOption,
    JsonOption,
    RunIdArgument,
    StoreOption,
    StorePathOption,
    open_store,
    store_url,
)
from reflow.cli.output import emit, emit_json, is_terminal, stdin_is_terminal
from reflow.cli.run_commands import (
    DEFAULT_LAST,
    AllOption,
    LastOption,
    SinceOption,
    StatusFilterOption,
    UntilOption,
    add_run_commands,
    list_runs,
    load_run,
)
from reflow.cli.script import FormatOption, new_app

PipelineArgument = Annotated[
    str,
    typer.Argument(
        metavar="PIPELINE",
        help="Pipeline script (pipeline.py), optionally :NAME to pick one of its workflows, "
        "or module:NAME.",
        show_default=False,
    ),
]

app = new_app(
    "reflow: content-addressed workflows for HPC clusters. Inspect and steer any run in the "
    "manifest store; submit and draw pipelines by file."
)
add_run_commands(app, None)


@app.command(
    "submit",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def submit(ctx: typer.Context, pipeline: PipelineArgument) -> None:
    """Submit a pipeline by file; the same flags as `python PIPELINE submit`.

    `reflow submit PIPELINE --help` lists that pipeline's flags and parameters.
    """
    # Not @guarded: every option after PIPELINE, --debug included, belongs to the
    # pipeline's own submit command, which reports its errors itself.
    from typer.main import get_command

    from reflow.cli.loading import load_pipeline
    from reflow.cli.script import build_script_app, submit_args
    from reflow.cli.submit import workflow_flags

    if pipeline in ("-h", "--help"):
        emit(ctx.get_help())
        return
    args = list(ctx.args)
    if pipeline.startswith("-"):
        pipeline, args = _pipeline_among([pipeline, *args], ctx)
    try:
        wf = load_pipeline(pipeline)
    except USER_ERRORS as exc:
        raise report(exc, "--debug" in ctx.args) from None
    flags = workflow_flags(wf)
    group = get_command(build_script_app(wf, flags))
    command = group.commands["submit"]  # type: ignore[attr-defined]
    command.main(
        args=submit_args(args, flags),
        prog_name=f"{ctx.find_root().info_name} submit {pipeline}",
    )


def _pipeline_among(tokens: list[str], ctx: typer.Context) -> tuple[str, list[str]]:
    """PIPELINE given after some of its options (``reflow submit --run-dir r p.py``).

    Which options take a value depends on the pipeline, so it is recognised by its form: a
    ``.py`` path (``:NAME`` allowed) or ``module:NAME``.
    """
    for i, token in enumerate(tokens):
        if re.fullmatch(r"[^-].*\.py(:\w+)?|[\w.]+:\w+", token):
            return token, tokens[:i] + tokens[i + 1:]
    raise typer.BadParameter(
        "no pipeline given; usage: reflow submit PIPELINE [OPTIONS], e.g. "
        "`reflow submit pipeline.py --run-dir runs/a`", ctx=ctx, param_hint="PIPELINE")


@app.command("runs")
@guarded
def runs(
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="NAME",
            help="Only runs of this workflow.",
            show_default=False,
        ),
    ] = None,
    last: LastOption = DEFAULT_LAST,
    all_runs: AllOption = False,
    since: SinceOption = None,
    until: UntilOption = None,
    status: StatusFilterOption = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Recorded runs of every workflow, newest first."""
    list_runs(workflow, last, all_runs, since, until, status, as_json, store, store_path)


@app.command("logs")
@guarded
def logs(
    run_id: RunIdArgument,
    task: Annotated[str, typer.Argument(metavar="TASK", help="Task name.")],
    index: IndexOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the instance ends.")
    ] = False,
    stream: Annotated[Stream, typer.Option("--stream", help="Which log to show.")] = "both",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the log file paths as JSON instead.")
    ] = False,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Print the stdout and stderr of one task instance (the latest attempt)."""
    from reflow import actions
    from reflow.cli import logs as log_files

    st = open_store(store, store_path)
    load_run(run_id, st, None)
    actions.check_run_task(st, run_id, task)
    stdout, stderr = actions.log_paths(st, run_id, task, index)
    if as_json:
        emit_json(
            {
                "run_id": run_id,
                "task": task,
                "index": index,
                "stdout": None if stdout is None else str(stdout),
                "stderr": None if stderr is None else str(stderr),
            }
        )
        return
    paths = log_files.choose(stdout, stderr, stream)
    where = f"{task}[{index}] of {run_id}" if index is not None else f"{task} of {run_id}"
    if not follow:
        log_files.show(paths, where)
        return

    def ended() -> bool:
        attempts = st.history(run_id, task, index)
        return bool(attempts) and log_files.instance_ended(attempts[-1].state)

    log_files.follow(paths, ended, where)


@app.command("resume")
@guarded
def resume(
    run_id: RunIdArgument,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Restart the driver of a run whose chain stopped while work was still active."""
    from reflow import actions

    run = load_run(run_id, open_store(store, store_path), None)
    if actions.resume(run):
        emit(f"{run_id}: driver restarted; run is {run.state.value}")
    else:
        emit(f"{run_id}: its driver is still working; nothing to resume (run is "
             f"{run.state.value})")


@app.command("dag")
@guarded
def dag(pipeline: PipelineArgument, fmt: FormatOption = "text", as_json: JsonOption = False,
        store: StoreOption = None, store_path: StorePathOption = None) -> None:
    """Draw a pipeline's task graph as text, mermaid or dot (reads no store)."""
    from reflow.cli.loading import load_pipeline
    from reflow.cli.script import show_dag

    show_dag(load_pipeline(pipeline), fmt, as_json)


@app.command("tui")
@guarded
def tui(
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="[RUN_ID]", help="Open this run directly.", show_default=False),
    ] = None,
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Disable retry, cancel and force.")
    ] = False,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """The terminal UI: runs, their DAG, instances, logs and live transitions."""
    try:
        from reflow.tui.app import open_tui_store, run_tui
    except ModuleNotFoundError as exc:
        if exc.name not in ("reflow.tui", "reflow.tui.app"):
            raise
        raise fail(
            "the terminal UI is not part of this reflow installation yet; use `reflow runs` "
            "and `reflow status RUN_ID` instead"
        ) from None
    st = open_tui_store(run_id, store_url(store, store_path))
    if not (is_terminal() and stdin_is_terminal()):
        raise fail(
            "reflow tui needs a terminal on stdin and stdout; run it in an interactive "
            "shell (ssh -t for a remote one), or use `reflow status RUN_ID`"
        )
    code = run_tui(run_id, st, readonly)
    if code:
        raise typer.Exit(code)


store_app = typer.Typer(
    help="The manifest store: where it is, its schema, upgrades.", no_args_is_help=True
)
app.add_typer(store_app, name="store")


def _store_lines(store: StoreOption, store_path: StorePathOption, create: bool) -> list[str]:
    opened = open_store(store, store_path, create=create)
    info = opened.info()
    state = "up to date" if info.revision == info.head_revision else "behind"
    lines = [
        f"url        = {info.url}",
        f"dialect    = {info.dialect}",
        f"revision   = {info.revision} ({state}; this reflow's head is {info.head_revision})",
        f"runs       = {info.runs}",
        f"instances  = {info.instances}",
    ]
    if create:  # `store upgrade`: say what opening it did (every open upgrades in place)
        before = opened.found_revision
        lines.append("changed    = " + (
            "created" if before is None else
            f"upgraded from {before}" if before != info.revision else "nothing (already current)"))
    return lines


@store_app.command("info")
@guarded
def store_info(
    as_json: JsonOption = False,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Where the store is, its schema revision and how many runs and instances it holds."""
    if as_json:
        from dataclasses import asdict

        emit_json(asdict(open_store(store, store_path).info()))
        return
    for line in _store_lines(store, store_path, create=False):
        emit(line)


@store_app.command("upgrade")
@guarded
def store_upgrade(
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Create the store, or upgrade its schema in place (nothing recorded is lost)."""
    for line in _store_lines(store, store_path, create=True):
        emit(line)


config_app = typer.Typer(help="The configuration file.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("init")
@guarded
def config_init(
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing file with the example.")
    ] = False,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            metavar="FILE",
            show_default=False,
            help="Write here instead of $XDG_CONFIG_HOME/reflow/config.toml.",
        ),
    ] = None,
    store: StoreOption = None,
    store_path: StorePathOption = None,
) -> None:
    """Write a commented example config.toml; --store or --store-path set its \\[defaults]."""
    from reflow.config import write_example_config

    target = write_example_config(path, overwrite=force, store=store, store_path=store_path)
    emit(f"Wrote {target}; uncomment the settings you need.")


def main() -> None:
    """Console-script entry point (``reflow``)."""
    app()


if __name__ == "__main__":
    main()
