"""One database behind the store: its engine, and short transactions retried to a deadline.

A driver on a login node must survive a PostgreSQL restart or a SQLite file briefly locked by
another writer, so every transaction is retried with jittered backoff while the failure looks
transient, up to a deadline; after that, and for failures that retrying cannot fix (bad
password, missing database, read-only file), the caller gets one StoreError line that names the
store and the fix.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.pool import StaticPool

from reflow.errors import StoreError
from reflow.store import sqlite
from reflow.store.checkpoints import CHECKPOINTER

T = TypeVar("T")

DEFAULT_DEADLINE_S = 30.0
# The hot paths speak these drivers' SQL and parameter styles (see bulk.py).
SUPPORTED_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql+psycopg"})
_FIRST_DELAY_S = 0.02
_MAX_DELAY_S = 1.0
# PostgreSQL SQLSTATE classes worth retrying: connection exceptions, operator intervention
# (server restarting), insufficient resources, transaction rollback (serialization, deadlock).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53", "40")
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out: another session holds the lock
_PERMANENT_CONNECT_FAILURES = (
    "does not exist",
    "authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "invalid connection option",
)


def parse_url(url: str) -> URL:
    """Parse a store URL; a bare ``postgresql://`` means the psycopg 3 driver we depend on."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # never echo a password
        raise StoreError(
            f"store location {shown!r} is not a SQLAlchemy URL; use sqlite:////path/manifest.db, "
            "postgresql+psycopg://user@host/db or a plain file path"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise StoreError(
            f"store URL {masked(parsed)} uses {parsed.drivername!r}; reflow stores live in "
            "SQLite (sqlite:///path) or PostgreSQL (postgresql+psycopg://user@host/db)"
        )
    return parsed


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class Database:
    """An engine plus the retry policy; every store operation runs through ``run``."""

    def __init__(self, url: URL, *, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        self.url = url
        self.display_url = masked(url)
        self.deadline_s = deadline_s
        self.dialect = url.get_backend_name()
        # A SQLite file in WAL mode, whose log a background thread checkpoints after writes.
        self.wal_file: str | None = None  # the database path; its log is path + "-wal"
        self.read_only = False  # a SQLite file this process cannot write (see sqlite.py)
        self.found_revision: str | None = None  # the schema as opened, before any upgrade
        self.engine = self._create_engine()

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            database = self.url.database
            if not database or database == ":memory:":
                engine = create_engine(
                    self.url, poolclass=StaticPool, connect_args={"check_same_thread": False}
                )
                sqlite.configure(engine, journal_mode=None, busy_timeout_s=self.deadline_s)
                return engine
            if sqlite.is_read_only(Path(database)):
                self.read_only = True
                engine = create_engine(self.url, creator=sqlite.read_only_connector(
                    Path(database)))
                sqlite.configure(engine, journal_mode=None, busy_timeout_s=self.deadline_s)
                return engine
            engine = create_engine(self.url)
            mode = sqlite.journal_mode_for(Path(database))
            sqlite.configure(engine, journal_mode=mode, busy_timeout_s=self.deadline_s)
            if mode == "WAL":
                self.wal_file = database
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in self.url.query:  # an unroutable host must not hang us
            connect_args["connect_timeout"] = max(1, min(10, round(self.deadline_s)))
        # A session holding a lock on our tables must not block us forever (the server's
        # default): waiting is bounded by the deadline, then the error says who to look for.
        # Options given in the URL (a search_path, say) are kept; a lock_timeout there wins.
        given = self.url.query.get("options", "")
        options = " ".join(given) if isinstance(given, tuple) else given
        if "lock_timeout" not in options:
            ms = max(1, round(self.deadline_s * 1000))
            connect_args["options"] = f"{options} -c lock_timeout={ms}".strip()
        # A server that stops answering mid-query (a partition drops packets; nothing refuses
        # them) must not hang us either: keepalive probes and tcp_user_timeout end such a
        # connection within about the deadline, and ``run`` retries on a new one.
        for key, value in (("keepalives", 1), ("keepalives_idle", 10),
                           ("keepalives_interval", 5), ("keepalives_count", 3),
                           ("tcp_user_timeout", max(1000, round(self.deadline_s * 1000)))):
            if key not in self.url.query:
                connect_args[key] = value
        # pre_ping replaces pooled connections that a server restart has cut.
        return create_engine(self.url, pool_pre_ping=True, connect_args=connect_args)

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run ``work`` in one transaction, retrying transient failures until the deadline.

        ``work`` may run more than once, so it must do nothing outside the transaction.
        """
        give_up_at = time.monotonic() + self.deadline_s
        delay = _FIRST_DELAY_S
        while True:
            try:
                with self.engine.connect() as conn:
                    if write:
                        conn.execution_options(**{sqlite.WRITE_OPTION: True})
                    with conn.begin():
                        result = work(conn)
                if write and self.wal_file is not None:
                    CHECKPOINTER.after_write(self.wal_file)
                return result
            except (OperationalError, InterfaceError) as exc:
                if not self._transient(exc):
                    raise StoreError(self._failed_message(exc)) from exc
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    raise StoreError(self._deadline_message(exc)) from exc
                time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
                delay = min(delay * 2, _MAX_DELAY_S)
            except DatabaseError as exc:
                if type(exc) is not DatabaseError:  # integrity and programming errors: callers'
                    raise
                raise StoreError(self._failed_message(exc)) from exc  # e.g. not a database

    def _transient(self, exc: DBAPIError) -> bool:
        if exc.connection_invalidated:
            return True
        if self.dialect == "sqlite":
            text = str(exc.orig).lower()
            return "locked" in text or "busy" in text
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate is not None:
            transient = str(sqlstate)[:2] in _TRANSIENT_SQLSTATE_CLASSES
            return transient or sqlstate == _LOCK_NOT_AVAILABLE
        # Failures while connecting carry no SQLSTATE; the server's words tell them apart.
        text = str(exc.orig).lower()
        return not any(phrase in text for phrase in _PERMANENT_CONNECT_FAILURES)

    def _failed_message(self, exc: DBAPIError) -> str:
        reason = _first_line(exc.orig)
        if self.read_only:
            return (
                f"store {self.display_url} is read-only for you (the file or its directory is "
                f"not writable; {reason}): it can be read (runs, status, why, logs, tui) but not "
                "changed; ask its owner, or copy it somewhere writable and use --store-path"
            )
        if self.dialect == "sqlite":
            if "not a database" in reason:
                return (
                    f"store {self.display_url} is not a SQLite database, or is damaged "
                    f"({reason}); point the store at a reflow store file, or move this file "
                    "away to start a new store there"
                )
            return (
                f"store {self.display_url} cannot be used: {reason}; check that the file and "
                "its directory exist and are writable by you"
            )
        return (
            f"store {self.display_url} refused the connection: {reason}; check the user, "
            "password and database name in the URL (--store / REFLOW_STORE)"
        )

    def _deadline_message(self, exc: DBAPIError) -> str:
        reason = _first_line(exc.orig)
        waited = f"{self.deadline_s:g} s"
        if self.dialect == "sqlite":
            return (
                f"store {self.display_url} stayed locked for {waited} ({reason}); wait for the "
                "other reflow process to finish, or use a PostgreSQL store for many writers"
            )
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return (
                f"store {self.display_url} stayed locked for {waited} ({reason}); another "
                "session holds a lock on reflow's tables: find it in pg_stat_activity"
            )
        return (
            f"store {self.display_url} unreachable for {waited} ({reason}); check that the "
            "PostgreSQL server is running and reachable from this host"
        )

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__
