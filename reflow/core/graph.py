"""The workflow DAG: validation, topological order and text renderings.

Validation, ordering and traversal run on plain dicts: a run of a 1,000-task chain validates
its graph every time, and building a networkx graph for it cost more than the rest of
validation. The networkx view (``TaskGraph.graph``, SPEC §1) is built on first use, and
networkx is imported only then, so workers and in-process runs never pay for it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reflow.core.spec import TaskSpec
from reflow.core.wiring import Wire, resolve_wires
from reflow.errors import GraphError, suggestion

if TYPE_CHECKING:
    import networkx as nx


class TaskGraph:
    """A validated DAG of task specs with data wires resolved."""

    def __init__(self, specs: Mapping[str, TaskSpec]) -> None:
        self.specs = dict(specs)
        # Predecessors in first-seen order (data edges, then ordering edges) with edge kinds.
        self.preds: dict[str, list[str]] = {}
        self.edge_kinds: dict[tuple[str, str], str] = {}
        for spec in self.specs.values():
            preds = self.preds[spec.name] = []
            for dep in spec.upstream():
                if dep not in self.specs:
                    hint = suggestion(dep, self.specs) or (
                        f" Known steps: {', '.join(self.specs)}."
                    )
                    raise GraphError(f"task '{spec.name}' depends on unknown step '{dep}'.{hint}")
                preds.append(dep)
            for inp in spec.results:
                assert inp.result is not None
                for step in inp.result.steps:
                    self.edge_kinds[step, spec.name] = "data"
            for dep in spec.after:
                self.edge_kinds.setdefault((dep, spec.name), "order")
        self.order: tuple[str, ...] = self._topological_order()
        self.wires: dict[str, tuple[Wire, ...]] = {
            name: resolve_wires(self.specs[name], self.specs) for name in self.order
        }

    def _topological_order(self) -> tuple[str, ...]:
        """Kahn's algorithm, taking ready tasks in definition order; a cycle is an error."""
        position = {name: i for i, name in enumerate(self.specs)}
        names = list(self.specs)
        waiting = {name: len(preds) for name, preds in self.preds.items()}
        succs: dict[str, list[str]] = {name: [] for name in names}
        for name, preds in self.preds.items():
            for p in preds:
                succs[p].append(name)
        ready = [position[n] for n in names if waiting[n] == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            name = names[heapq.heappop(ready)]
            order.append(name)
            for s in succs[name]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(ready, position[s])
        if len(order) < len(names):
            members = self._cycle({n for n in names if waiting[n] > 0})
            raise GraphError(
                f"the workflow has a cycle: {' -> '.join(members)}; remove one of these "
                "Result/after dependencies"
            )
        return tuple(order)

    def _cycle(self, stuck: set[str]) -> list[str]:
        """One cycle among ``stuck`` (tasks Kahn's algorithm could not order), closed."""
        # Every stuck task has a stuck predecessor, so walking back must revisit a task.
        position = {name: i for i, name in enumerate(self.specs)}
        path: list[str] = []
        seen: dict[str, int] = {}
        name = min(stuck, key=position.__getitem__)
        while name not in seen:
            seen[name] = len(path)
            path.append(name)
            name = next(p for p in self.preds[name] if p in stuck)
        loop = path[seen[name]:]
        loop.reverse()  # walked against the edges
        first = loop.index(min(loop, key=position.__getitem__))  # start at the earliest task
        loop = loop[first:] + loop[:first]
        return [*loop, loop[0]]

    @cached_property
    def graph(self) -> nx.DiGraph[str]:
        """The DAG as a networkx ``DiGraph``; edges carry ``kind`` (data or order)."""
        import networkx as nx

        g: nx.DiGraph[str] = nx.DiGraph()
        g.add_nodes_from(self.specs)
        for (a, b), kind in self.edge_kinds.items():
            g.add_edge(a, b, kind=kind)
        return g

    def generations(self) -> list[list[str]]:
        """Groups of tasks whose dependencies all lie in earlier groups, in stable order."""
        depth: dict[str, int] = {}
        for name in self.order:
            depth[name] = 1 + max((depth[p] for p in self.preds[name]), default=-1)
        groups: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.order:
            groups[depth[name]].append(name)
        return groups

    def descendants(self, names: list[str]) -> set[str]:
        """The named tasks and everything downstream of them."""
        out = set(names)
        for name in self.order:  # topological: a task's predecessors were decided before it
            if name not in out and any(p in out for p in self.preds[name]):
                out.add(name)
        return out

    def dependencies(self, name: str) -> list[str]:
        return sorted(self.preds[name])

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
        # Every edge keeps the shape scripts match (``a --> b``, ``"a" -> "b";``); ordering
        # edges are drawn dashed by a separate style statement, not by a different arrow.
        edges = self._ordered_edges()
        ordering = [i for i, edge in enumerate(edges) if self.edge_kinds[edge] == "order"]
        if fmt == "mermaid":
            lines = ["flowchart TD"]
            for name in self.order:
                lines.append(f"    {name}[[{name}]]" if self.specs[name].is_array else
                             f"    {name}[{name}]")
            lines += [f"    {a} --> {b}" for a, b in edges]
            if ordering:
                lines.append(f"    linkStyle {','.join(map(str, ordering))} "
                             "stroke-dasharray: 5 5")
            return "\n".join(lines)
        if fmt == "dot":
            lines = ["digraph reflow {", "    rankdir=TB;"]
            for name in self.order:
                extra = ", peripheries=2" if self.specs[name].is_array else ""
                lines.append(f'    "{name}" [shape=box{extra}];')
            dashed = set(ordering)
            lines += [f'    "{a}" -> "{b}";' for i, (a, b) in enumerate(edges) if i not in dashed]
            if ordering:
                lines.append("    subgraph after_edges {")
                lines.append("        edge [style=dashed];")
                lines += [f'        "{edges[i][0]}" -> "{edges[i][1]}";' for i in ordering]
                lines.append("    }")
            lines.append("}")
            return "\n".join(lines)
        raise GraphError(f"unknown DAG format '{fmt}'; use text, mermaid or dot")

    def document(self) -> dict[str, Any]:
        """The graph as JSON-safe data (``dag --json``): tasks in order, then every edge."""
        return {
            "tasks": [{"name": n, "is_array": self.specs[n].is_array,
                       "dependencies": self._ordered_preds(n)} for n in self.order],
            "edges": [{"from": a, "to": b, "kind": self.edge_kinds[a, b]}
                      for a, b in self._ordered_edges()],
        }

    def _ordered_preds(self, name: str) -> list[str]:
        pos = {n: i for i, n in enumerate(self.order)}
        return sorted(self.preds[name], key=pos.__getitem__)

    def _ordered_edges(self) -> list[tuple[str, str]]:
        return [(p, n) for n in self.order for p in self._ordered_preds(n)]
