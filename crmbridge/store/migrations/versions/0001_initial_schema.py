"""The initial schema: leads, links, handoffs, outcomes, events, cursors, leases, quarantine,
runs, backfills.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crmbridge.store.tables import UTCDateTime

# Row ids are BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_ = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfills",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("position", JSON_, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("counts", JSON_, nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfills")),
    )
    op.create_table(
        "cursors",
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("stream", sa.String(length=80), nullable=False),
        sa.Column("position", JSON_, nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "system", "stream", name=op.f("pk_cursors")),
    )
    op.create_table(
        "leads",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("crmbridge_id", sa.String(length=64), nullable=False),
        sa.Column("fields", JSON_, nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("fit", sa.Integer(), nullable=True),
        sa.Column("engagement", sa.Integer(), nullable=True),
        sa.Column("why", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=True),
        sa.Column("source_modified_at", UTCDateTime(), nullable=True),
        sa.Column("definition_version", sa.String(length=40), nullable=True),
        sa.Column("definition_hash", sa.String(length=16), nullable=True),
        sa.Column("recycles", sa.Integer(), nullable=False),
        sa.Column("last_recycled_at", UTCDateTime(), nullable=True),
        sa.Column("engaged_at", UTCDateTime(), nullable=True),
        sa.Column("marketing_dirty", sa.Boolean(), nullable=False),
        sa.Column("sales_dirty", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint(
            "pipeline", "crmbridge_id", name=op.f("uq_leads_pipeline_crmbridge_id")
        ),
        sa.UniqueConstraint("pipeline", "email", name=op.f("uq_leads_pipeline_email")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_leads_pipeline_marketing_dirty"),
            ["pipeline", "marketing_dirty"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_leads_pipeline_sales_dirty"), ["pipeline", "sales_dirty"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_leads_pipeline_stage"), ["pipeline", "stage"], unique=False
        )

    op.create_table(
        "leases",
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_leases")),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("native_id", sa.String(length=255), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("field", sa.String(length=120), nullable=True),
        sa.Column("rule", sa.String(length=80), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("raw", JSON_, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint(
            "pipeline",
            "system",
            "native_id",
            "stage",
            name=op.f("uq_quarantine_pipeline_system_native_id_stage"),
        ),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_status"), ["status"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("counts", JSON_, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("definition_version", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runs_pipeline_started_at"), ["pipeline", "started_at"], unique=False
        )

    op.create_table(
        "events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("data", JSON_, nullable=True),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("definition_version", sa.String(length=40), nullable=True),
        sa.Column("definition_hash", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_events_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_lead_id_id"), ["lead_id", "id"], unique=False)

    op.create_table(
        "handoffs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("sales_system", sa.String(length=40), nullable=False),
        sa.Column("native_id", sa.String(length=255), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("route_reason", sa.Text(), nullable=True),
        sa.Column("handed_off_at", UTCDateTime(), nullable=False),
        sa.Column("sla_due_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("outcome_reason", sa.String(length=80), nullable=True),
        sa.Column("outcome_at", UTCDateTime(), nullable=True),
        sa.Column("sla_breached_at", UTCDateTime(), nullable=True),
        sa.Column("breach_flagged_at", UTCDateTime(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("definition_version", sa.String(length=40), nullable=True),
        sa.Column("definition_hash", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_handoffs_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoffs")),
    )
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_handoffs_closed_sla_due_at"), ["closed", "sla_due_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_handoffs_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "links",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("native_id", sa.String(length=255), nullable=False),
        sa.Column("native_modified_at", UTCDateTime(), nullable=True),
        sa.Column("observed", JSON_, nullable=True),
        sa.Column("observed_at", UTCDateTime(), nullable=True),
        sa.Column("written_at", UTCDateTime(), nullable=True),
        sa.Column("written_modified_at", UTCDateTime(), nullable=True),
        sa.Column("written", JSON_, nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("merged_into", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_links_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint(
            "pipeline", "system", "native_id", name=op.f("uq_links_pipeline_system_native_id")
        ),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_links_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("lead_id", ID, nullable=False),
        sa.Column("handoff_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=True),
        sa.Column("native_value", sa.String(length=255), nullable=True),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("native_id", sa.String(length=255), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("written_back_at", UTCDateTime(), nullable=True),
        sa.Column("pipeline", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoffs.id"],
            name=op.f("fk_outcomes_handoff_id_handoffs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_outcomes_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("pipeline", "key", name=op.f("uq_outcomes_pipeline_key")),
    )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcomes_lead_id"), ["lead_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outcomes_pipeline_written_back_at"),
            ["pipeline", "written_back_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcomes_pipeline_written_back_at"))
        batch_op.drop_index(batch_op.f("ix_outcomes_lead_id"))

    op.drop_table("outcomes")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_links_lead_id"))

    op.drop_table("links")
    with op.batch_alter_table("handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoffs_lead_id"))
        batch_op.drop_index(batch_op.f("ix_handoffs_closed_sla_due_at"))

    op.drop_table("handoffs")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_lead_id_id"))

    op.drop_table("events")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_pipeline_started_at"))

    op.drop_table("runs")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_status"))

    op.drop_table("quarantine")
    op.drop_table("leases")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_pipeline_stage"))
        batch_op.drop_index(batch_op.f("ix_leads_pipeline_sales_dirty"))
        batch_op.drop_index(batch_op.f("ix_leads_pipeline_marketing_dirty"))

    op.drop_table("leads")
    op.drop_table("cursors")
    op.drop_table("backfills")
