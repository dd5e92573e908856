"""The state store's tables (SQLAlchemy Core). Alembic migrations create them; a test checks
that the migrations and these definitions agree.

* ``leads`` — each person once per pipeline, by normalized email: shared fields, stage, score, and
  whether marketing or sales must be told of a change (the dirty flags, a durable outbox);
* ``links`` — a lead's record in each system: its native id, the values last seen there
  (``observed``) and last written there by crmbridge (``written``), to tell a person's edit;
* ``handoffs`` — marketing handing a lead to sales: when, to whom, SLA due, outcome, breach;
* ``outcomes`` — every verdict sales gave, once each (its key), and whether it was written back;
* ``events`` — the append-only journey of each lead: every decision with its reasons;
* ``cursors`` — per pipeline, system and stream, with the lease fence they were written under;
* ``leases`` — which process holds a pipeline, until when, and the fencing counter;
* ``quarantine`` — records that broke the definition or were refused, to see and retry;
* ``runs`` — the counts of each cycle and backfill;
* ``backfills`` — a backfill's range and cursor, so it resumes where it stopped;
* ``scaled_pipelines`` — the scaled runtime's schedule: when each pipeline is due next;
* ``scaled_ticks`` — the scaled runtime's log of the jobs that held a pipeline (start, end, worker).

On PostgreSQL the migrations also create procrastinate's own tables (``procrastinate_*``) for the
scaled runtime; they are procrastinate's, not described here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class _SQLiteUTCText(sqlite.DATETIME):
    """SQLite's DATETIME column, its text written and read by :class:`UTCDateTime` itself."""

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive UTC text).

    On SQLite the text is written and parsed here, in SQLAlchemy's own storage format
    (``YYYY-MM-DD HH:MM:SS.ffffff``), instead of by SQLAlchemy's DATETIME processors on top of
    this one: a backfill binds millions of these, and the two layers cost twice the time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return _SQLiteUTCText()  # type: ignore[no-untyped-call]  # the dialect type is untyped
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware times")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

leads = Table(
    "leads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(80), nullable=False),
    Column("email", String(320), nullable=False),
    Column("crmbridge_id", String(64), nullable=False),
    Column("fields", Json, nullable=False),
    Column("stage", String(40)),
    Column("score", Integer),
    Column("fit", Integer),
    Column("engagement", Integer),
    Column("why", Text),
    Column("source", String(40)),
    Column("source_modified_at", UTCDateTime()),
    Column("definition_version", String(40)),
    Column("definition_hash", String(16)),
    Column("recycles", Integer, nullable=False, default=0),
    Column("last_recycled_at", UTCDateTime()),
    Column("engaged_at", UTCDateTime()),
    Column("marketing_dirty", Boolean, nullable=False, default=False),
    Column("sales_dirty", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # A handoff sent to sales and not recorded yet (see migration 0003).
    Column("handoff_sent_at", UTCDateTime()),
    UniqueConstraint("pipeline", "email"),
    UniqueConstraint("pipeline", "crmbridge_id"),
    Index(None, "pipeline", "stage"),
    Index(None, "pipeline", "marketing_dirty"),
    Index(None, "pipeline", "sales_dirty"),
)

links = Table(
    "links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(80), nullable=False),
    Column("lead_id", Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("system", String(40), nullable=False),
    Column("native_id", String(255), nullable=False),
    Column("native_modified_at", UTCDateTime()),
    Column("observed", Json),
    Column("observed_at", UTCDateTime()),
    Column("written_at", UTCDateTime()),
    Column("written_modified_at", UTCDateTime()),
    Column("written", Json),
    Column("deleted_at", UTCDateTime()),
    Column("merged_into", String(255)),
    UniqueConstraint("pipeline", "system", "native_id"),
    Index(None, "lead_id"),
)

handoffs = Table(
    "handoffs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("pipeline", String(80), nullable=False),
    Column("sales_system", String(40), nullable=False),
    Column("native_id", String(255)),
    Column("owner", String(255)),
    Column("route_reason", Text),
    Column("handed_off_at", UTCDateTime(), nullable=False),
    Column("sla_due_at", UTCDateTime(), nullable=False),
    Column("accepted_at", UTCDateTime()),
    Column("outcome", String(20)),
    Column("outcome_reason", String(80)),
    Column("outcome_at", UTCDateTime()),
    Column("sla_breached_at", UTCDateTime()),
    Column("breach_flagged_at", UTCDateTime()),
    Column("closed", Boolean, nullable=False, default=False),
    Column("definition_version", String(40)),
    Column("definition_hash", String(16)),
    Index(None, "lead_id"),
    Index(None, "closed", "sla_due_at"),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False),
    Column("lead_id", Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("handoff_id", Id, ForeignKey("handoffs.id", ondelete="SET NULL")),
    Column("kind", String(20), nullable=False),
    Column("reason", String(80)),
    Column("native_value", String(255)),
    Column("system", String(40), nullable=False),
    Column("native_id", String(255), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("amount", Float),
    Column("owner", String(255)),
    Column("stage", String(40)),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("written_back_at", UTCDateTime()),
    Column("pipeline", String(80), nullable=False),
    UniqueConstraint("pipeline", "key"),
    Index(None, "lead_id"),
    Index(None, "pipeline", "written_back_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("lead_id", Id, ForeignKey("leads.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("system", String(40)),
    Column("actor", String(80)),
    Column("summary", Text, nullable=False),
    Column("data", Json),
    Column("run_id", String(40)),
    Column("definition_version", String(40)),
    Column("definition_hash", String(16)),
    Index(None, "lead_id", "id"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("pipeline", String(80), primary_key=True),
    Column("system", String(40), primary_key=True),
    Column("stream", String(80), primary_key=True),
    Column("position", Json, nullable=False),
    Column("fence", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("pipeline", String(80), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("fence", BigInteger, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(80), nullable=False),
    Column("system", String(40), nullable=False),
    Column("native_id", String(255), nullable=False),
    Column("stage", String(20), nullable=False),  # where it failed: read, write, outcome
    Column("email", String(320)),
    Column("field", String(120)),
    Column("rule", String(80)),
    Column("error", Text, nullable=False),
    Column("raw", Json, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("status", String(20), nullable=False, default="open"),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    UniqueConstraint("pipeline", "system", "native_id", "stage"),
    Index(None, "status"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(80), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(20), nullable=False),
    Column("counts", Json),
    Column("error", Text),
    Column("definition_version", String(40)),
    Index(None, "pipeline", "started_at"),
)

backfills = Table(
    "backfills",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(80), nullable=False),
    Column("since", UTCDateTime(), nullable=False),
    Column("until", UTCDateTime()),
    Column("position", Json, nullable=False),
    Column("status", String(20), nullable=False),
    Column("counts", Json),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

scaled_pipelines = Table(
    "scaled_pipelines",
    metadata,
    Column("pipeline", String(80), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("last_job_id", BigInteger),
    Column("last_started_at", UTCDateTime()),
    Column("last_finished_at", UTCDateTime()),
    Column("last_status", String(20)),
    Column("last_ok_at", UTCDateTime()),
    Column("note", Text),
)

scaled_ticks = Table(
    "scaled_ticks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(80), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("worker_id", BigInteger),
    Column("owner", String(200), nullable=False),
    Column("run_id", String(40)),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(20), nullable=False),
    Index(None, "pipeline", "started_at"),
    Index(None, "job_id"),
)
