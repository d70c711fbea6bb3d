"""The manifest store (SPEC §4): runs, task specs, instances, transitions, verify failures.

Workers never import this package; the driver, CLI and TUI open a ``Store`` and exchange the
plain records defined in ``records``.
"""

from reflow.store.errors import InstanceConflict, NoStoreError, RunIdTaken, UnknownInstanceError
from reflow.store.records import (
    ActiveInstance,
    CachedCopy,
    CacheHit,
    CopyBatch,
    InstanceRecord,
    NewInstance,
    NewRun,
    NewTaskSpec,
    NewVerifyFailure,
    RunRecord,
    StateChange,
    StoreInfo,
    TaskSpecRecord,
    TransitionRecord,
    VerifyFailureRecord,
)
from reflow.store.sqlite import NetworkFilesystemWarning
from reflow.store.store import Store

__all__ = [
    "ActiveInstance",
    "CacheHit",
    "CachedCopy",
    "CopyBatch",
    "InstanceConflict",
    "InstanceRecord",
    "NetworkFilesystemWarning",
    "NewInstance",
    "NewRun",
    "NewTaskSpec",
    "NewVerifyFailure",
    "NoStoreError",
    "RunIdTaken",
    "RunRecord",
    "StateChange",
    "Store",
    "StoreInfo",
    "TaskSpecRecord",
    "TransitionRecord",
    "UnknownInstanceError",
    "VerifyFailureRecord",
]
