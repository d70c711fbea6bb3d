"""Tables of the manifest store, as typed SQLAlchemy ORM models.

The models are the single description of the schema: the baseline migration is written from
them and the queries select from their tables. Indexes exist for named queries (see each
``__table_args__``); adding a query that scans means adding an index and a migration. Strings
have no length limit, because SQLite would ignore one and PostgreSQL enforce it: a value must be
storable on both or on neither.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so later migrations can refer to them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the autoincrementing rowid.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python; TIMESTAMPTZ on PostgreSQL, naive-UTC text on SQLite.

    SQLite has no time zone type, so values are normalised to UTC before storage: the text
    then sorts chronologically and comes back aware. Naive datetimes are refused because a
    local wall-clock time silently stored as UTC would corrupt every age and ordering.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime | str) -> datetime:
    """A stored time as an aware UTC datetime: SQLite keeps naive-UTC text, PostgreSQL gives
    aware datetimes (in the session's zone)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value + "+00:00")  # one C call, as it is stored
        except ValueError:  # text with an offset of its own
            value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RunRow(Base):
    """One run of a workflow."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(), primary_key=True)
    workflow: Mapped[str] = mapped_column(String())
    entrypoint: Mapped[str | None] = mapped_column(Text)
    run_dir: Mapped[str] = mapped_column(Text)
    # "user" is a reserved word in SQL; a plain name keeps hand-written queries simple.
    user: Mapped[str] = mapped_column("username", String())
    host: Mapped[str] = mapped_column(String())
    status: Mapped[str] = mapped_column(String())
    parameters: Mapped[str] = mapped_column(Text)
    options: Mapped[str] = mapped_column(Text)
    reflow_version: Mapped[str] = mapped_column(String())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(None, "created_at"),  # list_runs, suggestions: newest first
        Index(None, "workflow", "created_at"),  # list_runs per workflow, reference runs
    )


class TaskSpecRow(Base):
    """A task of a run as it was defined when the run was recorded."""

    __tablename__ = "task_specs"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    is_array: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[str] = mapped_column(String())
    config: Mapped[str] = mapped_column(Text)
    dependencies: Mapped[str] = mapped_column(Text)
    return_type: Mapped[str] = mapped_column(Text)


class InstanceRow(Base):
    """One attempt of one task instance; ``latest`` marks the attempt that counts."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    workflow: Mapped[str] = mapped_column(String())
    task_name: Mapped[str] = mapped_column(String())
    array_index: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    latest: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String())
    identity: Mapped[str] = mapped_column(String())
    input_hash: Mapped[str] = mapped_column(String())
    preimage: Mapped[str] = mapped_column(Text)
    input: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    output_hash: Mapped[str | None] = mapped_column(String())
    fingerprints: Mapped[str | None] = mapped_column(Text)
    cached: Mapped[bool] = mapped_column(Boolean)
    cache_source: Mapped[int | None] = mapped_column(
        Id, ForeignKey("instances.id", ondelete="SET NULL")
    )
    reason: Mapped[str] = mapped_column(String())
    job_id: Mapped[str | None] = mapped_column(String())
    exit_code: Mapped[int | None] = mapped_column(Integer)
    scheduler_state: Mapped[str | None] = mapped_column(String())
    error_text: Mapped[str | None] = mapped_column(Text)
    stdout_path: Mapped[str | None] = mapped_column(Text)
    stderr_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # find_cached: the newest computed SUCCESS per identity, from the index alone. Partial:
        # state changes before SUCCESS and cached copies (which only repeat their source) never
        # touch this randomly keyed index, so recording a fully cached run writes none of it.
        Index(
            "ix_instances_cache",
            "identity",
            "state",  # redundant, but SQLite only treats the index as covering with them
            "cached",
            "id",
            sqlite_where=text("state = 'SUCCESS' AND cached = 0"),
            postgresql_where=text("state = 'SUCCESS' AND cached = false"),
        ),
        # status_counts / cache_counts / count_latest: one covering index range per run.
        Index("ix_instances_summary", "run_id", "latest", "task_name", "state", "cached"),
        # task_seen, nearest_preimage, history: earlier instances of a task of a workflow.
        Index("ix_instances_lineage", "workflow", "task_name", "array_index", "id"),
    )


# At most one current attempt per (run, task, index): two drivers can never both record the
# same instance. The same partial index pages a task's current instances in index order, so the
# key expression is shared with the queries (SQLite only uses it for an identical expression).
INDEX_KEY = func.coalesce(InstanceRow.array_index, literal_column("-1"))
Index(
    "uq_instances_latest",
    InstanceRow.run_id,
    InstanceRow.task_name,
    INDEX_KEY,
    unique=True,
    sqlite_where=text("latest = 1"),
    postgresql_where=text("latest"),
)


class TransitionRow(Base):
    """Append-only history: one row per state change of an instance."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(Id, ForeignKey("instances.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String())
    task_name: Mapped[str] = mapped_column(String())
    array_index: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String())
    to_state: Mapped[str] = mapped_column(String())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str] = mapped_column(Text)

    # The live feed: transitions of a run since an id.
    __table_args__ = (Index(None, "run_id", "id"),)


class VerifyFailureRow(Base):
    """A failed verification of a recorded output."""

    __tablename__ = "verify_failures"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(Id, ForeignKey("instances.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String())
    task_name: Mapped[str] = mapped_column(String())
    array_index: Mapped[int | None] = mapped_column(Integer)
    # "check" is a reserved word in SQL.
    check: Mapped[str] = mapped_column("check_name", Text)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "run_id", "id"),)


class SharedValueRow(Base):
    """The text of an input shared by the elements of an array task (``core.shared``), which
    their payloads refer to by its digest instead of repeating it."""

    __tablename__ = "shared_values"

    digest: Mapped[str] = mapped_column(String(), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
