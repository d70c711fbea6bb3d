"""Schema life cycle: created at head, upgraded in place, refused when newer, never implied."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from store_builders import add_run, instance

from reflow.errors import StoreError
from reflow.store import Store
from reflow.store.database import Database, parse_url
from reflow.store.migrate import HEAD_REVISION, MIGRATIONS_DIR, ensure_schema
from reflow.store.models import Base

NEXT = f"{int(HEAD_REVISION) + 1:04d}"  # a revision a future release might add
EXTRA_MIGRATION = '''
"""Test-only revision: adds a column and a table, as a future release might."""

import sqlalchemy as sa
from alembic import op

revision = "{up}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("note", sa.Text(), nullable=True))
    op.execute("UPDATE runs SET note = 'upgraded'")
    op.create_table("extras", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    raise NotImplementedError
'''


def test_head_constant_matches_the_migration_scripts() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def _index_names(conn: Connection) -> set[str]:
    if conn.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        query = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    return {str(name) for name in conn.execute(text(query)).scalars()}


def test_a_new_store_has_exactly_the_schema_of_the_models(store: Store, store_url: str) -> None:
    db = Database(parse_url(store_url))
    try:
        with db.engine.connect() as conn, warnings.catch_warnings():
            # SQLite cannot reflect the expression index; its presence is checked by name below.
            warnings.simplefilter("ignore")
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            indexes = _index_names(conn)
    finally:
        db.dispose()
    assert diffs == []
    assert revision == HEAD_REVISION == store.revision
    expected = {ix.name for table in Base.metadata.tables.values() for ix in table.indexes}
    assert "uq_instances_latest" in expected
    assert expected <= indexes


def test_an_older_store_is_upgraded_in_place_and_keeps_its_rows(
    store_url: str, tmp_path: Path
) -> None:
    with Store.open(store_url) as store:  # the "older release": at today's head
        add_run(store, "r1")
        store.insert_instances([instance("r1", index=i) for i in range(3)])

    newer = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / f"{NEXT}_test.py").write_text(
        EXTRA_MIGRATION.format(up=NEXT, down=HEAD_REVISION))
    db = Database(parse_url(store_url))
    try:
        assert ensure_schema(db, script_location=newer, head=NEXT) == NEXT
        with db.engine.connect() as conn:
            assert "extras" in inspect(conn).get_table_names()
            notes = conn.execute(text("SELECT id, note FROM runs")).all()
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert [tuple(row) for row in notes] == [("r1", "upgraded")]
        assert version == NEXT
        # Opening again at that head is a no-op.
        assert ensure_schema(db, script_location=newer, head=NEXT) == NEXT
    finally:
        db.dispose()

    # This release does not know NEXT: it refuses the store instead of touching it.
    with pytest.raises(StoreError) as caught:
        Store.open(store_url)
    assert str(caught.value).endswith(
        f"was written by a newer reflow (revision {NEXT}); upgrade reflow"
    )


def test_a_store_stamped_with_an_unknown_revision_is_refused(store_url: str) -> None:
    with Store.open(store_url) as store:
        add_run(store, "r1")
    db = Database(parse_url(store_url))
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        db.dispose()
    with pytest.raises(StoreError, match=r"newer reflow \(revision 9999\); upgrade reflow"):
        Store.open(store_url)


def test_reflow_tables_without_a_schema_version_are_named_not_built_on(store_url: str) -> None:
    db = Database(parse_url(store_url))
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE runs (id VARCHAR PRIMARY KEY)"))
            conn.execute(text("CREATE TABLE other_app (id INTEGER)"))  # not ours: no matter
    finally:
        db.dispose()
    message = r"has tables named like reflow's \(runs\) but no schema version"
    for create in (True, False):  # submitting and reading say the same
        with pytest.raises(StoreError, match=message):
            Store.open(store_url, create=create)


def test_create_false_refuses_a_missing_sqlite_store_without_creating_it(tmp_path: Path) -> None:
    target = tmp_path / "not" / "there" / "manifest.db"
    with pytest.raises(StoreError, match="no reflow store at"):
        Store.open(target, create=False)
    assert not (tmp_path / "not").exists()


def test_create_false_refuses_an_empty_database(pg_url: str) -> None:
    with pytest.raises(StoreError, match="no reflow store at"):
        Store.open(pg_url, create=False)


def test_opening_a_path_creates_its_directory_and_a_wal_store(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "manifest.db"
    with Store.open(target) as store:
        assert store.url == f"sqlite:///{target}"
        add_run(store, "r1")
    assert target.is_file()
    with Store.open(str(target), create=False) as again:
        assert again.get_run("r1").run_id == "r1"
    assert Store.open(again) is again


def test_importing_the_store_and_resolving_its_location_create_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    env.pop("REFLOW_STORE", None)
    env.pop("REFLOW_STORE_PATH", None)
    code = (
        "import reflow.store\n"
        "from reflow.config import resolve_store_location\n"
        "print(resolve_store_location())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == f"sqlite:///{tmp_path / 'cache' / 'reflow' / 'manifest.db'}"
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_database_gives_a_store_error(tmp_path: Path) -> None:
    bogus = tmp_path / "manifest.db"
    bogus.write_text("this is not SQLite\n" * 100)
    before = bogus.read_bytes()
    with pytest.raises(StoreError, match=r"is not a SQLite database, or is damaged \(file is "
                       r"not a database\); point the store at a reflow store file") as err:
        Store.open(bogus)
    assert "\n" not in str(err.value) and bogus.read_bytes() == before


def test_an_unsupported_database_url_is_refused_by_name() -> None:
    with pytest.raises(StoreError, match="uses 'mysql\\+pymysql'; reflow stores live in SQLite"):
        Store.open("mysql+pymysql://u:pw@host/db")
    with pytest.raises(StoreError, match="is not a SQLAlchemy URL") as caught:
        Store.open("postgresql+psycopg://alice:hunter2@host:notaport/db")
    assert "hunter2" not in str(caught.value) and "alice:***@" in str(caught.value)


def test_a_store_directory_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the directory of store"):
        Store.open(blocker / "sub" / "manifest.db")
