"""Step 3: leads that reached the handoff stage go to sales — routed, given a last look by
``crm_before_handoff``, written in batches, recorded with their SLA due time.

The queue is the store itself (leads at the handoff stage with no open handoff), so a crash
between the write to sales and its record only means the next cycle writes again: the write is
an upsert on the lead's crmbridge id, and nothing is duplicated. A handoff sales refused waits in
quarantine for a person; one sales could not take just now (a
:class:`~crmbridge.errors.TransientRecordError`) is handed off again at the next cycle.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from crmbridge.connector import LeadWrite, WriteResult
from crmbridge.context import Hold, Route
from crmbridge.errors import TransientRecordError
from crmbridge.lead import Handoff, Lead
from crmbridge.store.store import LeadRow, LinkRow
from crmbridge.sync.cycle_context import Cycle
from crmbridge.sync.hooks import PluginFailed
from crmbridge.sync.journal import Journal
from crmbridge.sync.links import merged_written

CHUNK = 5_000
"""Leads handed off per batch: one Bulk API 2.0 job each in a backfill. A batch of 10,000 held
about 130 MB at once (the rows, the writes, the SDK's CSV copies); 5,000 keeps a backfill's peak
memory near 190 MB whatever its size, for one more job (5 calls) per 10,000 leads."""


def lead_of(row: LeadRow, links: Sequence[LinkRow] = ()) -> Lead:
    """The stored lead as a :class:`Lead` for hooks."""
    return Lead(
        email=row.email,
        fields=dict(row.fields),
        stage=row.stage,
        system_ids={link.system: link.native_id for link in links if link.deleted_at is None},
        source=row.source,
        modified_at=row.source_modified_at,
        score=row.score,
        id=row.id,
    )


def link_in(links: Sequence[LinkRow], system: str) -> LinkRow | None:
    """The live link of a lead in ``system`` (the newest, when there are several)."""
    live = [link for link in links if link.system == system and link.deleted_at is None]
    return live[-1] if live else None


def handoff_step(cy: Cycle, among: Collection[int] | None = None) -> None:
    """Hand every pending lead to sales, a chunk at a time; with ``among``, only those of these
    leads that are pending (a backfill between pages: its own new leads, without a scan of
    every lead in the store)."""
    after = 0
    stage = cy.definition.handoff.stage
    while True:
        cy.check_stop()
        with cy.tx() as conn:
            ids = cy.store.pending_handoffs(
                conn, cy.pipeline, stage, CHUNK, after_id=after, among=among
            )
            if not ids:
                return
            after = ids[-1]
            rows = cy.store.leads_by_id(conn, ids)
            links = cy.store.links_of(conn, ids)
            last_holds = cy.store.last_event_summaries(conn, ids, "held")
        _hand_off(cy, [rows[i] for i in ids if i in rows], links, last_holds)


def _hand_off(
    cy: Cycle,
    rows: Sequence[LeadRow],
    links: Mapping[int, list[LinkRow]],
    last_holds: Mapping[int, str],
) -> None:
    journal = cy.journal()
    now = cy.now()
    sales_map = cy.definition.system(cy.sales_system)
    writes: list[LeadWrite] = []
    routes: dict[str, tuple[LeadRow, Route, datetime]] = {}
    for row in rows:
        lead_links = links.get(row.id, [])
        lead = lead_of(row, lead_links)
        try:
            route = cy.hooks.first("crm_route_lead", ctx=cy.ctx, lead=lead) or Route()
            holds = [
                h
                for h in cy.hooks.collect("crm_before_handoff", ctx=cy.ctx, lead=lead, route=route)
                if isinstance(h, Hold)
            ]
        except PluginFailed as exc:
            cy.counts.errors += 1
            journal.add(row.id, now, "plugin_failed", exc.message, actor=exc.plugin)
            continue
        if holds:
            cy.counts.held += 1
            summary = "held back from sales: " + "; ".join(
                f"{h.reason}" + (f" ({h.plugin})" if h.plugin else "") for h in holds
            )
            if last_holds.get(row.id) != summary:
                journal.add(row.id, now, "held", summary, actor="plugin")
            continue
        link = link_in(lead_links, cy.sales_system)
        due = cy.definition.sla_due(lead, now)
        fields = {
            f: row.fields.get(f)
            for f in sales_map.writable_fields(creating=link is None)
            if row.fields.get(f) is not None
        }
        writes.append(
            LeadWrite(
                email=row.email,
                crmbridge_id=row.crmbridge_id,
                native_id=link.native_id if link else None,
                fields=fields,
                stage=cy.definition.handoff.stage,
                annotations={
                    "crmbridge_id": row.crmbridge_id,
                    "stage": row.stage,
                    "score": row.score,
                    "why": row.why,
                    "handed_off_at": now,
                    "sla_due_at": due,
                    "sla_breached": False,
                    "definition_version": cy.definition.version,
                },
                owner=route.target,
                create=True,
                may_exist=link is None and row.handoff_sent_at is not None,
            )
        )
        routes[row.crmbridge_id] = (row, route, due)
    if writes:
        cy.quota.check(cy.sales)
        if not cy.dry_run:
            # Marked before sending, so a crash before the answer is recorded makes the next
            # attempt update what it may have made rather than write over sales' changes.
            with cy.tx() as conn:
                cy.store.set_handoff_sent(conn, [r[0].id for r in routes.values()], now)
        results = _push(cy, writes)
    else:
        results = []
    with cy.tx() as conn:
        _record(cy, conn, writes, results, routes, links, journal, now)
        journal.flush(cy.store, conn)


def _push(cy: Cycle, writes: Sequence[LeadWrite]) -> list[WriteResult]:
    if cy.dry_run:
        for w in writes:
            action = "update" if w.native_id else "create or update"
            cy.plan.add(
                cy.sales_system,
                action,
                w.email,
                w.native_id,
                {**w.fields, "owner": w.owner, "stage": w.stage, **w.annotations},
            )
        return [WriteResult(w.key, ok=True, skipped="dry run") for w in writes]
    results = cy.sales.push_leads(writes)
    if len(results) != len(writes):
        raise RuntimeError(
            f"connector {cy.sales.name} answered {len(results)} results for {len(writes)} writes"
        )
    return results


def _record(
    cy: Cycle,
    conn: Any,
    writes: Sequence[LeadWrite],
    results: Sequence[WriteResult],
    routes: Mapping[str, tuple[LeadRow, Route, datetime]],
    links: Mapping[int, list[LinkRow]],
    journal: Journal,
    now: datetime,
) -> None:
    handoff_rows = []
    link_rows = []
    done: list[tuple[LeadRow, WriteResult, Route, datetime]] = []
    for write, result in zip(writes, results, strict=True):
        row, route, due = routes[write.crmbridge_id]
        if not result.ok:
            error = result.error
            cy.quarantine(
                conn,
                system=cy.sales_system,
                native_id=row.crmbridge_id,
                stage="handoff",
                error=f"handoff of {row.email} to {cy.sales_system} failed: "
                f"{error or 'no reason given'}",
                raw={"email": row.email, "fields": dict(write.fields), "owner": write.owner},
                email=row.email,
                field_name=getattr(error, "field", None),
                rule=getattr(error, "rule", None) or getattr(error, "code", None),
                retry=isinstance(error, TransientRecordError),
            )
            journal.add(
                row.id,
                now,
                "handoff_failed",
                f"{cy.sales_system} refused the handoff: {error}",
                system=cy.sales_system,
            )
            continue
        native_id = result.native_id or write.native_id
        handoff_rows.append(
            {
                "lead_id": row.id,
                "pipeline": cy.pipeline,
                "sales_system": cy.sales_system,
                "native_id": native_id,
                "owner": route.target,
                "route_reason": route.reason,
                "handed_off_at": now,
                "sla_due_at": due,
                "definition_version": cy.definition.version,
                "definition_hash": cy.definition.content_hash,
            }
        )
        if native_id and not cy.dry_run:
            link = link_in(links.get(row.id, []), cy.sales_system)
            wrote = {**write.fields, **{f"@{k}": v for k, v in write.annotations.items()}}
            link_rows.append(
                {
                    "pipeline": cy.pipeline,
                    "lead_id": row.id,
                    "system": cy.sales_system,
                    "native_id": native_id,
                    "written": merged_written(link, wrote),
                    "written_at": now,
                    "written_modified_at": result.modified_at,
                }
            )
        done.append((row, result, route, due))
    ids = cy.store.insert_handoffs(conn, handoff_rows)
    if not cy.dry_run:
        cy.store.set_handoff_sent(conn, [routes[w.crmbridge_id][0].id for w in writes], None)
    cy.store.resolve_quarantine(
        conn,
        pipeline=cy.pipeline,
        system=cy.sales_system,
        native_ids=[row.crmbridge_id for row, *_ in done],
        stage="handoff",
    )
    cy.store.upsert_links(conn, link_rows)
    cy.store.set_dirty(conn, [row.id for row, *_ in done], "marketing", True)
    for (row, result, route, due), handoff_id in zip(done, ids, strict=True):
        cy.counts.handed_off += 1
        owner = route.target or "the sales system's assignment rules"
        hours = (due - now).total_seconds() / 3600
        journal.add(
            row.id,
            now,
            "handed_off",
            f"handed off to {cy.sales_system} ({'created' if result.created else 'record'} "
            f"{result.native_id or '?'}), owner {owner}, SLA due {due:%Y-%m-%d %H:%M} UTC "
            f"({hours:g} h)",
            system=cy.sales_system,
            actor="crmbridge",
            data={"owner": route.target, "route": route.reason, "sla_due_at": due},
        )
        handoff = Handoff(
            lead_email=row.email,
            sales_system=cy.sales_system,
            native_id=result.native_id,
            handed_off_at=now,
            sla_due_at=due,
            owner=route.target,
            id=handoff_id,
        )
        cy.after_commit.append(
            partial(
                cy.hooks.notify, "crm_after_handoff", ctx=cy.ctx, lead=lead_of(row), handoff=handoff
            )
        )
