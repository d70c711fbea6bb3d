"""Errors specific to the manifest store (all within the ReflowError hierarchy)."""

from __future__ import annotations

from reflow.errors import ReflowError, StoreError


class NoStoreError(StoreError):
    """Nothing has been recorded at this location yet (and the caller asked not to create)."""


class RunIdTaken(StoreError):
    """The run id is already recorded; the caller picks another id and tries again."""


class InstanceConflict(StoreError):
    """An inserted instance already has a current attempt in its run (or duplicates one)."""


class UnknownInstanceError(ReflowError, KeyError):
    """No instance with this id exists in the store."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument
        return str(self.args[0]) if self.args else ""
