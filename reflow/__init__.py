"""reflow: content-addressed workflows for HPC clusters.

Public names are loaded lazily (PEP 562) so that ``import reflow`` on a compute node costs a
few milliseconds: SQLAlchemy, networkx, typer and textual load only when something uses them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Workflow": "reflow.core.flow",
    "Flow": "reflow.core.flow",
    "Param": "reflow.core.params",
    "Result": "reflow.core.params",
    "RunDir": "reflow.core.params",
    "JobConfig": "reflow.core.spec",
    "TaskSpec": "reflow.core.spec",
    "TaskState": "reflow.states",
    "RunState": "reflow.states",
    "ManifestCodec": "reflow.core.codec",
    "WorkflowDescription": "reflow.core.describe",
    "Run": "reflow.run",
    "Store": "reflow.store",
    "Config": "reflow.config",
    "load_config": "reflow.config",
    "config_path": "reflow.config",
    "ensure_config_exists": "reflow.config",
    "write_example_config": "reflow.config",
    "Executor": "reflow.executors.base",
    "JobResources": "reflow.executors.base",
    "SlurmExecutor": "reflow.executors.slurm",
    "PBSExecutor": "reflow.executors.pbs",
    "LSFExecutor": "reflow.executors.lsf",
    "SGEExecutor": "reflow.executors.sge",
    "FluxExecutor": "reflow.executors.flux",
    "LocalExecutor": "reflow.executors.local",
    "TaskInterrupted": "reflow.errors",
    "ReflowError": "reflow.errors",
    "ReflowWarning": "reflow.errors",
    "GraphError": "reflow.errors",
    "WiringError": "reflow.errors",
    "MissingParameterError": "reflow.errors",
    "ParameterError": "reflow.errors",
    "EncodeError": "reflow.errors",
    "UnknownRunError": "reflow.errors",
    "UnknownTaskError": "reflow.errors",
    "RunFailedError": "reflow.errors",
    "RunStalledError": "reflow.errors",
    "ConfigError": "reflow.errors",
    "OptionError": "reflow.errors",
    "StoreError": "reflow.errors",
    "ExecutorError": "reflow.errors",
}

__all__ = [
    "Config",
    "ConfigError",
    "EncodeError",
    "Executor",
    "ExecutorError",
    "Flow",
    "FluxExecutor",
    "GraphError",
    "JobConfig",
    "JobResources",
    "LSFExecutor",
    "LocalExecutor",
    "ManifestCodec",
    "MissingParameterError",
    "OptionError",
    "PBSExecutor",
    "Param",
    "ParameterError",
    "ReflowError",
    "ReflowWarning",
    "Result",
    "Run",
    "RunDir",
    "RunFailedError",
    "RunStalledError",
    "RunState",
    "SGEExecutor",
    "SlurmExecutor",
    "Store",
    "StoreError",
    "TaskInterrupted",
    "TaskSpec",
    "TaskState",
    "UnknownRunError",
    "UnknownTaskError",
    "WiringError",
    "Workflow",
    "WorkflowDescription",
    "__version__",
    "config_path",
    "ensure_config_exists",
    "load_config",
    "write_example_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'reflow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from reflow.config import (
        Config,
        config_path,
        ensure_config_exists,
        load_config,
        write_example_config,
    )
    from reflow.core.codec import ManifestCodec
    from reflow.core.describe import WorkflowDescription
    from reflow.core.flow import Flow, Workflow
    from reflow.core.params import Param, Result, RunDir
    from reflow.core.spec import JobConfig, TaskSpec
    from reflow.errors import (
        ConfigError,
        EncodeError,
        ExecutorError,
        GraphError,
        MissingParameterError,
        OptionError,
        ParameterError,
        ReflowError,
        ReflowWarning,
        RunFailedError,
        RunStalledError,
        StoreError,
        TaskInterrupted,
        UnknownRunError,
        UnknownTaskError,
        WiringError,
    )
    from reflow.executors.base import Executor, JobResources
    from reflow.executors.flux import FluxExecutor
    from reflow.executors.local import LocalExecutor
    from reflow.executors.lsf import LSFExecutor
    from reflow.executors.pbs import PBSExecutor
    from reflow.executors.sge import SGEExecutor
    from reflow.executors.slurm import SlurmExecutor
    from reflow.run import Run
    from reflow.states import RunState, TaskState
    from reflow.store import Store
