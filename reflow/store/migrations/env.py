"""Alembic environment for the manifest store; reflow runs it programmatically.

``reflow.store.migrate`` passes an open connection (already inside a locked transaction) in
``config.attributes["connection"]``, so no ``alembic.ini`` or URL is involved. To write the next
migration, point a Config at this directory and a store at head, then autogenerate:

    cfg = Config(); cfg.set_main_option("script_location", "reflow/store/migrations")
    cfg.attributes["connection"] = engine.connect()
    command.revision(cfg, "what changes", autogenerate=True, rev_id="0002")

and set ``HEAD_REVISION`` in ``reflow/store/migrate.py`` to the new id.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from reflow.store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "reflow migrations run through reflow.store (Store.open or `reflow store upgrade`), "
        "which passes the connection; the alembic command line is not supported"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
