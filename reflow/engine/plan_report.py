"""Dry-run planning: what a submit would reuse and what it would recompute, and why.

Nothing is recorded. A task whose upstream would be recomputed cannot be expanded yet (its
inputs do not exist), so it is reported as waiting, with the upstream tasks named.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflow.core.codec import loads
from reflow.core.parameters import resolve_parameters
from reflow.engine.expand import TaskOutputs, expand_task
from reflow.engine.local_runner import check_forced_tasks
from reflow.engine.recording import plan_task
from reflow.store import NoStoreError, Store

if TYPE_CHECKING:
    from reflow.core.flow import Workflow


@dataclass
class TaskPlan:
    task: str
    instances: int | None  # None: unknown until upstream work has run
    cached: int = 0
    recompute: Counter[str] = field(default_factory=Counter)
    waits_on: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.instances is None:
            return f"  {self.task}  would run after {', '.join(self.waits_on)} (count unknown)"
        parts = [f"cached={self.cached}", f"recompute={sum(self.recompute.values())}"]
        if self.recompute:
            parts.append("(" + ", ".join(f"{r}: {n}" for r, n in
                                         sorted(self.recompute.items())) + ")")
        return f"  {self.task}  " + " ".join(parts)


@dataclass
class PlanReport:
    workflow: str
    run_dir: Path
    tasks: list[TaskPlan]

    def __str__(self) -> str:
        return "\n".join([f"Plan for {self.workflow} in {self.run_dir} (nothing submitted)"]
                         + [t.line() for t in self.tasks])

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "run_dir": str(self.run_dir),
            "tasks": [
                {"task": t.task, "instances": t.instances, "cached": t.cached,
                 "recompute": dict(t.recompute), "waits_on": t.waits_on}
                for t in self.tasks
            ],
        }


def plan_run(
    wf: Workflow,
    run_dir: str | Path,
    *,
    store: Any = None,
    force: bool = False,
    force_tasks: list[str] | None = None,
    verify: bool = False,
    executor: Any = None,
    wait: bool = False,
    **params: Any,
) -> PlanReport:
    graph = wf.validate()
    forced = set(check_forced_tasks(graph, force_tasks))
    per_task, _ = resolve_parameters(graph.specs, params)
    try:
        st = Store.open(store, create=False)
    except NoStoreError:  # nothing recorded there yet: plan against an empty store, and
        st = Store.open("sqlite://")  # create nothing (a dry run records nothing anywhere)
    outputs: dict[str, TaskOutputs] = {}
    plans: list[TaskPlan] = []
    for name in graph.order:
        spec = graph.specs[name]
        unknown = [u for u in spec.upstream() if u not in outputs]
        if unknown:
            plans.append(TaskPlan(name, None, waits_on=unknown))
            continue
        expanded = expand_task(wf.name, spec, graph.wires[name],
                               {u: outputs[u] for u in spec.upstream()}, per_task.get(name, {}))
        decisions = plan_task(st, wf.name, None, spec, expanded,
                              forced=force or name in forced, verify=verify)
        misses = [d for d in decisions if d.hit is None]
        plan = TaskPlan(name, len(decisions), cached=len(decisions) - len(misses),
                        recompute=Counter(d.reason for d in misses))
        plans.append(plan)
        if not misses:
            hits = [d.hit for d in decisions if d.hit is not None]
            outputs[name] = TaskOutputs(spec.is_array, [loads(h.output) for h in hits],
                                        [h.output_hash for h in hits],
                                        [h.fingerprints for h in hits])
    return PlanReport(wf.name, Path(run_dir).expanduser().resolve(), plans)
