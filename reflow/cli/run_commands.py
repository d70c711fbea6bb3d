"""Commands on recorded runs: status, runs, cancel, retry, why (both command lines).

They need no pipeline file: a run carries its workflow's entry point, so ``reflow retry``
works from any directory. The per-script command line passes its own workflow so that a
retry uses the object in hand instead of importing the script a second time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from reflow.cli.guard import fail, guarded
from reflow.cli.options import (
    IndexOption,
    JsonOption,
    RunIdArgument,
    StoreOption,
    StorePathOption,
    TaskOption,
    open_store,
    store_url,
)
from reflow.cli.output import console, emit, emit_json, is_terminal
from reflow.errors import suggestion

if TYPE_CHECKING:
    from reflow.core.flow import Workflow
    from reflow.run import Run
    from reflow.store import Store

DEFAULT_LAST = 20

ErrorsOption = Annotated[
    bool,
    typer.Option("--errors", "-e", help="Show the last 15 lines of each failed instance's error."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
VerifyOption = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Check the upstream outputs the retried work consumes; recompute any that "
        "no longer check out.",
    ),
]
TaskArgument = Annotated[str, typer.Argument(metavar="TASK", help="Task name.")]
LastOption = Annotated[
    int, typer.Option("--last", "-n", min=1, max=10**9, metavar="N",
                      help="Show the N newest runs.")
]
AllOption = Annotated[
    bool, typer.Option("--all", "-a", help="Show every matching run (no --last limit).")
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="WHEN",
        help="Only runs created at or after WHEN: 2024-05-01, 2024-05-01T12:00, "
        "or an age such as 12h or 7d.",
        show_default=False,
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="WHEN",
        help="Only runs created before WHEN (a bare date includes that day).",
        show_default=False,
    ),
]
StatusFilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help="Only runs in this state (RUNNING, SUCCESS, FAILED, CANCELLED); "
        "repeat or separate with commas.",
        show_default=False,
    ),
]


def load_run(run_id: str, store: Store, wf: Workflow | None) -> Run:
    """Reopen a run (unknown ids fail with a suggestion), reusing ``wf`` when it is its own."""
    from reflow.run import Run

    run = Run.load(run_id, store=store)
    if wf is not None and run.record().workflow == wf.name:
        return Run(run_id, store=store, workflow=wf)
    return run


def confirm(question: str, action: str) -> None:
    """Ask before a destructive action. A piped answer counts (``echo y | ... cancel``, as
    the older package took it); no answer at all (stdin at its end, /dev/null) refuses."""
    try:
        answered = typer.confirm(question, default=False)
    except typer.Abort:
        raise fail(
            f"{action} needs confirmation and stdin gave no answer; pass --yes to {action} "
            "without asking"
        ) from None
    if not answered:
        raise fail(f"{action} refused; nothing was changed")


def _statuses(values: list[str] | None) -> list[str] | None:
    from reflow.errors import suggestion
    from reflow.states import RunState

    if not values:
        return None
    known = [s.value for s in RunState]
    out = []
    for value in (v.strip().upper() for text in values for v in text.split(",")):
        if value not in known:
            hint = suggestion(value, known) or f" Use one of: {', '.join(known)}."
            raise typer.BadParameter(f"unknown run status '{value}'.{hint}", param_hint="--status")
        out.append(value)
    return out


def list_runs(
    workflow: str | None,
    last: int,
    all_runs: bool,
    since: str | None,
    until: str | None,
    status: list[str] | None,
    as_json: bool,
    store: str | None,
    store_path: str | None,
) -> None:
    """``runs``: newest first, in the SPEC §6 line shape when piped."""
    from reflow.cli.timespec import parse_when
    from reflow.config import default_store_missing

    url = store_url(store, store_path)
    if default_store_missing(url):  # a first-time user has no runs, not a broken store
        if as_json:
            emit_json([])
        else:
            emit("No runs found.")
        return
    st = open_store(url, None)
    runs = st.list_runs(
        workflow=workflow,
        statuses=_statuses(status),
        since=parse_when(since, "--since", end_of_day=False) if since else None,
        until=parse_when(until, "--until", end_of_day=True) if until else None,
        limit=None if all_runs else last,
    )
    if as_json:
        from reflow.status_report import run_dict

        emit_json([run_dict(r) for r in runs])
    elif not runs:
        emit("No runs found.")
        known = st.workflows() if workflow is not None else []
        if workflow is not None and workflow not in known:  # a typo, not an empty filter
            hint = suggestion(workflow, known)
            print(f"(no workflow '{workflow}' has runs in this store.{hint})", file=sys.stderr)
    elif is_terminal():
        from reflow.cli.tables import runs_table

        console().print(runs_table(runs))
    else:
        for r in runs:
            emit(f"  {r.run_id}  {r.status}  {r.created_at.isoformat()}")


def add_run_commands(app: typer.Typer, wf: Workflow | None) -> None:
    """Register status, cancel, retry and why on ``app`` (``runs`` differs per command line)."""

    @app.command("status")
    @guarded
    def status(
        run_id: RunIdArgument,
        task: TaskOption = None,
        errors: ErrorsOption = False,
        as_json: JsonOption = False,
        store: StoreOption = None,
        store_path: StorePathOption = None,
    ) -> None:
        """Per-task counts by state, cached/recomputed counts and failed instances."""
        from reflow.actions import check_run_task

        run = load_run(run_id, open_store(store, store_path), wf)
        if task is not None:
            check_run_task(run.store, run_id, task)
        if as_json:
            from reflow.status_report import write_status_json

            # Streamed: the document of a 100,000-instance run is hundreds of megabytes.
            write_status_json(run.store, run_id, task, sys.stdout.write)
            typer.echo()
        elif is_terminal():
            from reflow.cli.tables import status_table

            console().print(status_table(run.store, run_id, task, errors))
        else:
            emit(run.status(task=task, errors=errors))

    @app.command("cancel")
    @guarded
    def cancel(
        run_ids: Annotated[
            list[str], typer.Argument(metavar="RUN_ID...", help="One or more run ids.")
        ],
        task: TaskOption = None,
        yes: YesOption = False,
        store: StoreOption = None,
        store_path: StorePathOption = None,
    ) -> None:
        """Cancel the active instances of runs (or of one task); asks first unless --yes."""
        st = open_store(store, store_path)
        runs = [load_run(run_id, st, wf) for run_id in dict.fromkeys(run_ids)]
        what = f"task '{task}' of " if task else ""
        for run in [r for r in runs if r.state.terminal]:  # nothing to confirm for these
            emit(f"{run.run_id}: nothing to cancel (run is {run.state.value})")
        runs = [r for r in runs if not r.state.terminal]
        if runs and not yes:
            names = ", ".join(r.run_id for r in runs)
            confirm(f"Cancel {what}{len(runs)} run(s): {names}?", "cancel")
        for run in runs:
            count = run.cancel(task)
            if count:
                scope = f" of task '{task}'" if task else ""
                emit(f"{run.run_id}: cancelled {count} instance(s){scope}")
            elif task is None and run.state.terminal:  # RUNNING with nothing active: stopped
                emit(f"{run.run_id}: run {run.state.value}; it had no active instances")
            else:
                emit(f"{run.run_id}: nothing to cancel (run is {run.state.value})")

    @app.command("retry")
    @guarded
    def retry(
        run_id: RunIdArgument,
        task: TaskOption = None,
        verify: VerifyOption = True,
        store: StoreOption = None,
        store_path: StorePathOption = None,
    ) -> None:
        """Re-run failed and cancelled instances as new attempts (history is kept)."""
        run = load_run(run_id, open_store(store, store_path), wf)
        count = run.retry(task, verify=verify)
        scope = f" of task '{task}'" if task else ""
        if count:
            emit(f"{run_id}: {count} instance(s){scope} retried; run is {run.state.value}")
        else:
            from reflow.status_report import skip_note

            skipped = skip_note(run.store, run_id, task) if task else None
            because = (f"it was {skipped}; retry that task or the whole run" if skipped
                       else "no failed or cancelled instances")
            emit(f"{run_id}: nothing to retry{scope}; {because} (run is {run.state.value})")

    @app.command("why")
    @guarded
    def why(
        run_id: RunIdArgument,
        task: TaskArgument,
        index: IndexOption = None,
        as_json: JsonOption = False,
        store: StoreOption = None,
        store_path: StorePathOption = None,
    ) -> None:
        """Why an instance was cached or recomputed: the reason and what changed (old -> new)."""
        run = load_run(run_id, open_store(store, store_path), wf)
        text = run.why(task, index)
        if as_json:
            emit_json({"run_id": run_id, "task": task, "index": index, "explanation": text})
        else:
            emit(text)
