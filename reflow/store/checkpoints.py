"""WAL checkpoints of SQLite stores, moved off the thread that commits.

In WAL mode every commit appends pages to the ``-wal`` file, and by default the commit that
pushes it past 1,000 pages also copies the whole log back into the database and fsyncs it.
Recording 10,000 instances writes several megabytes, so that one commit took as long as all
the inserts before it. Store connections therefore turn automatic checkpoints off, and after a
write transaction that leaves a large log, a background thread runs a PASSIVE checkpoint on its
own connection: it never blocks readers or writers, overlaps the engine's next Python work, and
a crash in the middle is harmless (the log stays valid until a later checkpoint finishes).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
from pathlib import Path

# Checkpoint once the log passes the size SQLite's own automatic checkpoint would start at.
WAL_CHECKPOINT_BYTES = 1000 * 4096
# When a writer restarts a fully checkpointed log, SQLite cuts the file back to this size, so a
# small write after a big one does not look like a big log again.
WAL_KEEP_BYTES = WAL_CHECKPOINT_BYTES // 4
_JOIN_AT_EXIT_S = 10.0


class Checkpointer:
    """One background thread per process, checkpointing the stores it is asked about."""

    def __init__(self) -> None:
        self._start_fresh()
        self._stopping = False
        self.completed = 0  # checkpoints run so far
        # A forked child has no worker thread: it starts its own when it first needs one.
        os.register_at_fork(after_in_child=self._start_fresh)

    def _start_fresh(self) -> None:
        self._due: dict[str, None] = {}  # database paths, in request order, without repeats
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False

    def after_write(self, database: str) -> None:
        """Called after a committed write: schedule a checkpoint when the log has grown."""
        try:
            size = os.stat(database + "-wal").st_size
        except OSError:
            return
        if size >= WAL_CHECKPOINT_BYTES:
            self.request(database)

    def request(self, database: str) -> None:
        with self._wake:
            if self._stopping:
                return
            self._due[database] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="reflow-wal-checkpoint")
                self._thread.start()
                atexit.register(self.stop)
            self._wake.notify()

    def stop(self) -> None:
        """Finish the checkpoint in progress and end the thread (at interpreter exit)."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(_JOIN_AT_EXIT_S)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._due and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                database = next(iter(self._due))
                del self._due[database]
                self._busy = True
            try:
                checkpoint(database)
            finally:
                with self._wake:
                    self._busy = False
                    self.completed += 1
                    self._wake.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no checkpoint is pending or running (for tests and benchmarks)."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._due and not self._busy, timeout)


def checkpoint(database: str) -> None:
    """A PASSIVE checkpoint of ``database``; failures are left to the next one."""
    try:  # read-write, never create: a store deleted meanwhile must stay deleted
        conn = sqlite3.connect(f"{Path(database).resolve().as_uri()}?mode=rw", uri=True,
                               timeout=0.1, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass  # busy or gone: a later write asks again
    finally:
        conn.close()


CHECKPOINTER = Checkpointer()
