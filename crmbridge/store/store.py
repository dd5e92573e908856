"""The :class:`Store`: every read and write of crmbridge's state goes through it.

Writes use the dialect's ``INSERT … ON CONFLICT`` (SQLite and PostgreSQL alike), guarded so an
older change never overwrites a newer one; batches go in one statement with many rows. Cursor
writes are fenced by the pipeline's lease: a process whose lease was taken over cannot move a
cursor, however late its write arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from crmbridge.errors import PipelineHeld
from crmbridge.store import tables as t
from crmbridge.store.engine import WRITE_OPTION, create_store_engine
from crmbridge.store.lifecycle import LifecycleQueries, chunks, jsonable
from crmbridge.store.records import JourneyEvent, LeaseInfo, QuarantinedRecord, RunRecord

_COLUMN_DEFAULTS: dict[str, Any] = {"recycles": 0, "marketing_dirty": False, "sales_dirty": False}


def crmbridge_id_for(email: str) -> str:
    """A lead's stable crmbridge id, derived from its first normalized email.

    Derived rather than random so that a store rebuilt from scratch mints the same ids, and an
    upsert keyed on it in a sales system finds the record it made before.
    """
    return "cb-" + hashlib.sha256(email.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class LeadRow:
    """A known lead as the store holds it."""

    id: int
    pipeline: str
    email: str
    crmbridge_id: str
    fields: Mapping[str, Any]
    stage: str | None
    score: int | None
    fit: int | None
    engagement: int | None
    why: str | None
    source: str | None
    source_modified_at: datetime | None
    recycles: int
    last_recycled_at: datetime | None
    engaged_at: datetime | None
    definition_version: str | None
    created_at: datetime
    updated_at: datetime
    marketing_dirty: bool = False
    sales_dirty: bool = False
    handoff_sent_at: datetime | None = None
    """A handoff was sent to sales then and not recorded (crmbridge stopped in between)."""


@dataclass(frozen=True, slots=True)
class LeadUpsert:
    """One lead's snapshot from its source system, for :meth:`Store.upsert_leads`.

    ``columns`` sets more lead columns (stage, score …) under the same guard.
    """

    email: str
    fields: Mapping[str, Any]
    source: str
    source_modified_at: datetime
    pipeline: str = "default"
    columns: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A lead's record in one system and what crmbridge last wrote to it."""

    lead_id: int
    system: str
    native_id: str
    native_modified_at: datetime | None
    observed: Mapping[str, Any] | None
    observed_at: datetime | None
    written_at: datetime | None
    written_modified_at: datetime | None
    written: Mapping[str, Any] | None
    deleted_at: datetime | None
    merged_into: str | None


def _row_lead(row: Any) -> LeadRow:
    return LeadRow(
        id=row.id,
        pipeline=row.pipeline,
        email=row.email,
        crmbridge_id=row.crmbridge_id,
        fields=row.fields or {},
        stage=row.stage,
        score=row.score,
        fit=row.fit,
        engagement=row.engagement,
        why=row.why,
        source=row.source,
        source_modified_at=row.source_modified_at,
        recycles=row.recycles or 0,
        last_recycled_at=row.last_recycled_at,
        engaged_at=row.engaged_at,
        definition_version=row.definition_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        marketing_dirty=bool(row.marketing_dirty),
        sales_dirty=bool(row.sales_dirty),
        handoff_sent_at=getattr(row, "handoff_sent_at", None),
    )


def _row_link(row: Any) -> LinkRow:
    return LinkRow(
        lead_id=row.lead_id,
        system=row.system,
        native_id=row.native_id,
        native_modified_at=row.native_modified_at,
        observed=row.observed,
        observed_at=row.observed_at,
        written_at=row.written_at,
        written_modified_at=row.written_modified_at,
        written=row.written,
        deleted_at=row.deleted_at,
        merged_into=row.merged_into,
    )


class Store(LifecycleQueries):
    """crmbridge's state in a SQL database. Create with :func:`open_store`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def close(self) -> None:
        self.engine.dispose()

    # -- leads -------------------------------------------------------------------------------

    def upsert_leads(
        self, conn: Connection, snapshots: Sequence[LeadUpsert], now: datetime
    ) -> dict[str, tuple[int, bool]]:
        """Insert or update leads from their source's snapshots, in one statement.

        The update is guarded: a snapshot older than the one already stored (by the source's
        modification time) changes nothing, not even the columns it carries. Returns
        email → (lead id, applied); ``applied`` is False for a snapshot the guard turned away.
        All snapshots must belong to one pipeline.
        """
        if not snapshots:
            return {}
        pipeline = snapshots[0].pipeline
        extra = sorted({k for s in snapshots for k in (s.columns or {})})
        rows = [
            {
                "pipeline": s.pipeline,
                "email": s.email,
                "crmbridge_id": crmbridge_id_for(s.email),
                "fields": jsonable(s.fields),
                "source": s.source,
                "source_modified_at": s.source_modified_at,
                "recycles": 0,
                "marketing_dirty": False,
                "sales_dirty": False,
                "created_at": now,
                "updated_at": now,
                **{k: (s.columns or {}).get(k, _COLUMN_DEFAULTS.get(k)) for k in extra},
            }
            for s in snapshots
        ]
        stmt = self._insert(t.leads)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.leads.c.pipeline, t.leads.c.email],
            set_={
                "fields": excluded.fields,
                "source": excluded.source,
                "source_modified_at": excluded.source_modified_at,
                "updated_at": excluded.updated_at,
                **{k: getattr(excluded, k) for k in extra},
            },
            where=or_(
                t.leads.c.source_modified_at.is_(None),
                excluded.source_modified_at >= t.leads.c.source_modified_at,
            ),
        ).returning(t.leads.c.id, t.leads.c.email)
        applied = {r.email: r.id for r in conn.execute(stmt, rows)}
        found = dict(applied)
        missing = [s.email for s in snapshots if s.email not in applied]
        for chunk in chunks(missing, 500):
            query = select(t.leads.c.id, t.leads.c.email).where(
                t.leads.c.pipeline == pipeline, t.leads.c.email.in_(chunk)
            )
            for r in conn.execute(query):
                found[r.email] = r.id
        return {email: (lead_id, email in applied) for email, lead_id in found.items()}

    def leads_by_email(
        self, conn: Connection, emails: Iterable[str], pipeline: str = "default"
    ) -> dict[str, LeadRow]:
        out: dict[str, LeadRow] = {}
        for chunk in chunks(list(set(emails)), 500):
            query = select(t.leads).where(
                t.leads.c.pipeline == pipeline, t.leads.c.email.in_(chunk)
            )
            for row in conn.execute(query):
                out[row.email] = _row_lead(row)
        return out

    def leads_by_id(self, conn: Connection, ids: Iterable[int]) -> dict[int, LeadRow]:
        out: dict[int, LeadRow] = {}
        for chunk in chunks(list(set(ids)), 500):
            for row in conn.execute(select(t.leads).where(t.leads.c.id.in_(chunk))):
                out[row.id] = _row_lead(row)
        return out

    def leads_by_crmbridge_id(
        self, conn: Connection, ids: Iterable[str], pipeline: str = "default"
    ) -> dict[str, LeadRow]:
        out: dict[str, LeadRow] = {}
        for chunk in chunks(list(set(ids)), 500):
            query = select(t.leads).where(
                t.leads.c.pipeline == pipeline, t.leads.c.crmbridge_id.in_(chunk)
            )
            for row in conn.execute(query):
                out[row.crmbridge_id] = _row_lead(row)
        return out

    def lead(self, email: str, pipeline: str = "default") -> LeadRow | None:
        with self.engine.connect() as conn:
            return self.leads_by_email(conn, [email], pipeline).get(email)

    def update_lead(self, conn: Connection, lead_id: int, now: datetime, **values: Any) -> None:
        """Set columns of one lead (stage, score, recycles …)."""
        conn.execute(
            update(t.leads).where(t.leads.c.id == lead_id).values(updated_at=now, **values)
        )

    def update_leads(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime
    ) -> None:
        """Set columns of many leads in one statement; every row has ``id`` and the same keys."""
        if not rows:
            return
        keys = [k for k in rows[0] if k != "id"]
        stmt = (
            update(t.leads)
            .where(t.leads.c.id == bindparam("_id"))
            .values(updated_at=now, **{k: bindparam(f"v_{k}") for k in keys})
        )
        conn.execute(stmt, [{"_id": r["id"], **{f"v_{k}": r[k] for k in keys}} for r in rows])

    def lead_count(self, pipeline: str | None = None) -> int:
        query = select(func.count()).select_from(t.leads)
        if pipeline is not None:
            query = query.where(t.leads.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # -- links -------------------------------------------------------------------------------

    def links_by_native(
        self, conn: Connection, system: str, native_ids: Iterable[str], pipeline: str = "default"
    ) -> dict[str, LinkRow]:
        out: dict[str, LinkRow] = {}
        for chunk in chunks(list(set(native_ids)), 500):
            query = select(t.links).where(
                t.links.c.pipeline == pipeline,
                t.links.c.system == system,
                t.links.c.native_id.in_(chunk),
            )
            for row in conn.execute(query):
                out[row.native_id] = _row_link(row)
        return out

    def links_of(self, conn: Connection, lead_ids: Iterable[int]) -> dict[int, list[LinkRow]]:
        out: dict[int, list[LinkRow]] = {}
        for chunk in chunks(list(set(lead_ids)), 500):
            query = select(t.links).where(t.links.c.lead_id.in_(chunk)).order_by(t.links.c.id)
            for row in conn.execute(query):
                out.setdefault(row.lead_id, []).append(_row_link(row))
        return out

    def upsert_links(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or update links by (pipeline, system, native_id); all rows have the same keys.

        ``native_modified_at`` only moves forward; the other given columns are set.
        """
        if not rows:
            return
        full = [{"pipeline": "default", **r} for r in rows]
        for row in full:
            for key in ("observed", "written"):
                if row.get(key) is not None:
                    row[key] = jsonable(row[key])
        stmt = self._insert(t.links)
        keys = set(full[0]) - {"pipeline", "system", "native_id"}
        set_: dict[str, Any] = {k: getattr(stmt.excluded, k) for k in keys}
        if "native_modified_at" in keys:
            set_["native_modified_at"] = func.coalesce(
                _greatest(
                    self.dialect, t.links.c.native_modified_at, stmt.excluded.native_modified_at
                ),
                stmt.excluded.native_modified_at,
            )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.links.c.pipeline, t.links.c.system, t.links.c.native_id],
                set_=set_,
            ),
            full,
        )

    # -- journey -----------------------------------------------------------------------------

    def append_events(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append journey events (each row: lead_id, at, kind, summary, and optional columns)."""
        if rows:
            full = [
                {
                    "system": None,
                    "actor": None,
                    "data": None,
                    "run_id": None,
                    "definition_version": None,
                    "definition_hash": None,
                    **r,
                }
                for r in rows
            ]
            conn.execute(insert(t.events), full)

    def journey(self, lead_id: int) -> list[JourneyEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.events).where(t.events.c.lead_id == lead_id).order_by(t.events.c.id)
            )
            return [
                JourneyEvent(
                    id=r.id,
                    lead_id=r.lead_id,
                    at=r.at,
                    kind=r.kind,
                    summary=r.summary,
                    system=r.system,
                    actor=r.actor,
                    data=r.data or {},
                    run_id=r.run_id,
                    definition_version=r.definition_version,
                    definition_hash=r.definition_hash,
                )
                for r in rows
            ]

    # -- leases and cursors ------------------------------------------------------------------

    def acquire_lease(self, pipeline: str, owner: str, ttl: timedelta, now: datetime) -> LeaseInfo:
        """Take or renew the lease of ``pipeline`` for ``owner``.

        A free or expired lease is taken with a new fence (the counter goes up, so writes made
        under an older fence are refused); a lease held by ``owner`` is renewed with its fence.
        Raises :class:`PipelineHeld` naming the holder when another live owner has it.
        """
        expires = now + ttl
        try:
            return self._acquire_lease(pipeline, owner, expires, now)
        except IntegrityError:
            # Another process created this pipeline's lease between our read and our insert.
            return self._acquire_lease(pipeline, owner, expires, now)

    def _acquire_lease(
        self, pipeline: str, owner: str, expires: datetime, now: datetime
    ) -> LeaseInfo:
        with self.transaction() as conn:
            # FOR UPDATE (PostgreSQL): two processes that both see an expired lease take it one
            # after the other, so only one of them gets the new fence.
            row = conn.execute(
                select(t.leases).where(t.leases.c.pipeline == pipeline).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    insert(t.leases).values(
                        pipeline=pipeline, owner=owner, acquired_at=now, expires_at=expires, fence=1
                    )
                )
                return LeaseInfo(pipeline, owner, now, expires, 1)
            if row.owner == owner and row.expires_at > now:
                conn.execute(
                    update(t.leases)
                    .where(t.leases.c.pipeline == pipeline)
                    .values(expires_at=expires)
                )
                return LeaseInfo(pipeline, owner, row.acquired_at, expires, row.fence)
            if row.expires_at > now:
                raise PipelineHeld(
                    f"pipeline {pipeline!r} is held by {row.owner} until "
                    f"{row.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                    hint="another crmbridge process runs it; stop that one or wait for its lease "
                    "to expire",
                )
            fence = row.fence + 1
            conn.execute(
                update(t.leases)
                .where(t.leases.c.pipeline == pipeline)
                .values(owner=owner, acquired_at=now, expires_at=expires, fence=fence)
            )
            return LeaseInfo(pipeline, owner, now, expires, fence)

    def release_lease(self, pipeline: str, owner: str, now: datetime | None = None) -> None:
        """Give the lease up: it expires now, and keeps its fence.

        The row stays so the fence only ever grows: the next holder takes fence + 1, and the
        cursors written under this one (guarded by ``fence <= new fence``) still move.
        """
        expired = now or datetime(1970, 1, 1, tzinfo=UTC)
        with self.transaction() as conn:
            conn.execute(
                update(t.leases)
                .where(t.leases.c.pipeline == pipeline, t.leases.c.owner == owner)
                .values(expires_at=expired)
            )

    def lease(self, pipeline: str) -> LeaseInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.leases).where(t.leases.c.pipeline == pipeline)).first()
        if row is None:
            return None
        return LeaseInfo(row.pipeline, row.owner, row.acquired_at, row.expires_at, row.fence)

    def cursor(self, pipeline: str, system: str, stream: str) -> Mapping[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.cursors.c.position).where(
                    t.cursors.c.pipeline == pipeline,
                    t.cursors.c.system == system,
                    t.cursors.c.stream == stream,
                )
            ).first()
        return dict(row.position) if row is not None else {}

    def commit_cursor(
        self,
        conn: Connection,
        *,
        pipeline: str,
        system: str,
        stream: str,
        position: Mapping[str, Any],
        owner: str,
        fence: int,
        now: datetime,
        lease: str | None = None,
    ) -> None:
        """Write a cursor, only if ``owner`` still holds the pipeline's lease under ``fence``.

        The check and the write are one transaction (the caller's), so a lease taken over in
        between cannot slip through: the write raises :class:`PipelineHeld` and the transaction,
        with the work the cursor covered, rolls back. ``lease`` names the lease that guards the
        cursor when it is not the pipeline's own (a chunk of a backfill split across workers holds
        a lease of its own, so chunks and cycles of one pipeline run side by side).
        """
        key = lease or pipeline
        # FOR SHARE (PostgreSQL): a takeover's UPDATE of the lease waits until this transaction
        # ends, so the check and the write cannot be split by one. SQLite's BEGIN IMMEDIATE
        # already serializes every writer.
        held = conn.execute(
            select(t.leases.c.owner, t.leases.c.fence)
            .where(t.leases.c.pipeline == key)
            .with_for_update(read=True)
        ).first()
        if held is None or held.owner != owner or held.fence != fence:
            holder = f"{held.owner} (fence {held.fence})" if held else "nobody"
            which = "the lease" if key == pipeline else f"the lease {key!r}"
            raise PipelineHeld(
                f"pipeline {pipeline!r}: cursor {system}/{stream} not written; {which} is now "
                f"held by {holder}, not {owner} (fence {fence})",
                hint="this process lost its lease; it stops without moving the cursor",
            )
        stmt = self._insert(t.cursors).values(
            pipeline=pipeline,
            system=system,
            stream=stream,
            position=dict(position),
            fence=fence,
            updated_at=now,
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.cursors.c.pipeline, t.cursors.c.system, t.cursors.c.stream],
                set_={"position": stmt.excluded.position, "fence": fence, "updated_at": now},
                where=t.cursors.c.fence <= fence,
            )
        )

    # -- quarantine --------------------------------------------------------------------------

    def quarantine(
        self,
        conn: Connection,
        *,
        pipeline: str,
        system: str,
        native_id: str,
        stage: str,
        error: str,
        raw: Mapping[str, Any],
        now: datetime,
        email: str | None = None,
        field: str | None = None,
        rule: str | None = None,
    ) -> int:
        """Quarantine a record (or count another attempt of one already there); its id."""
        stmt = self._insert(t.quarantine).values(
            pipeline=pipeline,
            system=system,
            native_id=native_id,
            stage=stage,
            email=email,
            field=field,
            rule=rule,
            error=error,
            raw=jsonable(raw),
            attempts=1,
            status="open",
            first_seen=now,
            last_seen=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                t.quarantine.c.pipeline,
                t.quarantine.c.system,
                t.quarantine.c.native_id,
                t.quarantine.c.stage,
            ],
            set_={
                "email": stmt.excluded.email,
                "field": stmt.excluded.field,
                "rule": stmt.excluded.rule,
                "error": stmt.excluded.error,
                "raw": stmt.excluded.raw,
                "attempts": t.quarantine.c.attempts + 1,
                "status": "open",
                "last_seen": now,
            },
        ).returning(t.quarantine.c.id)
        return int(conn.execute(stmt).scalar_one())

    def quarantine_many(
        self,
        conn: Connection,
        pipeline: str,
        rows: Sequence[Mapping[str, Any]],
        now: datetime,
    ) -> list[int]:
        """Quarantine many records in one statement (see :meth:`quarantine`); their ids.

        A record met twice in ``rows`` is kept once, with the last error. A row may carry a
        ``status``: ``"retry"`` for a record crmbridge tries again by itself at the next cycle
        (a transient failure), else ``"open"`` (waiting for a person).
        """
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in rows:
            key = (row["system"], row["native_id"], row["stage"])
            latest[key] = {
                "pipeline": pipeline,
                "email": None,
                "field": None,
                "rule": None,
                **row,
                "raw": jsonable(row.get("raw") or {}),
                "attempts": 1,
                "status": row.get("status") or "open",
                "first_seen": now,
                "last_seen": now,
            }
        stmt = self._insert(t.quarantine)
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                t.quarantine.c.pipeline,
                t.quarantine.c.system,
                t.quarantine.c.native_id,
                t.quarantine.c.stage,
            ],
            set_={
                "email": stmt.excluded.email,
                "field": stmt.excluded.field,
                "rule": stmt.excluded.rule,
                "error": stmt.excluded.error,
                "raw": stmt.excluded.raw,
                "attempts": t.quarantine.c.attempts + 1,
                "status": stmt.excluded.status,
                "last_seen": now,
            },
        ).returning(t.quarantine.c.id)
        return [r.id for r in conn.execute(stmt, list(latest.values()))]

    def resolve_quarantine(
        self, conn: Connection, *, pipeline: str, system: str, native_ids: Iterable[str], stage: str
    ) -> int:
        """Mark entries resolved once their records went through; how many were open."""
        ids = list(native_ids)
        total = 0
        for chunk in chunks(ids, 500):
            total += conn.execute(
                update(t.quarantine)
                .where(
                    t.quarantine.c.pipeline == pipeline,
                    t.quarantine.c.system == system,
                    t.quarantine.c.stage == stage,
                    t.quarantine.c.native_id.in_(chunk),
                    t.quarantine.c.status.in_(("open", "retry")),
                )
                .values(status="resolved")
            ).rowcount
        return total

    def quarantined(
        self, *, status: str | None = "open", pipeline: str | None = None, limit: int = 1000
    ) -> list[QuarantinedRecord]:
        query = select(t.quarantine).order_by(t.quarantine.c.id).limit(limit)
        if status is not None:
            query = query.where(t.quarantine.c.status == status)
        if pipeline is not None:
            query = query.where(t.quarantine.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [_row_quarantine(r) for r in conn.execute(query)]

    def quarantined_in(self, conn: Connection, entry_id: int) -> QuarantinedRecord:
        """A quarantine entry read inside the caller's transaction."""
        row = conn.execute(select(t.quarantine).where(t.quarantine.c.id == entry_id)).one()
        return _row_quarantine(row)

    def quarantined_one(self, entry_id: int) -> QuarantinedRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.quarantine).where(t.quarantine.c.id == entry_id)).first()
        return _row_quarantine(row) if row is not None else None

    def set_quarantine_status(self, entry_ids: Iterable[int], status: str) -> int:
        with self.transaction() as conn:
            return conn.execute(
                update(t.quarantine)
                .where(t.quarantine.c.id.in_(list(entry_ids)))
                .values(status=status)
            ).rowcount

    # -- runs --------------------------------------------------------------------------------

    def start_run(
        self, run_id: str, pipeline: str, kind: str, now: datetime, *, dry_run: bool, version: str
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                insert(t.runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    kind=kind,
                    dry_run=dry_run,
                    started_at=now,
                    status="running",
                    definition_version=version,
                )
            )

    def finish_run(
        self,
        run_id: str,
        now: datetime,
        *,
        status: str,
        counts: Mapping[str, Any],
        error: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        stmt = (
            update(t.runs)
            .where(t.runs.c.id == run_id)
            .values(finished_at=now, status=status, counts=dict(counts), error=error)
        )
        if conn is not None:
            conn.execute(stmt)
            return
        with self.transaction() as c:
            c.execute(stmt)

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[RunRecord]:
        query = select(t.runs).order_by(t.runs.c.started_at.desc()).limit(limit)
        if pipeline is not None:
            query = query.where(t.runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [
                RunRecord(
                    id=r.id,
                    pipeline=r.pipeline,
                    kind=r.kind,
                    dry_run=r.dry_run,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    status=r.status,
                    counts=r.counts or {},
                    error=r.error,
                )
                for r in conn.execute(query)
            ]


def _row_quarantine(r: Any) -> QuarantinedRecord:
    return QuarantinedRecord(
        id=r.id,
        pipeline=r.pipeline,
        system=r.system,
        native_id=r.native_id,
        stage=r.stage,
        email=r.email,
        field=r.field,
        rule=r.rule,
        error=r.error,
        raw=r.raw or {},
        attempts=r.attempts,
        status=r.status,
        first_seen=r.first_seen,
        last_seen=r.last_seen,
    )


def _greatest(dialect: str, a: Any, b: Any) -> Any:
    """The later of two timestamps, NULL-safe (SQLite's MAX() of two args is its GREATEST)."""
    if dialect == "postgresql":
        return func.greatest(a, b)
    return func.max(func.coalesce(a, b), func.coalesce(b, a))


def open_store(url: str, *, migrate: bool = True) -> Store:
    """A store on ``url``, its schema brought up to date first unless ``migrate`` is False."""
    engine = create_store_engine(url)
    if migrate:
        from crmbridge.store.migrate import upgrade

        upgrade(engine)
    return Store(engine)


def utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


__all__ = ["LeadRow", "LeadUpsert", "LinkRow", "Store", "crmbridge_id_for", "open_store"]
