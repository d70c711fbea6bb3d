"""``Flow`` and ``Workflow``: where users declare tasks.

A ``Flow`` is only a registry of task specs; running, storing and scheduling live in other
layers that receive the workflow, so the definition stays importable on a compute node
without the engine's heavier parts.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from reflow.core import script_modules
from reflow.core.spec import JobConfig, TaskSpec, checked_job_config, inspect_inputs
from reflow.errors import GraphError

if TYPE_CHECKING:
    from reflow.config import Config
    from reflow.core.describe import WorkflowDescription
    from reflow.core.graph import TaskGraph
    from reflow.engine.plan_report import PlanReport
    from reflow.executors.base import Executor
    from reflow.run import Run

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")


class Flow:
    """A reusable, named group of tasks; include it into a ``Workflow`` to run it."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _WORKFLOW_NAME.match(name):
            raise GraphError(
                f"workflow name {name!r} is not valid; use letters, digits, '_', '.' and '-' "
                "(it becomes part of run ids and job names)"
            )
        self.name = name
        self.tasks: dict[str, TaskSpec] = {}
        self._graph: TaskGraph | None = None

    @overload
    def job(self, name: F) -> F: ...

    @overload
    def job(
        self,
        name: str | None = None,
        *,
        array: bool = False,
        array_parallelism: int | None = None,
        cpus: int = 1,
        time: str = "00:30:00",
        mem: str = "4G",
        after: Iterable[str] | None = None,
        submit_options: Iterable[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        version: str = "1",
        cache: bool = True,
        verify: Callable[[Any], bool] | None = None,
        backend: str | None = None,
        retries: int = 0,
        retry_on: str | int | Iterable[str | int] = (),
        escalate: Mapping[str, float] | None = None,
        **scheduler_options: Any,
    ) -> Callable[[F], F]: ...

    def job(
        self,
        name: Any = None,
        *,
        array: bool = False,
        array_parallelism: int | None = None,
        cpus: int = 1,
        time: str = "00:30:00",
        mem: str = "4G",
        after: Iterable[str] | None = None,
        submit_options: Iterable[str] | None = None,
        extra: Mapping[str, Any] | None = None,
        version: str = "1",
        cache: bool = True,
        verify: Callable[[Any], bool] | None = None,
        backend: str | None = None,
        retries: int = 0,
        retry_on: str | int | Iterable[str | int] = (),
        escalate: Mapping[str, float] | None = None,
        **scheduler_options: Any,
    ) -> Any:
        """Register a task; returns the function unchanged so it stays unit-testable.

        ``retries``, ``retry_on`` and ``escalate`` are SPEC §5's automatic retries, named here
        so that editors and type checkers know them; every other keyword is a scheduler option.
        """
        if callable(name):  # bare @wf.job
            return self.job()(name)
        if "queue" in scheduler_options and "partition" not in scheduler_options:
            scheduler_options["partition"] = scheduler_options.pop("queue")

        def register(func: F) -> F:
            task = name or func.__name__
            config = checked_job_config(
                task,
                cpus=cpus,
                time=str(time),
                mem=str(mem),
                array_parallelism=array_parallelism,
                # A string is one command line ("--qos=high --exclusive"), not its characters.
                submit_options=tuple(shlex.split(submit_options)
                                     if isinstance(submit_options, str)
                                     else submit_options or ()),
                extra=dict(extra or {}),
                backend=backend,
                scheduler_options=dict(scheduler_options),
                retries=retries,
                # One state or exit code may be given alone: "TIMEOUT" is not 7 letters.
                retry_on=(tuple([retry_on]) if isinstance(retry_on, str | int)
                          else tuple(retry_on or ())),
                escalate=dict(escalate or {}),
            )
            self._add(self._make_spec(task, func, array, config, version, cache, verify, after))
            return func

        return register

    def array_job(self, name: Any = None, **options: Any) -> Any:
        """``job(..., array=True)``: one instance per element of the fanned-out input."""
        if callable(name):
            return self.job(array=True)(name)
        return self.job(name, array=True, **options)

    def include(self, flow: Flow, prefix: str | None = None) -> None:
        """Copy ``flow``'s tasks in as ``<prefix>_<name>``, rewriting its internal references."""
        if prefix and not (isinstance(prefix, str) and prefix.isidentifier()):
            raise GraphError(f"include(prefix={prefix!r}) is not valid; the prefix starts task "
                             "names, so use a Python identifier, e.g. prefix='raw'")
        mapping = {n: (f"{prefix}_{n}" if prefix else n) for n in flow.tasks}
        for name in mapping.values():  # all checked first: a clash leaves this flow as it was
            self._check_new(name)
        for old, spec in flow.tasks.items():
            self._add(spec.renamed(mapping[old], mapping))

    def _make_spec(
        self,
        task: str,
        func: Callable[..., Any],
        array: bool,
        config: JobConfig,
        version: str,
        cache: bool,
        verify: Callable[[Any], bool] | None,
        after: Iterable[str] | None,
    ) -> TaskSpec:
        if not isinstance(task, str) or not _NAME.match(task):
            raise GraphError(f"task name {task!r} is not valid; use a Python identifier")
        if verify is not None and not callable(verify):
            raise GraphError(f"task '{task}': verify= must be a callable returning bool")
        inputs, return_type = inspect_inputs(func, task)
        if array and not any(i.kind == "result" for i in inputs):
            raise GraphError(
                f"array task '{task}' has no Result input to fan out over; add a parameter "
                "annotated with Result(step=...) or make it a plain job"
            )
        return TaskSpec(
            name=task,
            func=func,
            is_array=bool(array),
            config=config,
            version=str(version),
            cache=bool(cache),
            verify=verify,
            after=tuple([after] if isinstance(after, str) else (after or ())),
            inputs=inputs,
            return_type=return_type,
        )

    def _check_new(self, name: str) -> None:
        if name in self.tasks:
            raise GraphError(
                f"task '{name}' is defined twice in '{self.name}'; rename one "
                "(or include the flow with a prefix)"
            )

    def _add(self, spec: TaskSpec) -> None:
        self._check_new(spec.name)
        self.tasks[spec.name] = spec
        self._graph = None


class Workflow(Flow):
    """A flow that can be validated, described and run."""

    def __init__(self, name: str, config: Config | None = None) -> None:
        super().__init__(name)
        self.config = config
        caller = sys._getframe(1).f_globals
        self._module = str(caller.get("__name__", ""))
        self._module_file = caller.get("__file__")
        if self._module == "__main__" and self._module_file:
            from reflow.script_errors import install_definition_error_hook

            install_definition_error_hook()

    # -- structure -------------------------------------------------------------------------
    def validate(self) -> TaskGraph:
        """Check the whole graph (names, cycles, wire types, parameters that would share a
        flag); raises before anything runs."""
        if self._graph is None:
            from reflow.core.graph import TaskGraph
            from reflow.core.parameters import check_parameters

            graph = TaskGraph(self.tasks)
            check_parameters(graph.specs[n] for n in graph.order)
            self._graph = graph
        return self._graph

    @property
    def graph(self) -> Any:
        """The DAG as a ``networkx.DiGraph`` (edges carry ``kind``: data or order)."""
        return self.validate().graph

    def topological_order(self) -> list[str]:
        return list(self.validate().order)

    def describe(self) -> WorkflowDescription:
        """JSON-safe description of the workflow (SPEC §6 shape)."""
        from reflow.core.describe import describe_workflow

        return describe_workflow(self)

    def entrypoint(self) -> str | None:
        """How another process re-imports this workflow: a script path or module:attribute.

        Taken from where the Workflow object was created, not from ``sys.argv[0]``, so it is
        right from notebooks, ``python -m`` and test runners; None when there is no file.
        Modules inside packages (also one run as ``python -m package.module``) are recorded as
        ``package.module:attribute``; everything else (scripts, top-level modules) by file
        path, which any process can load.
        """
        if self._module == "__main__" or not self._module:
            package_module = script_modules.main_package_module()
            if package_module is not None:
                # ``python -m pkg.pipeline``: by path its relative imports would fail.
                main = sys.modules["__main__"]
                for attr, value in vars(main).items():
                    if value is self:
                        return f"{package_module}:{attr}"
            if self._module_file and Path(self._module_file).exists():
                return str(Path(self._module_file).resolve())
            return None
        if "." not in self._module and self._module_file and Path(self._module_file).exists():
            # A top-level module is importable only from its own directory, which a worker on
            # a compute node (or a driver started elsewhere) does not have on sys.path.
            return str(Path(self._module_file).resolve())
        module = sys.modules.get(self._module)
        for attr, value in vars(module).items() if module else ():
            if value is self:
                return f"{self._module}:{attr}"
        if self._module_file and Path(self._module_file).exists():
            return str(Path(self._module_file).resolve())
        return None

    def import_root(self) -> str | None:
        """The directory a ``module:attribute`` entry point's top package lies in.

        Recorded with the run, so that the driver, the workers and a later ``reflow retry``
        find a package that this process imported from its current directory (which their
        ``sys.path`` does not have). None for a script path entry point.
        """
        entry = self.entrypoint()
        if entry is None or ":" not in entry or Path(entry).exists() or not self._module_file:
            return None
        path = Path(self._module_file).resolve()
        depth = entry.partition(":")[0].count(".") + (path.name == "__init__.py")
        return str(path.parents[depth]) if depth < len(path.parents) else None

    def importable(self) -> bool:
        """Whether another process can find this object by importing its module.

        A workflow built inside a function (a test, a factory) is not a module-level name, so
        a driver or worker that imports the module would not find it.
        """
        module = sys.modules.get(self._module)
        if module is None:
            return self.entrypoint() is not None
        return any(value is self for value in vars(module).values())

    # -- running (delegated to the engine and actions layers) ------------------------------
    def run_local(
        self, run_dir: str | Path, *, store: Any = None, max_workers: int = 1,
        force: bool = False, force_tasks: Iterable[str] | None = None, verify: bool = False,
        on_error: str = "stop", progress: bool | None = None, **params: Any,
    ) -> Run:
        """Run the whole DAG in this process; see SPEC §2.

        The keywords are spelled out (not ``**kwargs``) so that editors and type checkers
        know them; ``params`` are the pipeline's parameters.
        """
        from reflow.engine.local_runner import run_local

        return run_local(self, run_dir, store=store, max_workers=max_workers, force=force,
                         force_tasks=force_tasks, verify=verify, on_error=on_error,
                         progress=progress, **params)

    @overload
    def submit(
        self, run_dir: str | Path, *, store: Any = None, executor: Executor | str | None = None,
        force: bool = False, force_tasks: Iterable[str] | None = None, verify: bool = False,
        wait: bool = False, plan: Literal[False] = False, dry_run: Literal[False] = False,
        **params: Any,
    ) -> Run: ...

    @overload
    def submit(
        self, run_dir: str | Path, *, store: Any = None, executor: Executor | str | None = None,
        force: bool = False, force_tasks: Iterable[str] | None = None, verify: bool = False,
        wait: bool = False, plan: bool = False, dry_run: bool = False, **params: Any,
    ) -> Run | PlanReport: ...

    def submit(
        self, run_dir: str | Path, *, store: Any = None, executor: Executor | str | None = None,
        force: bool = False, force_tasks: Iterable[str] | None = None, verify: bool = False,
        wait: bool = False, plan: bool = False, dry_run: bool = False, **params: Any,
    ) -> Run | PlanReport:
        """Record a run and hand it to the driver; with ``plan=True`` (or ``dry_run=True``)
        only print and return what it would do."""
        from reflow.actions import submit

        result: Run | PlanReport = submit(
            self, run_dir, plan=plan, dry_run=dry_run, store=store, executor=executor,
            force=force, force_tasks=force_tasks, verify=verify, wait=wait, **params)
        return result

    def cancel_runs(self, run_ids: Iterable[str] | str, store: Any = None) -> int:
        """Cancel runs by id (one id may be given as a plain string)."""
        from reflow.actions import cancel_runs

        return cancel_runs([run_ids] if isinstance(run_ids, str) else list(run_ids),
                           store=store)

    def cli(self, argv: list[str] | None = None) -> None:
        """Per-script command line: ``python pipeline.py COMMAND``."""
        from reflow.cli.script import run_script_cli

        run_script_cli(self, argv)
