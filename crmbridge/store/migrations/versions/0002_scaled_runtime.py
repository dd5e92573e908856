"""The scaled runtime: its schedule and tick log (every database), and procrastinate's own schema
(PostgreSQL only; nothing on SQLite, where the scaled runtime does not run).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from crmbridge.store.tables import UTCDateTime

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scaled_pipelines",
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("last_job_id", sa.BigInteger(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.String(length=20), nullable=True),
        sa.Column("last_ok_at", UTCDateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_scaled_pipelines")),
    )
    op.create_table(
        "scaled_ticks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("worker_id", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scaled_ticks")),
    )
    with op.batch_alter_table("scaled_ticks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scaled_ticks_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_scaled_ticks_pipeline_started_at"),
            ["pipeline", "started_at"],
            unique=False,
        )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from crmbridge.runtime.scaled.schema import apply_schema

        apply_schema(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        from crmbridge.runtime.scaled.schema import drop_schema

        drop_schema(bind)
    with op.batch_alter_table("scaled_ticks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scaled_ticks_pipeline_started_at"))
        batch_op.drop_index(batch_op.f("ix_scaled_ticks_job_id"))

    op.drop_table("scaled_ticks")
    op.drop_table("scaled_pipelines")
