"""Rich renderings of a run's status and of run lists, for a person at a terminal.

They show the same facts as the stable text of ``reflow.status_report`` (from the same
aggregate queries, never by loading every instance), laid out as tables with state colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reflow.progress import styled_state

if TYPE_CHECKING:
    from reflow.store import RunRecord, Store

ERROR_LINES = 15


def _iso(record: RunRecord) -> str:
    return record.created_at.isoformat(timespec="seconds")


def status_table(store: Store, run_id: str, task: str | None, errors: bool) -> RenderableType:
    """Header, per-task table in topological order, then failed instances under their task."""
    from reflow.status_report import failed_instances, ordered_summary, skip_notes

    run = store.get_run(run_id)
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("Run", escape(run.run_id))
    header.add_row("Workflow", escape(run.workflow))
    header.add_row("Status", styled_state(run.status))
    header.add_row("Created", _iso(run))
    header.add_row("Run dir", escape(run.run_dir))

    summary = ordered_summary(store, run_id)
    cache = store.cache_counts(run_id)
    failed = failed_instances(store, run_id, summary, task)
    skipped = skip_notes(store, run_id, summary)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("Task")
    table.add_column("States")
    table.add_column("Cached", justify="right")
    table.add_column("Recomputed", justify="right")
    for name, states in summary.items():
        if task is not None and name != task:
            continue
        text = ", ".join(f"{styled_state(s)}={n}" for s, n in states.items()) or "[dim]none[/]"
        if name in skipped:
            text += f" [dim]({escape(skipped[name])})[/]"
        cached, recomputed = cache.get(name, (0, 0))
        table.add_row(escape(name), text, str(cached), str(recomputed))

    parts: list[RenderableType] = [header, Text(), table]
    if failed:
        parts += [Text(), Text("Failed instances", style="bold red")]
    for row in failed:
        index = "" if row.array_index is None else f"[{row.array_index}]"
        parts.append(
            Text.from_markup(
                f"  {escape(row.task_name)}{escape(index)}  {styled_state(row.state)}  "
                f"job={escape(row.job_id or '-')}  attempt={row.attempt}"
            )
        )
        if errors and row.error_text:
            tail = row.error_text.rstrip().splitlines()[-ERROR_LINES:]
            parts.append(Text("\n".join("      " + line for line in tail), style="dim"))
    return Group(*parts)


def runs_table(runs: Sequence[RunRecord]) -> RenderableType:
    """Newest first; run ids are never shortened (people copy them), run dirs may wrap."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("Run", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Created (local)", no_wrap=True)
    table.add_column("User")
    table.add_column("Run dir", overflow="fold")
    for run in runs:
        table.add_row(
            escape(run.run_id),
            styled_state(run.status),
            run.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            escape(run.user),
            escape(run.run_dir),
        )
    return table
