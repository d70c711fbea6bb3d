"""Scheduler adapters behind one small interface (``Executor``: submit, cancel, query).

``get_executor(name, config)`` builds one by name; ``detect_executor_name()`` picks the
scheduler whose submit command is on PATH (``sbatch``, then ``qsub`` -- PBS or Grid Engine --,
``bsub``, ``flux``), else ``"local"``, so one pipeline runs unchanged on a laptop and on a
cluster. Adapter modules load lazily: a worker importing ``reflow.executors.base`` for its
array index pays for none of them.

Settings read from the ``[executor]`` config table (all optional):

* ``commands``: tool name -> path, e.g. ``{sbatch = "/opt/slurm/bin/sbatch"}``;
* ``command_timeout`` (seconds, default 60) and ``submit_retries`` (attempts for transient
  errors, default 5, with jittered exponential backoff);
* ``max_array_size``: the largest number of consecutive indices one array may use
  (Slurm: read from ``scontrol``; LSF: 1000; others: unlimited);
* ``pbs_flavor`` (``pro`` or ``torque``, detected from ``qstat --version`` when unset),
  ``sge_parallel_environment`` (``smp``), ``sge_memory_resource`` (``h_vmem``);
* ``dry_run_target`` (default ``slurm``) and ``dry_run_log`` for the dry-run executor;
* ``max_workers`` for the local executor.

Array jobs: ``submit`` is one scheduler submission; when a scheduler needs several for one
array (index limits, or one range per submission on SGE and PBS Pro), ``split`` says how and
``submit_many`` submits them all, returning ``[(job_id, part), ...]``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reflow.errors import SHORT_WORD_CUTOFF, ConfigError, suggestion
from reflow.executors.base import (
    INDEX_BASE_ENV,
    INDEX_PLACEHOLDER,
    INDEX_VAR_ENV,
    Executor,
    JobResources,
    JobSpec,
    JobState,
    JobStatus,
    array_index_from_env,
)

if TYPE_CHECKING:
    from reflow.executors.dryrun import DryRunExecutor
    from reflow.executors.flux import FluxExecutor
    from reflow.executors.local import LocalExecutor
    from reflow.executors.lsf import LSFExecutor
    from reflow.executors.pbs import PBSExecutor, TorqueExecutor
    from reflow.executors.sge import SGEExecutor
    from reflow.executors.slurm import SlurmExecutor

__all__ = [
    "EXECUTOR_NAMES",
    "INDEX_BASE_ENV",
    "INDEX_PLACEHOLDER",
    "INDEX_VAR_ENV",
    "DryRunExecutor",
    "Executor",
    "FluxExecutor",
    "JobResources",
    "JobSpec",
    "JobState",
    "JobStatus",
    "LSFExecutor",
    "LocalExecutor",
    "PBSExecutor",
    "SGEExecutor",
    "SlurmExecutor",
    "TorqueExecutor",
    "array_index_from_env",
    "detect_executor_name",
    "get_executor",
]

_CLASSES = {
    "SlurmExecutor": "reflow.executors.slurm",
    "PBSExecutor": "reflow.executors.pbs",
    "TorqueExecutor": "reflow.executors.pbs",
    "LSFExecutor": "reflow.executors.lsf",
    "SGEExecutor": "reflow.executors.sge",
    "FluxExecutor": "reflow.executors.flux",
    "DryRunExecutor": "reflow.executors.dryrun",
    "LocalExecutor": "reflow.executors.local",
}
_BY_NAME = {
    "local": "LocalExecutor",
    "slurm": "SlurmExecutor",
    "pbs": "PBSExecutor",
    "torque": "TorqueExecutor",
    "lsf": "LSFExecutor",
    "sge": "SGEExecutor",
    "flux": "FluxExecutor",
    "dry-run": "DryRunExecutor",
}
# The config's `mode` spellings (SPEC §2) and other common names.
_ALIASES = {
    "sbatch": "slurm",
    "qsub-pbs": "pbs",
    "pbspro": "pbs",
    "openpbs": "pbs",
    "bsub": "lsf",
    "qsub-sge": "sge",
    "uge": "sge",
    "dryrun": "dry-run",
    "dry_run": "dry-run",
}
EXECUTOR_NAMES = tuple(_BY_NAME)


def __getattr__(name: str) -> Any:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def get_executor(name: str, config: Mapping[str, Any] | None = None) -> Executor:
    """The executor called ``name`` (or a config ``mode`` spelling such as ``sbatch``),
    configured from the ``[executor]`` table; ConfigError names the choices if unknown."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in _BY_NAME:
        choices = [*_BY_NAME, *_ALIASES]
        raise ConfigError(
            f"unknown executor {name!r}.{suggestion(name, choices, SHORT_WORD_CUTOFF)} "
            f"Use one of: {', '.join(EXECUTOR_NAMES)}"
        )
    if key == "pbs":
        from reflow.executors.pbs import pbs_executor_from_config

        return pbs_executor_from_config(config)
    cls: type[Executor] = getattr(importlib.import_module(_CLASSES[_BY_NAME[key]]), _BY_NAME[key])
    return cls.from_config(config)


def detect_executor_name(path: str | None = None) -> str:
    """The first scheduler whose submit command is on ``path`` (default: PATH), else 'local'.

    ``qsub`` belongs to both PBS and Grid Engine: ``SGE_ROOT`` in the environment or a
    Grid Engine banner in ``qsub -help`` means ``sge``, anything else ``pbs``.
    """
    import shutil  # here, not at the top: workers import this package and never detect

    if shutil.which("sbatch", path=path):
        return "slurm"
    qsub = shutil.which("qsub", path=path)
    if qsub:
        return "sge" if os.environ.get("SGE_ROOT") or _is_grid_engine(qsub) else "pbs"
    if shutil.which("bsub", path=path):
        return "lsf"
    if shutil.which("flux", path=path):
        return "flux"
    return "local"


def _is_grid_engine(qsub: str) -> bool:
    import re
    import subprocess

    try:
        proc = subprocess.run(
            [qsub, "-help"], capture_output=True, text=True, timeout=10,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    head = "\n".join((proc.stdout + "\n" + proc.stderr).splitlines()[:3])
    return re.search(r"\b(S?GE|UGE|OGS|Grid ?Engine)\b", head, re.IGNORECASE) is not None
