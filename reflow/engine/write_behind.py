"""Write-behind recording for in-process runs: changes kept in memory, written in batches.

A committed transaction costs 0.2-3 ms, far more than a trivial task, so ``run_local`` must not
write one per task (a chain of 1,000 singleton tasks would be all commits). New instances and
state changes collect here and go to the store in one transaction when they are ``max_age``
old, when there are ``max_rows`` of them, or before anything that must see them (the end of
the run). An instance that starts and finishes between two writes is written once, already
finished, with all of its transitions at their real times. A crash loses at most the
unwritten batch, which the next run simply recomputes (SPEC §10).

The run's thread holds ``lock`` while it plans and records, and releases it only while task
code runs. During that time a watchdog thread writes what is due, so a task that runs for an
hour shows as RUNNING in the store after ``max_age``, and the fast work finished before it is
not held back. Only one thread ever uses the store at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

from reflow.engine.gc_pause import gc_paused
from reflow.store import CopyBatch, NewVerifyFailure, StateChange, Store
from reflow.store.writes import RecordedInstance


class Slot:
    """One instance as this process knows it: unwritten (``pending`` set) or in the store."""

    __slots__ = ("instance_id", "pending", "problems", "state")

    def __init__(self, state: str, pending: RecordedInstance | None = None,
                 instance_id: int = 0) -> None:
        self.state = state
        self.pending = pending
        self.instance_id = instance_id
        self.problems: Sequence[tuple[str, str]] = ()


class WriteBehind:
    """The buffer of one run; use ``watching()`` around the run and ``flush()`` at its end."""

    def __init__(self, store: Store, *, max_age: float = 0.5, max_rows: int = 50_000) -> None:
        self.store = store
        self.max_age = max_age
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self._new: list[Slot] = []
        self._copies: list[CopyBatch] = []
        self._changes: list[StateChange] = []
        self._changed_at: list[datetime] = []
        self._since: float | None = None

    # -- recording -------------------------------------------------------------------------
    def add(self, instance: RecordedInstance,
            problems: Sequence[tuple[str, str]] = ()) -> Slot:
        """A new instance, in the state its history ends in; ``problems``: verify failures to
        record with it."""
        slot = Slot(instance.history[-1][1], instance)
        if problems:
            slot.problems = list(problems)
        self._new.append(slot)
        self._touch()
        return slot

    def add_copies(self, batch: CopyBatch) -> None:
        """Cache hits of one task: created in their final state, so they need no slot.

        A fully cached run adds 10,000 of these at once, and none is ever changed.
        """
        if batch.copies:
            self._copies.append(batch)
            self._touch()

    @staticmethod
    def existing(instance_id: int, state: str) -> Slot:
        """An instance already in the store (a retried attempt)."""
        return Slot(state, instance_id=instance_id)

    def change(self, slot: Slot, from_states: Collection[str], to_state: str, detail: str,
               fields: Mapping[str, object], at: datetime) -> None:
        """Move ``slot`` to ``to_state`` if it is in ``from_states`` (else nothing happens).

        In the store the check is a compare-and-set at write time; for an unwritten instance
        this process is the only one that knows it, so the check happens here.
        """
        pending = slot.pending
        if pending is None:
            self._changes.append(StateChange(slot.instance_id, frozenset(from_states),
                                             to_state, detail, fields))
            self._changed_at.append(at)
            self._touch()
            return
        if slot.state not in from_states:
            return
        pending.change(to_state, detail, fields, at)
        slot.state = to_state

    def _touch(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    # -- writing ---------------------------------------------------------------------------
    def due(self) -> bool:
        since = self._since
        return since is not None and (
            time.monotonic() - since >= self.max_age
            or len(self._new) + len(self._changes) + len(self._copies) >= self.max_rows
        )

    def flush_if_due(self) -> None:
        if self._since is not None and self.due():
            self.flush()

    def flush(self) -> None:
        """Write everything buffered in one transaction (the caller holds ``lock``)."""
        if self._since is None:
            return
        new, changes, at, copies = self._new, self._changes, self._changed_at, self._copies
        # All of them unwritten: every slot in ``_new`` still has its pending row.
        rows = [s.pending for s in new if s.pending is not None]
        with gc_paused():  # tens of thousands of acyclic row tuples (see gc_pause)
            ids = self.store.record(rows, changes, at=at, copies=copies)
        failures: list[NewVerifyFailure] = []
        for slot, instance_id in zip(new, ids, strict=True):
            row = slot.pending
            if row is not None and slot.problems:
                failures.extend(
                    NewVerifyFailure(instance_id, row.run_id, row.task_name, row.array_index,
                                     check, reason)
                    for check, reason in slot.problems
                )
            slot.instance_id, slot.pending = instance_id, None
        self._new, self._changes, self._changed_at, self._copies = [], [], [], []
        self._since = None
        if failures:
            self.store.add_verify_failures(failures)

    # -- threads ---------------------------------------------------------------------------
    @contextmanager
    def watching(self) -> Iterator[None]:
        """Hold ``lock`` for the block, with a watchdog writing what is due while released."""
        stop = threading.Event()
        watchdog = threading.Thread(target=self._watch, args=(stop,), daemon=True,
                                    name="reflow-write-behind")
        with self.lock:
            watchdog.start()
            try:
                yield
            finally:
                stop.set()
        watchdog.join()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let the watchdog in while task code runs (the caller holds ``lock``)."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    def _watch(self, stop: threading.Event) -> None:
        tick = self.max_age / 4
        while not stop.wait(tick):
            if not self.due() or not self.lock.acquire(timeout=tick):
                continue
            try:
                if not stop.is_set() and self.due():
                    self.flush()
            except Exception:  # the run's own next flush retries and reports it
                return
            finally:
                self.lock.release()
