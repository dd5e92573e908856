"""Store queries of the lead lifecycle: handoffs, outcomes, and the dirty flags that make the store
a durable outbox (a change marketing or sales must be told of survives a crash until it is told).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, exists, func, insert, select, true, update

from crmbridge.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy import Engine


@dataclass(frozen=True, slots=True)
class HandoffRow:
    """A handoff as the store holds it."""

    id: int
    lead_id: int
    pipeline: str
    sales_system: str
    native_id: str | None
    owner: str | None
    route_reason: str | None
    handed_off_at: datetime
    sla_due_at: datetime
    accepted_at: datetime | None
    outcome: str | None
    outcome_reason: str | None
    outcome_at: datetime | None
    sla_breached_at: datetime | None
    breach_flagged_at: datetime | None
    closed: bool
    definition_version: str | None


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """A verdict sales gave, as the store holds it."""

    id: int
    key: str
    lead_id: int
    handoff_id: int | None
    kind: str
    reason: str | None
    native_value: str | None
    system: str
    native_id: str
    occurred_at: datetime
    amount: float | None
    owner: str | None
    stage: str | None
    recorded_at: datetime
    written_back_at: datetime | None


def row_handoff(r: Any) -> HandoffRow:
    return HandoffRow(
        id=r.id,
        lead_id=r.lead_id,
        pipeline=r.pipeline,
        sales_system=r.sales_system,
        native_id=r.native_id,
        owner=r.owner,
        route_reason=r.route_reason,
        handed_off_at=r.handed_off_at,
        sla_due_at=r.sla_due_at,
        accepted_at=r.accepted_at,
        outcome=r.outcome,
        outcome_reason=r.outcome_reason,
        outcome_at=r.outcome_at,
        sla_breached_at=r.sla_breached_at,
        breach_flagged_at=r.breach_flagged_at,
        closed=bool(r.closed),
        definition_version=r.definition_version,
    )


def row_outcome(r: Any) -> OutcomeRow:
    return OutcomeRow(
        id=r.id,
        key=r.key,
        lead_id=r.lead_id,
        handoff_id=r.handoff_id,
        kind=r.kind,
        reason=r.reason,
        native_value=r.native_value,
        system=r.system,
        native_id=r.native_id,
        occurred_at=r.occurred_at,
        amount=r.amount,
        owner=r.owner,
        stage=r.stage,
        recorded_at=r.recorded_at,
        written_back_at=r.written_back_at,
    )


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """``value`` made storable as JSON (datetimes as ISO text, unknown objects as text).

    A dict of plain values (the common case: a lead's fields) is returned as it is, uncopied.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        if all(type(v) in _PLAIN for v in value.values()) and all(type(k) is str for k in value):
            return value
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


class LifecycleQueries:
    """Handoffs, outcomes and dirty flags; mixed into :class:`crmbridge.store.Store`."""

    engine: Engine
    dialect: str

    def _insert(self, table: Any) -> Any:  # provided by Store
        raise NotImplementedError

    # -- handoffs ----------------------------------------------------------------------------

    def pending_handoffs(
        self,
        conn: Connection,
        pipeline: str,
        stage: str,
        limit: int,
        after_id: int = 0,
        among: Collection[int] | None = None,
    ) -> list[int]:
        """Ids of leads at the handoff ``stage`` with no open handoff: the handoff queue, in id
        order from ``after_id``; with ``among``, only those of these leads (looked up by id, so
        the cost follows their number, not the store's).

        A lead whose handoff the sales system refused waits in quarantine instead, until a
        person retries it (``crmbridge quarantine retry``); one it could not take just now (a
        transient failure, quarantined with status ``retry``) is in the queue again.
        """
        if among is not None:
            wanted = sorted(i for i in among if i > after_id)
            found: list[int] = []
            for chunk in chunks(wanted, 500):
                # The chunk's id range bounds the scan: without statistics SQLite reads the
                # (pipeline, stage) index in id order rather than look the ids up, so an open
                # range would read every lead after the first one asked for.
                found += self._pending(conn, pipeline, stage, chunk[0] - 1, limit, chunk)
                if len(found) >= limit:
                    break
            return found[:limit]
        return self._pending(conn, pipeline, stage, after_id, limit, None)

    def _pending(
        self,
        conn: Connection,
        pipeline: str,
        stage: str,
        after_id: int,
        limit: int,
        ids: Sequence[int] | None,
    ) -> list[int]:
        open_handoff = exists().where(
            and_(t.handoffs.c.lead_id == t.leads.c.id, t.handoffs.c.closed.is_(False))
        )
        refused = exists().where(
            and_(
                t.quarantine.c.pipeline == pipeline,
                t.quarantine.c.stage == "handoff",
                t.quarantine.c.native_id == t.leads.c.crmbridge_id,
                t.quarantine.c.status == "open",
            )
        )
        query = (
            select(t.leads.c.id)
            .where(
                t.leads.c.pipeline == pipeline,
                t.leads.c.stage == stage,
                t.leads.c.id > after_id,
                and_(t.leads.c.id <= ids[-1], t.leads.c.id.in_(ids)) if ids else true(),
                ~open_handoff,
                ~refused,
            )
            .order_by(t.leads.c.id)
            .limit(limit)
        )
        return [r.id for r in conn.execute(query)]

    def open_handoffs(self, conn: Connection, lead_ids: Iterable[int]) -> dict[int, HandoffRow]:
        """The open (not closed) handoff of each lead, if any."""
        out: dict[int, HandoffRow] = {}
        for chunk in chunks(list(set(lead_ids)), 500):
            query = select(t.handoffs).where(
                t.handoffs.c.lead_id.in_(chunk), t.handoffs.c.closed.is_(False)
            )
            for r in conn.execute(query):
                out[r.lead_id] = row_handoff(r)
        return out

    def latest_handoffs(self, conn: Connection, lead_ids: Iterable[int]) -> dict[int, HandoffRow]:
        """Each lead's most recent handoff, open or closed."""
        out: dict[int, HandoffRow] = {}
        for chunk in chunks(list(set(lead_ids)), 500):
            query = (
                select(t.handoffs)
                .where(t.handoffs.c.lead_id.in_(chunk))
                .order_by(t.handoffs.c.lead_id, t.handoffs.c.id)
            )
            for r in conn.execute(query):
                out[r.lead_id] = row_handoff(r)
        return out

    def handoffs_of(self, lead_id: int) -> list[HandoffRow]:
        with self.engine.connect() as conn:
            query = (
                select(t.handoffs).where(t.handoffs.c.lead_id == lead_id).order_by(t.handoffs.c.id)
            )
            return [row_handoff(r) for r in conn.execute(query)]

    def insert_handoffs(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        if not rows:
            return []
        stmt = insert(t.handoffs).returning(t.handoffs.c.id, sort_by_parameter_order=True)
        return [r.id for r in conn.execute(stmt, [{"closed": False, **r} for r in rows])]

    def update_handoff(self, conn: Connection, handoff_id: int, **values: Any) -> None:
        conn.execute(update(t.handoffs).where(t.handoffs.c.id == handoff_id).values(**values))

    def past_due_handoffs(self, conn: Connection, pipeline: str, now: datetime) -> list[HandoffRow]:
        """Open, unanswered handoffs past their SLA whose breach is not recorded yet."""
        query = (
            select(t.handoffs)
            .where(
                t.handoffs.c.pipeline == pipeline,
                t.handoffs.c.closed.is_(False),
                t.handoffs.c.outcome.is_(None),
                t.handoffs.c.sla_breached_at.is_(None),
                t.handoffs.c.sla_due_at <= now,
            )
            .order_by(t.handoffs.c.sla_due_at)
        )
        return [row_handoff(r) for r in conn.execute(query)]

    # -- outcomes ----------------------------------------------------------------------------

    def record_outcome(self, conn: Connection, row: Mapping[str, Any]) -> int | None:
        """Record a verdict once: its id, or ``None`` when its key was recorded before."""
        stmt = (
            self._insert(t.outcomes)
            .values(**row)
            .on_conflict_do_nothing(index_elements=[t.outcomes.c.pipeline, t.outcomes.c.key])
            .returning(t.outcomes.c.id)
        )
        found = conn.execute(stmt).first()
        return None if found is None else int(found.id)

    def outcomes_of(self, conn: Connection, lead_ids: Iterable[int]) -> dict[int, list[OutcomeRow]]:
        out: dict[int, list[OutcomeRow]] = {}
        for chunk in chunks(list(set(lead_ids)), 500):
            query = (
                select(t.outcomes)
                .where(t.outcomes.c.lead_id.in_(chunk))
                .order_by(t.outcomes.c.occurred_at, t.outcomes.c.id)
            )
            for r in conn.execute(query):
                out.setdefault(r.lead_id, []).append(row_outcome(r))
        return out

    def mark_outcomes_written(
        self, conn: Connection, lead_ids: Iterable[int], now: datetime
    ) -> int:
        total = 0
        for chunk in chunks(list(set(lead_ids)), 500):
            total += conn.execute(
                update(t.outcomes)
                .where(t.outcomes.c.lead_id.in_(chunk), t.outcomes.c.written_back_at.is_(None))
                .values(written_back_at=now)
            ).rowcount
        return total

    # -- the outbox: dirty flags ---------------------------------------------------------------

    def dirty_leads(
        self, conn: Connection, pipeline: str, side: str, limit: int, after_id: int = 0
    ) -> list[int]:
        """Ids of leads whose ``side`` (marketing or sales) must be told of a change, in id order
        from ``after_id``."""
        column = t.leads.c.marketing_dirty if side == "marketing" else t.leads.c.sales_dirty
        query = (
            select(t.leads.c.id)
            .where(t.leads.c.pipeline == pipeline, column.is_(True), t.leads.c.id > after_id)
            .order_by(t.leads.c.id)
            .limit(limit)
        )
        return [r.id for r in conn.execute(query)]

    def set_dirty(self, conn: Connection, lead_ids: Iterable[int], side: str, value: bool) -> None:
        name = "marketing_dirty" if side == "marketing" else "sales_dirty"
        for chunk in chunks(list(set(lead_ids)), 500):
            conn.execute(update(t.leads).where(t.leads.c.id.in_(chunk)).values({name: value}))

    def set_handoff_sent(
        self, conn: Connection, lead_ids: Iterable[int], at: datetime | None
    ) -> None:
        """Mark leads whose handoff is about to be sent (``at``), or recorded (``None``)."""
        for chunk in chunks(list(set(lead_ids)), 500):
            conn.execute(update(t.leads).where(t.leads.c.id.in_(chunk)).values(handoff_sent_at=at))

    def last_event_summaries(
        self, conn: Connection, lead_ids: Iterable[int], kind: str
    ) -> dict[int, str]:
        """Each lead's latest journey summary of ``kind`` (to not repeat an unchanged note)."""
        out: dict[int, str] = {}
        for chunk in chunks(list(set(lead_ids)), 500):
            latest = (
                select(func.max(t.events.c.id))
                .where(t.events.c.lead_id.in_(chunk), t.events.c.kind == kind)
                .group_by(t.events.c.lead_id)
            )
            query = select(t.events.c.lead_id, t.events.c.summary).where(t.events.c.id.in_(latest))
            for r in conn.execute(query):
                out[r.lead_id] = r.summary
        return out

    # -- counts for status and reports ---------------------------------------------------------

    def count_where(self, table: Any, *conditions: Any) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(table).where(*conditions)
            return int(conn.execute(query).scalar_one())
