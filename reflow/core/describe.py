"""``describe()``: the workflow as a JSON-safe document (SPEC §6 shape, schema_version 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from reflow.core.parameters import collect_parameters
from reflow.core.wiring import type_name

if TYPE_CHECKING:
    from reflow.core.flow import Workflow

SCHEMA_VERSION = 1


class WorkflowDescription(TypedDict):
    """Typed form of ``describe()``'s document."""

    schema_version: int
    name: str
    entrypoint: str | None
    tasks: list[dict[str, Any]]
    cli_params: list[dict[str, Any]]



def describe_workflow(wf: Workflow) -> WorkflowDescription:
    graph = wf.validate()
    tasks = []
    for name in graph.order:
        spec = graph.specs[name]
        tasks.append(
            {
                "name": name,
                "is_array": spec.is_array,
                "config": {**spec.config.as_dict(), "version": spec.version,
                           "cache": spec.cache, "after": list(spec.after)},
                "dependencies": graph.dependencies(name),
                "result_deps": {
                    w.param: {"steps": list(w.steps), "mode": str(w.mode)}
                    for w in graph.wires[name]
                },
                "return_type": type_name(spec.return_type),
                "has_verify": spec.verify is not None,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "name": wf.name,
        "entrypoint": wf.entrypoint(),
        "tasks": tasks,
        "cli_params": [
            p.describe() for p in collect_parameters(graph.specs[n] for n in graph.order)
        ],
    }

