"""The workflow DAG: validation, topological order and text renderings.

networkx is imported here only, and this module is imported only when a graph is needed,
so workers (which run one function) never pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reflow.core.spec import TaskSpec
from reflow.core.wiring import Wire, resolve_wires
from reflow.errors import GraphError, suggestion

if TYPE_CHECKING:
    import networkx as nx


class TaskGraph:
    """A validated DAG of task specs with data wires resolved."""

    def __init__(self, specs: Mapping[str, TaskSpec]) -> None:
        import networkx as nx

        self.specs = dict(specs)
        position = {name: i for i, name in enumerate(self.specs)}
        for spec in self.specs.values():
            for dep in spec.upstream():
                if dep not in self.specs:
                    hint = suggestion(dep, self.specs) or (
                        f" Known steps: {', '.join(self.specs)}."
                    )
                    raise GraphError(f"task '{spec.name}' depends on unknown step '{dep}'.{hint}")
        g: nx.DiGraph[str] = nx.DiGraph()
        g.add_nodes_from(self.specs)
        for spec in self.specs.values():
            for inp in spec.results:
                assert inp.result is not None
                for step in inp.result.steps:
                    g.add_edge(step, spec.name, kind="data")
            for dep in spec.after:
                if not g.has_edge(dep, spec.name):
                    g.add_edge(dep, spec.name, kind="order")
        try:
            cycle = nx.find_cycle(g)
        except nx.NetworkXNoCycle:
            cycle = []
        if cycle:
            members = [a for a, _ in cycle] + [cycle[0][0]]
            raise GraphError(
                f"the workflow has a cycle: {' -> '.join(members)}; remove one of these "
                "Result/after dependencies"
            )
        self.graph = g
        self.order: tuple[str, ...] = tuple(
            nx.lexicographical_topological_sort(g, key=lambda n: position[n])
        )
        self.wires: dict[str, tuple[Wire, ...]] = {
            name: resolve_wires(self.specs[name], self.specs) for name in self.order
        }

    def generations(self) -> list[list[str]]:
        """Groups of tasks whose dependencies all lie in earlier groups, in stable order."""
        depth: dict[str, int] = {}
        for name in self.order:
            preds = list(self.graph.predecessors(name))
            depth[name] = 1 + max((depth[p] for p in preds), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.order:
            groups[depth[name]].append(name)
        return groups

    def descendants(self, names: list[str]) -> set[str]:
        """The named tasks and everything downstream of them."""
        import networkx as nx

        out = set(names)
        for name in names:
            out |= nx.descendants(self.graph, name)
        return out

    def dependencies(self, name: str) -> list[str]:
        return sorted(self.graph.predecessors(name))

    def render(self, fmt: str = "text") -> str:
        """Text, mermaid or dot, in the shapes SPEC §6 keeps for scripts that parse them."""
        if fmt == "text":
            lines = []
            for name in self.order:
                line = name + (" [array]" if self.specs[name].is_array else "")
                deps = [p for p in self._ordered_preds(name)]
                if deps:
                    line += "  <- " + ", ".join(deps)
                lines.append(line)
            return "\n".join(lines)
        if fmt == "mermaid":
            lines = ["flowchart TD"]
            for name in self.order:
                lines.append(f"    {name}[[{name}]]" if self.specs[name].is_array else
                             f"    {name}[{name}]")
            for a, b in self._ordered_edges():
                arrow = "-.->" if self.graph.edges[a, b]["kind"] == "order" else "-->"
                lines.append(f"    {a} {arrow} {b}")
            return "\n".join(lines)
        if fmt == "dot":
            lines = ["digraph reflow {", "    rankdir=TB;"]
            for name in self.order:
                extra = ", peripheries=2" if self.specs[name].is_array else ""
                lines.append(f'    "{name}" [shape=box{extra}];')
            for a, b in self._ordered_edges():
                style = " [style=dashed]" if self.graph.edges[a, b]["kind"] == "order" else ""
                lines.append(f'    "{a}" -> "{b}"{style};')
            lines.append("}")
            return "\n".join(lines)
        raise GraphError(f"unknown DAG format '{fmt}'; use text, mermaid or dot")

    def _ordered_preds(self, name: str) -> list[str]:
        pos = {n: i for i, n in enumerate(self.order)}
        return sorted(self.graph.predecessors(name), key=pos.__getitem__)

    def _ordered_edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.order for p in self._ordered_preds(n)]
