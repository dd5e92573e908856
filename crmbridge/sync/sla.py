"""Step 5: the SLA sweep. A handoff sales has not answered by its due time is a dropped baton:
it is recorded once, announced to ``crm_sla_breached``, and flagged on both sides."""

from __future__ import annotations

from functools import partial

from crmbridge.lead import Handoff
from crmbridge.sync.cycle_context import Cycle
from crmbridge.sync.handoff import lead_of


def sla_step(cy: Cycle) -> None:
    now = cy.now()
    with cy.tx() as conn:
        breached = cy.store.past_due_handoffs(conn, cy.pipeline, now)
        if not breached:
            return
        rows = cy.store.leads_by_id(conn, [h.lead_id for h in breached])
        journal = cy.journal()
        for h in breached:
            cy.store.update_handoff(conn, h.id, sla_breached_at=now)
            late = now - h.sla_due_at
            journal.add(
                h.lead_id,
                now,
                "sla_breached",
                f"SLA breached: handed off {h.handed_off_at:%Y-%m-%d %H:%M} UTC to "
                f"{h.owner or h.sales_system}, due {h.sla_due_at:%Y-%m-%d %H:%M} UTC, no answer "
                f"from sales ({_ago(late.total_seconds())} late)",
                system=h.sales_system,
                actor="crmbridge",
            )
            cy.counts.sla_breaches += 1
            row = rows[h.lead_id]
            handoff = Handoff(
                lead_email=row.email,
                sales_system=h.sales_system,
                native_id=h.native_id,
                handed_off_at=h.handed_off_at,
                sla_due_at=h.sla_due_at,
                owner=h.owner,
                sla_breached_at=now,
                id=h.id,
            )
            cy.after_commit.append(
                partial(
                    cy.hooks.notify,
                    "crm_sla_breached",
                    ctx=cy.ctx,
                    lead=lead_of(row),
                    handoff=handoff,
                )
            )
        ids = [h.lead_id for h in breached]
        cy.store.set_dirty(conn, ids, "marketing", True)
        cy.store.set_dirty(conn, ids, "sales", True)
        journal.flush(cy.store, conn)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
