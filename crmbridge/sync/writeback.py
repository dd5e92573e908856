"""Step 6: tell each side what changed — the closed loop.

Marketing is told of handoffs, sales' verdicts and SLA breaches (stage, status, crmbridge's
fields); sales is told of changes to the fields marketing owns, the score, and SLA breaches.
The queue is the leads' dirty flags, so nothing is lost across a crash: a flag is cleared only
after the write it asked for succeeded, or was quarantined for good (a record the system could not
write just now, a :class:`~crmbridge.errors.TransientRecordError`, stays dirty and is written
again at the next cycle).

Courtesy: only fields the other side does not own are written, only what differs from what
crmbridge last wrote, and never a field a person changed after crmbridge last wrote it — that is
recorded in the journey as a conflict instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crmbridge.connector import Connector, LeadWrite, WriteResult
from crmbridge.errors import TransientRecordError
from crmbridge.lead import OutcomeKind
from crmbridge.store.lifecycle import HandoffRow, OutcomeRow, jsonable
from crmbridge.store.store import LeadRow, LinkRow
from crmbridge.sync.cycle_context import Cycle
from crmbridge.sync.handoff import link_in
from crmbridge.sync.journal import Journal
from crmbridge.sync.links import conflicts, merged_written

CHUNK = 1000

log = logging.getLogger("crmbridge.sync")


def writeback_step(cy: Cycle) -> None:
    """Marketing first (the loop closes there), then sales."""
    _drain(cy, "marketing", cy.marketing, _marketing_write, cy.marketing.write_outcomes)
    _drain(cy, "sales", cy.sales, _sales_write, cy.sales.push_leads)


Builder = Callable[
    [Cycle, LeadRow, LinkRow, HandoffRow | None, Sequence[OutcomeRow], Journal, datetime],
    LeadWrite | None,
]


@dataclass
class _Built:
    """One chunk of a side's queue, read and turned into writes (its own transaction)."""

    writes: list[tuple[LeadRow, LinkRow, LeadWrite]]
    now: datetime
    last_id: int
    """The chunk's last lead id: the next chunk starts after it."""


def _drain(
    cy: Cycle,
    side: str,
    connector: Connector,
    build: Builder,
    send: Callable[[Sequence[LeadWrite]], list[WriteResult]],
) -> None:
    """Write a side's queue a chunk at a time, pipelined: while one chunk's writes are in
    flight, the next chunk is read and built, so the calls' latency and the engine's own work
    overlap. Each chunk is recorded (its flags cleared) only after its writes answered."""
    system = connector.system_name()
    after = 0
    in_flight: tuple[_Built, Future[list[WriteResult]]] | None = None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{side}-writeback")
    try:
        while True:
            cy.check_stop()
            built = _build_chunk(cy, side, system, build, after)
            if in_flight is not None:
                sent, answered = in_flight
                in_flight = None
                _record_sent(cy, side, system, sent, answered.result())
            if built is None:
                return
            after = built.last_id
            if not built.writes:
                continue
            cy.quota.check(connector)
            writes = [w for _, _, w in built.writes]
            if cy.dry_run:
                _record_sent(cy, side, system, built, _send(cy, system, send, writes))
            else:
                in_flight = (built, pool.submit(_send, cy, system, send, writes))
    finally:
        if in_flight is not None:
            # Stopped or failed while a chunk was in flight: wait for its answers and record
            # them, so a write that reached the system is not sent again for nothing.
            sent, answered = in_flight
            try:
                _record_sent(cy, side, system, sent, answered.result())
            except Exception as exc:  # noqa: BLE001 - the first failure is the one raised
                log.warning("%s write-back: the chunk in flight was not recorded: %s", side, exc)
        pool.shutdown(wait=True)


def _build_chunk(cy: Cycle, side: str, system: str, build: Builder, after: int) -> _Built | None:
    """The next chunk of the side's queue as writes; None when the queue is empty."""
    now = cy.now()
    with cy.tx() as conn:
        # From after the last chunk built: the one in flight stays flagged until it is recorded.
        ids = cy.store.dirty_leads(conn, cy.pipeline, side, CHUNK, after_id=after)
        if not ids:
            return None
        rows = cy.store.leads_by_id(conn, ids)
        links = cy.store.links_of(conn, ids)
        handoffs = cy.store.latest_handoffs(conn, ids)
        outcomes = cy.store.outcomes_of(conn, ids)
        journal = cy.journal()
        writes: list[tuple[LeadRow, LinkRow, LeadWrite]] = []
        nothing: list[int] = []
        for lead_id in ids:
            row = rows[lead_id]
            link = link_in(links.get(lead_id, []), system)
            write = (
                build(
                    cy,
                    row,
                    link,
                    handoffs.get(lead_id),
                    outcomes.get(lead_id, []),
                    journal,
                    now,
                )
                if link is not None
                else None
            )
            if write is None:
                nothing.append(lead_id)
            else:
                assert link is not None
                writes.append((row, link, write))
        cy.store.set_dirty(conn, nothing, side, False)
        journal.flush(cy.store, conn)
    return _Built(writes, now, ids[-1])


def _record_sent(
    cy: Cycle, side: str, system: str, built: _Built, results: list[WriteResult]
) -> None:
    with cy.tx() as conn:
        journal = cy.journal()
        _record(cy, conn, side, system, built.writes, results, journal, built.now)
        journal.flush(cy.store, conn)


def _send(
    cy: Cycle,
    system: str,
    send: Callable[[Sequence[LeadWrite]], list[WriteResult]],
    writes: Sequence[LeadWrite],
) -> list[WriteResult]:
    if cy.dry_run:
        for w in writes:
            changes = {**w.fields, **w.annotations}
            if w.stage:
                changes["stage"] = w.stage
            if w.outcome:
                changes["outcome"] = str(w.outcome)
            cy.plan.add(system, "update", w.email, w.native_id, changes)
        return [
            WriteResult(w.key, ok=True, native_id=w.native_id, skipped="dry run") for w in writes
        ]
    results = send(writes)
    if len(results) != len(writes):
        raise RuntimeError(f"{system} answered {len(results)} results for {len(writes)} writes")
    return results


def _record(
    cy: Cycle,
    conn: Any,
    side: str,
    system: str,
    writes: Sequence[tuple[LeadRow, LinkRow, LeadWrite]],
    results: Sequence[WriteResult],
    journal: Journal,
    now: datetime,
) -> None:
    link_rows = []
    done: list[int] = []
    shown: list[int] = []  # leads whose sales verdicts marketing now shows
    for (row, link, write), result in zip(writes, results, strict=True):
        # A record the system could not write just now stays dirty: the next cycle writes it
        # again, so a lock or a hiccup on one record never leaves that side behind for good.
        if not isinstance(result.error, TransientRecordError):
            done.append(row.id)
        if not result.ok:
            cy.quarantine(
                conn,
                system=system,
                native_id=link.native_id,
                stage=f"{side} update",
                error=f"{system} refused the update of {row.email}: {result.error}",
                raw={"email": row.email, "fields": dict(write.fields), **dict(write.annotations)},
                email=row.email,
                field_name=getattr(result.error, "field", None),
                rule=getattr(result.error, "rule", None) or getattr(result.error, "code", None),
                retry=isinstance(result.error, TransientRecordError),
            )
            continue
        if result.skipped and not cy.dry_run:
            journal.add(row.id, now, "skipped", f"{system}: {result.skipped}", system=system)
            continue
        wrote: dict[str, Any] = dict(write.fields)
        wrote.update({f"@{k}": v for k, v in write.annotations.items()})
        if write.stage:
            wrote["@stage"] = write.stage
        if write.outcome:
            wrote["@outcome"] = str(write.outcome)
        link_rows.append(
            {
                "pipeline": cy.pipeline,
                "lead_id": row.id,
                "system": system,
                "native_id": link.native_id,
                "written": merged_written(link, jsonable(wrote)),
                "written_at": now,
                "written_modified_at": result.modified_at,
            }
        )
        cy.counts.written_back += 1
        journal.add(
            row.id,
            now,
            "written",
            f"written to {system}: " + _describe(write),
            system=system,
            actor="crmbridge",
            data=jsonable(wrote),
        )
        if side == "marketing":
            shown.append(row.id)
    cy.store.mark_outcomes_written(conn, shown, now)  # one statement per 500, not one per lead
    if not cy.dry_run:
        cy.store.upsert_links(conn, link_rows)
    cy.store.resolve_quarantine(
        conn,
        pipeline=cy.pipeline,
        system=system,
        native_ids=[str(r["native_id"]) for r in link_rows],
        stage=f"{side} update",
    )
    cy.store.set_dirty(conn, done, side, False)


def _describe(write: LeadWrite) -> str:
    parts = []
    if write.stage:
        parts.append(f"stage {write.stage}" + (" (moved back)" if write.stage_backwards else ""))
    if write.outcome:
        parts.append(f"outcome {write.outcome}")
    parts += [f"{k}" for k in write.fields]
    parts += [k for k in write.annotations if k not in ("stage", "outcome")]
    return ", ".join(parts) or "nothing"


def _changed(link: LinkRow, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    written = link.written or {}
    return {
        k: v
        for k, v in values.items()
        if f"{prefix}{k}" not in written or written[f"{prefix}{k}"] != jsonable(v)
    }


def _field_changes(link: LinkRow, values: Mapping[str, Any]) -> dict[str, Any]:
    """Fields whose value the system does not hold yet: it differs from what crmbridge last
    wrote there, or (never written) from what the system was last seen to show."""
    written = link.written or {}
    observed = link.observed or {}
    out = {}
    for name, value in values.items():
        stored = jsonable(value)
        if name in written:
            if written[name] == stored:
                continue
        elif observed.get(name) == stored:
            continue
        out[name] = value
    return out


def _fields_to_write(
    cy: Cycle,
    row: LeadRow,
    link: LinkRow,
    system: str,
    journal: Journal,
    now: datetime,
) -> dict[str, Any]:
    mapping = cy.definition.system(system)
    candidates = {
        f: row.fields.get(f) for f in mapping.writable_fields(creating=False) if f in row.fields
    }
    changed = _field_changes(link, candidates)
    for name, (wrote, found) in conflicts(link, changed).items():
        changed.pop(name)
        cy.counts.conflicts += 1
        journal.add(
            row.id,
            now,
            "conflict",
            f"{system} {name} was changed by a person to {found!r} after crmbridge wrote "
            f"{wrote!r}; not overwritten with {row.fields.get(name)!r}",
            system=system,
            actor="crmbridge",
        )
    return changed


def _marketing_write(
    cy: Cycle,
    row: LeadRow,
    link: LinkRow,
    handoff: HandoffRow | None,
    outcomes: Sequence[OutcomeRow],
    journal: Journal,
    now: datetime,
) -> LeadWrite | None:
    definition = cy.definition
    latest = outcomes[-1] if outcomes else None
    won = next((o for o in reversed(outcomes) if o.kind == OutcomeKind.WON), None)
    desired: dict[str, Any] = {
        "crmbridge_id": row.crmbridge_id,
        "stage": row.stage,
        "score": row.score,
        "why": row.why,
        "definition_version": definition.version,
    }
    if handoff is not None:
        desired.update(
            handed_off_at=handoff.handed_off_at,
            sla_due_at=handoff.sla_due_at,
            sla_breached=handoff.sla_breached_at is not None,
            owner=handoff.owner,
            accepted_at=handoff.accepted_at,
        )
    if latest is not None:
        desired["outcome"] = latest.kind
        reason = latest.reason
        desired["outcome_reason"] = (
            definition.reasons[reason].label if reason in definition.reasons else reason
        )
    if won is not None and won.amount is not None:
        desired["deal_amount"] = won.amount
    annotations = _changed(link, desired, "@")
    stage = row.stage if "stage" in annotations or _stage_unwritten(link, row) else None
    outcome = OutcomeKind(latest.kind) if latest is not None and "outcome" in annotations else None
    fields = _fields_to_write(cy, row, link, cy.marketing_system, journal, now)
    if not annotations and not fields and stage is None:
        return None
    return LeadWrite(
        email=row.email,
        crmbridge_id=row.crmbridge_id,
        native_id=link.native_id,
        fields=fields,
        stage=stage,
        stage_backwards=_backwards(cy, link, stage),
        outcome=outcome,
        annotations=annotations,
        create=False,
    )


def _stage_unwritten(link: LinkRow, row: LeadRow) -> bool:
    written = link.written or {}
    return row.stage is not None and written.get("@stage") != row.stage and "@stage" in written


def _backwards(cy: Cycle, link: LinkRow, stage: str | None) -> bool:
    """Whether showing ``stage`` moves the marketing system's own stage field backwards."""
    if stage is None:
        return False
    mapping = cy.definition.system(cy.marketing_system)
    if mapping.stage_field is None:
        return False
    picklist = mapping.picklist(mapping.stage_field)
    order = list(picklist.values)
    shown = (link.observed or {}).get("@stage") or (link.written or {}).get("@stage")
    if (
        not shown
        or not picklist.can_write("stage", shown)
        or not picklist.can_write("stage", stage)
    ):
        return False
    return order.index(picklist.write("stage", stage)) < order.index(picklist.write("stage", shown))


def _sales_write(
    cy: Cycle,
    row: LeadRow,
    link: LinkRow,
    handoff: HandoffRow | None,
    outcomes: Sequence[OutcomeRow],
    journal: Journal,
    now: datetime,
) -> LeadWrite | None:
    desired: dict[str, Any] = {
        "score": row.score,
        "why": row.why,
        "definition_version": cy.definition.version,
    }
    if handoff is not None:
        desired["sla_breached"] = handoff.sla_breached_at is not None
    annotations = _changed(link, desired, "@")
    fields = _fields_to_write(cy, row, link, cy.sales_system, journal, now)
    if not annotations and not fields:
        return None
    return LeadWrite(
        email=row.email,
        crmbridge_id=row.crmbridge_id,
        native_id=link.native_id,
        fields=fields,
        annotations=annotations,
        create=False,
    )
