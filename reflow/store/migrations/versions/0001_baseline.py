"""Baseline schema: runs, task specs, instances, transitions, verify failures.

Revision ID: 0001
Revises:
Create Date: 2025-11-25

Written out in full rather than from the models, so that later changes to the models can never
change what this revision creates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("entrypoint", sa.Text(), nullable=True),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("reflow_version", sa.String(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_created_at", "runs", ["created_at"])
    op.create_index("ix_runs_workflow_created_at", "runs", ["workflow", "created_at"])

    op.create_table(
        "task_specs",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("is_array", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("dependencies", sa.Text(), nullable=False),
        sa.Column("return_type", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_task_specs_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_task_specs"),
    )

    op.create_table(
        "instances",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("workflow", sa.String(), nullable=False),
        sa.Column("task_name", sa.String(), nullable=False),
        sa.Column("array_index", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("latest", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("identity", sa.String(), nullable=False),
        sa.Column("input_hash", sa.String(), nullable=False),
        sa.Column("preimage", sa.Text(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("output_hash", sa.String(), nullable=True),
        sa.Column("fingerprints", sa.Text(), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("cache_source", ID, nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("scheduler_state", sa.String(), nullable=True),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("stdout_path", sa.Text(), nullable=True),
        sa.Column("stderr_path", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_instances_run_id_runs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["cache_source"],
            ["instances.id"],
            name="fk_instances_cache_source_instances",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index(
        "ix_instances_cache",
        "instances",
        ["identity", "state", "cached", "id"],
        sqlite_where=sa.text("state = 'SUCCESS' AND cached = 0"),
        postgresql_where=sa.text("state = 'SUCCESS' AND cached = false"),
    )
    op.create_index(
        "ix_instances_summary", "instances", ["run_id", "latest", "task_name", "state", "cached"]
    )
    op.create_index(
        "ix_instances_lineage", "instances", ["workflow", "task_name", "array_index", "id"]
    )
    op.create_index(
        "uq_instances_latest",
        "instances",
        ["run_id", "task_name", sa.text("coalesce(array_index, -1)")],
        unique=True,
        sqlite_where=sa.text("latest = 1"),
        postgresql_where=sa.text("latest"),
    )

    op.create_table(
        "transitions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", ID, nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_name", sa.String(), nullable=False),
        sa.Column("array_index", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(), nullable=True),
        sa.Column("to_state", sa.String(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name="fk_transitions_instance_id_instances",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
    )
    op.create_index("ix_transitions_run_id_id", "transitions", ["run_id", "id"])

    op.create_table(
        "verify_failures",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", ID, nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("task_name", sa.String(), nullable=False),
        sa.Column("array_index", sa.Integer(), nullable=True),
        sa.Column("check_name", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name="fk_verify_failures_instance_id_instances",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_verify_failures"),
    )
    op.create_index("ix_verify_failures_run_id_id", "verify_failures", ["run_id", "id"])


def downgrade() -> None:
    raise NotImplementedError("reflow stores are upgraded in place, never downgraded")
