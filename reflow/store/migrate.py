"""Bring a store's schema to this version's head, in place, under a lock.

Opening a store must be cheap (every CLI command does it), so the common case, a store already
at head, costs one small query and never imports Alembic. Otherwise Alembic upgrades inside one
transaction that holds the write lock (SQLite) or an advisory lock (PostgreSQL), so two
processes opening a new store at once cannot both create it. A store whose revision this code
does not know was written by a newer reflow and is refused rather than touched.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from reflow.errors import StoreError
from reflow.store.database import Database
from reflow.store.errors import NoStoreError

HEAD_REVISION = "0002"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
_PG_LOCK_KEY = 0x7265666C6F77  # "reflow": serialises migrations across processes


def current_revision(conn: Connection) -> str | None:
    """The store's schema revision, or None for an empty database."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def ensure_schema(
    db: Database,
    *,
    create: bool = True,
    script_location: Path = MIGRATIONS_DIR,
    head: str = HEAD_REVISION,
) -> str:
    """Upgrade ``db`` to ``head`` unless it is there already; returns the revision.

    ``script_location`` and ``head`` exist so tests can prove an in-place upgrade with a
    migration that this release does not ship.
    """
    revision = db.found_revision = db.run(current_revision)
    if revision == head:
        return revision
    if revision is None:
        _refuse_unversioned(db)
    if revision is None and not create:
        raise NoStoreError(
            f"no reflow store at {db.display_url}; check the location, or run a pipeline "
            "once to create it"
        )
    if revision is not None and db.read_only:
        # Read as it is: an older schema holds less, never something this code misreads
        # (a shared value is looked up only where a row refers to one, which needs 0002).
        _refuse_unknown(revision, db.display_url, script_location)
        return revision

    def upgrade(conn: Connection) -> str:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        found = current_revision(conn)  # again, under the lock: another process may have won
        if found == head:
            return head
        _refuse_unknown(found, db.display_url, script_location)
        _run_alembic(conn, script_location, head)
        return head

    return db.run(upgrade, write=True)


# Tables this schema creates: found without a version, they are not ours to build on.
_OWN_TABLES = ("runs", "task_specs", "instances", "transitions", "verify_failures",
               "shared_values")


def _refuse_unversioned(db: Database) -> None:
    """Refuse a database that holds reflow's table names but no schema version.

    Creating the schema there would fail half way ("table runs already exists"), and reading
    it would claim there is no store at all; neither says what is wrong. Other tables (a
    team's PostgreSQL database holds more than reflow's) are left alone.
    """
    found = db.run(lambda conn: [t for t in _OWN_TABLES if inspect(conn).has_table(t)])
    if found:
        raise StoreError(
            f"store {db.display_url} has tables named like reflow's ({', '.join(found)}) but "
            f"no schema version ({VERSION_TABLE}): it is not a reflow store, or its creation "
            "was interrupted; use another location, or move this one away"
        )


def _refuse_unknown(revision: str | None, display_url: str, script_location: Path) -> None:
    if revision is None:
        return
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(script_location))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    if revision not in known:
        raise StoreError(
            f"store {display_url} was written by a newer reflow (revision {revision}); "
            "upgrade reflow"
        )


def _run_alembic(conn: Connection, script_location: Path, head: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = conn
    command.upgrade(config, head)
