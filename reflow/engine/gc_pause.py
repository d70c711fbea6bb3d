"""Keeping Python's cyclic garbage collector out of a run's bulk bookkeeping.

Planning and recording 10,000 instances allocates tens of thousands of small, acyclic objects
(dicts, records, strings); each allocation burst triggers generation-0 and -2 collections that
walk every live object, which costs a fifth of a fully cached run. Nothing cyclic is made
there, so the collector is paused for those phases only — never while a task's own code runs.
For the whole run, what already exists is frozen out of collections (``gc_frozen``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (re-entrant; restores the previous state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of every collection until the block ends.

    A run's collections otherwise keep re-walking the whole program (modules, the task graph,
    the store's engine) although nothing of it becomes garbage during the run: a chain of
    1,000 tasks triggers dozens of such full walks. Objects made inside the block are
    collected as usual, task code included; on exit the frozen ones return to the oldest
    generation, so garbage among them is collected later, not leaked. A program that froze
    its own objects (a pre-fork server) keeps them frozen: then this does nothing.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
