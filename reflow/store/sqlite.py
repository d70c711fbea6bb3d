"""SQLite connection policy: journal mode, locking and network filesystems.

Two things matter for a store shared by a driver, the CLI and the TUI. Readers must never block
writers, which WAL gives on a local disk. And a write transaction that first reads (compare-and-
set) must hold the write lock from its first statement, or a concurrent writer makes it fail
instead of wait; hence ``BEGIN IMMEDIATE`` for writes. WAL needs shared memory that network
filesystems do not provide, so a store on NFS/Lustre/GPFS falls back to a rollback journal and
warns: PostgreSQL is the store for teams on such filesystems.

A store that this user cannot write (a colleague's, an archived copy on a read-only mount) is
still worth reading: ``runs``, ``status``, ``why`` and the TUI must work on it. SQLite cannot
read a WAL database without writing its ``-shm`` file, so such a store is opened read-only,
and as an immutable snapshot where even that file cannot be made.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

from reflow.errors import ReflowWarning
from reflow.store.checkpoints import WAL_KEEP_BYTES

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "fuse.glusterfs"}
)
MOUNTS_FILE = Path("/proc/mounts")
WRITE_OPTION = "reflow_write"
PAGE_SIZE = 16384

_OCTAL = re.compile(r"\\([0-7]{3})")  # /proc/mounts escapes blanks in paths as \040

_warned: set[str] = set()


class NetworkFilesystemWarning(ReflowWarning):
    """A SQLite store sits on a network filesystem, where its locking is unreliable."""


def filesystem_type(path: Path, mounts_file: Path | None = None) -> str | None:
    """The fstype of the mount holding ``path`` (the longest matching mount point), if known."""
    try:
        lines = (mounts_file or MOUNTS_FILE).read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def journal_mode_for(database: Path) -> str:
    """WAL on local disks; DELETE (with a one-time warning) on network filesystems.

    The file's own location counts: a store reached through a symlink keeps its journal and
    its WAL shared memory beside the file the link points to.
    """
    fstype = filesystem_type(database.resolve().parent)
    if fstype is None or fstype.lower() not in NETWORK_FILESYSTEMS:
        return "WAL"
    key = str(database)
    if key not in _warned:
        _warned.add(key)
        message = (
            f"SQLite store {database} is on a network filesystem ({fstype}), where SQLite "
            "locking is unreliable; using journal_mode=DELETE. Use a PostgreSQL store "
            "(--store postgresql+psycopg://...) when several hosts write to it."
        )
        warnings.warn(message, NetworkFilesystemWarning, stacklevel=_callers_level())
    return "DELETE"


def is_read_only(database: Path) -> bool:
    """Whether this process cannot write the existing store ``database``.

    Writing needs the file, and either its directory (for the WAL or journal files) or WAL
    files that already exist and are writable.
    """
    if not database.exists():
        return False
    if not os.access(database, os.W_OK):
        return True
    if os.access(database.parent, os.W_OK):
        return False
    side_files = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm")]
    return not all(f.exists() and os.access(f, os.W_OK) for f in side_files)


def read_only_connector(database: Path) -> Any:
    """A DBAPI ``creator`` opening ``database`` read-only.

    ``mode=ro`` sees a live store's latest commits but needs its ``-shm`` file to exist or be
    creatable; failing that (a read-only mount, a directory of someone else's), ``immutable``
    reads the file as a snapshot, which is what an archived store is.
    """
    uri = f"file:{database.resolve().as_posix()}?mode=ro"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False)
        return conn

    return connect


def _callers_level() -> int:
    """The ``stacklevel`` that names the first caller outside reflow (a pipeline's
    ``Store.open`` or ``run_local`` line), for a warning issued by the caller of this."""
    package = str(Path(__file__).resolve().parents[1]) + os.sep
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def configure(engine: Engine, *, journal_mode: str | None, busy_timeout_s: float) -> None:
    """Install the per-connection pragmas and explicit BEGIN handling on ``engine``.

    ``journal_mode`` is None for an in-memory or read-only database, whose journal is not ours
    to choose.
    """
    synchronous = "NORMAL" if journal_mode == "WAL" else "FULL"
    busy_ms = max(1, int(busy_timeout_s * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so that we decide when and how it happens.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if journal_mode is not None:
                # Only a database without tables takes a new page size: new stores get larger
                # pages, which write wide instance rows and their indexes in fewer pages
                # (a tenth off recording 10,000 instances); existing stores keep theirs.
                cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                current = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                if str(current).upper() != journal_mode:
                    cursor.execute(f"PRAGMA journal_mode = {journal_mode}")
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
                if journal_mode == "WAL":  # checkpoints run in the background (checkpoints.py)
                    cursor.execute("PRAGMA wal_autocheckpoint = 0")
                    cursor.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
