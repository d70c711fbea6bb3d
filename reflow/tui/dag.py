"""The run's DAG as coloured text: one line per task, indented by its depth in the graph.

Depth comes from networkx's topological generations over data and ordering edges, so a
task always appears below everything it waits for; ordering-only edges are drawn with ``~``
to tell them apart from data edges.
"""

from __future__ import annotations

from rich.text import Text

from reflow.states import STATE_STYLES
from reflow.tui.data import TaskSummary
from reflow.tui.fmt import clip, count

STATE_MARK = {
    "SUCCESS": "✔",
    "FAILED": "✘",
    "RUNNING": "▶",
    "SUBMITTED": "▷",
    "RETRYING": "↻",
    "PENDING": "·",
    "CANCELLED": "⊘",
    "SKIPPED": "↷",
    "WAITING": "·",
}


def depths(tasks: list[TaskSummary]) -> dict[str, int]:
    import networkx as nx

    graph: nx.DiGraph[str] = nx.DiGraph()
    names = {t.name for t in tasks}
    for t in tasks:
        graph.add_node(t.name)
        for dep in (*t.dependencies, *t.after):
            if dep in names:
                graph.add_edge(dep, t.name)
    return {name: level for level, generation in enumerate(nx.topological_generations(graph))
            for name in generation}


# Deeper levels are not indented further: a chain of 30 tasks must not push its names out of
# a 34-column panel (the "<-" list still says what each task waits for).
MAX_INDENT = 4


def render_dag(tasks: list[TaskSummary], selected: str | None = None,
               height: int | None = None, width: int | None = None) -> Text:
    """Tasks in recorded (topological) order with state, progress and cache counts.

    With ``height``, only that many lines are drawn, in a window that keeps ``selected``
    visible, so the panel follows the task table's cursor through a long pipeline. With
    ``width``, a long name is cut rather than the counts after it.
    """
    level = depths(tasks)
    ordered = sorted(tasks, key=lambda t: t.position)
    if height is not None and len(ordered) > height:
        at = next((i for i, t in enumerate(ordered) if t.name == selected), 0)
        start = min(max(at - height // 2, 0), len(ordered) - height)
        ordered = ordered[start:start + height]
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, t in enumerate(ordered):
        if i:
            out.append("\n")
        style = STATE_STYLES.get(t.state, "")
        indent = "  " * min(level.get(t.name, 0), MAX_INDENT)
        progress = f" {count(t.done)}/{count(t.total)}"  # compact: a 34-column panel
        cache = (f" c{count(t.cached)}", f" r{count(t.recomputed)}") if (
            t.cached or t.recomputed) else ("", "")
        name = t.name + ("[]" if t.is_array else "")
        if width is not None:
            # 2 for the state mark and its space, 1 for the ellipsis the panel adds at its end
            room = width - len(indent) - 3 - len(progress) - len(cache[0]) - len(cache[1])
            name = clip(name, max(room, 4))
        out.append(indent)
        out.append(f"{STATE_MARK.get(t.state, '?')} ", style=style)
        out.append(name, style=f"bold {style}")
        out.append(progress)
        out.append(cache[0], style="cyan")
        out.append(cache[1], style="blue")
        if t.dependencies:
            out.append(" <- " + ", ".join(t.dependencies), style="dim")
        if t.after:
            out.append(" <~ " + ", ".join(t.after), style="dim italic")
    return out
