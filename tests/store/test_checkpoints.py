"""WAL checkpoints run in the background after big writes, never inside the commit."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from store_builders import add_run, instance

from reflow.store import Store
from reflow.store.checkpoints import (
    CHECKPOINTER,
    WAL_CHECKPOINT_BYTES,
    WAL_KEEP_BYTES,
    Checkpointer,
    checkpoint,
)


def _big_write(store: Store, run_id: str, count: int = 3000) -> None:
    add_run(store, run_id)
    store.insert_instances([
        instance(run_id, index=i, preimage="p" * 2000, identity=f"{run_id}-{i}")
        for i in range(count)
    ])  # fmt: skip


def test_store_connections_leave_checkpoints_to_the_background(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Store.open(f"sqlite:///{db}") as store:
        before = CHECKPOINTER.completed
        _big_write(store, "r1")
        # The commit did not checkpoint: the data sits in the log until the thread copies it.
        assert CHECKPOINTER.wait_idle(timeout=30)
        assert CHECKPOINTER.completed > before
        with sqlite3.connect(db) as conn:
            # Nothing left to copy: a new passive checkpoint finds every frame done.
            busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert busy == 0 and logged == copied
        with store._db.engine.connect() as conn:  # the policy under test
            pragma = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert pragma == 0
        assert len(store.latest_instances("r1")) == 3000
        # The next write starts the log over and cuts the file back: small again.
        requested = CHECKPOINTER.completed
        add_run(store, "r2")
        assert os.stat(f"{db}-wal").st_size <= WAL_KEEP_BYTES
        assert CHECKPOINTER.wait_idle(timeout=30) and CHECKPOINTER.completed == requested


def test_small_writes_do_not_ask_for_a_checkpoint(tmp_path: Path) -> None:
    checkpointer = Checkpointer()
    db = tmp_path / "m.db"
    with Store.open(f"sqlite:///{db}") as store:
        add_run(store, "r1")
        assert os.stat(f"{db}-wal").st_size < WAL_CHECKPOINT_BYTES
        checkpointer.after_write(str(db))
    checkpointer.after_write(str(tmp_path / "no-such.db"))  # no log: nothing to do
    assert checkpointer.wait_idle(timeout=5) and checkpointer.completed == 0


def test_a_checkpoint_of_a_vanished_store_is_harmless(tmp_path: Path) -> None:
    checkpointer = Checkpointer()
    checkpointer.request(str(tmp_path / "gone" / "m.db"))
    assert checkpointer.wait_idle(timeout=10) and checkpointer.completed == 1
    checkpointer.stop()
    checkpointer.request(str(tmp_path / "m.db"))  # after stop: ignored, no thread restarted
    assert checkpointer.wait_idle(timeout=1) and checkpointer.completed == 1


def test_a_checkpoint_never_creates_a_store_deleted_meanwhile(tmp_path: Path) -> None:
    gone = tmp_path / "gone" / "manifest.db"
    gone.parent.mkdir()
    checkpoint(str(gone))
    assert list(gone.parent.iterdir()) == []
