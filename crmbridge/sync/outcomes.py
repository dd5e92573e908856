"""Step 4: sales' verdicts come back. Each is recorded once (by its key), moves the lead's stage
as the lead definition says, closes or answers its handoff, and marks marketing to be told.

The sales records read with the verdicts are observations too: the fields sales owns flow to the
lead, and what crmbridge wrote there is compared with what a person left there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from crmbridge.connector import Change, OutcomeBatch
from crmbridge.definition import Cause
from crmbridge.lead import Handoff, Outcome, OutcomeKind
from crmbridge.store.lifecycle import HandoffRow
from crmbridge.store.store import LeadRow, LinkRow
from crmbridge.sync.cycle_context import Cycle
from crmbridge.sync.handoff import lead_of
from crmbridge.sync.journal import Journal
from crmbridge.sync.links import is_echo

CLOSING = frozenset({OutcomeKind.REJECTED, OutcomeKind.RECYCLED, OutcomeKind.WON, OutcomeKind.LOST})
ANSWERING = frozenset({OutcomeKind.ACCEPTED, OutcomeKind.CONVERTED, OutcomeKind.WON})


@dataclass
class _LeadState:
    row: LeadRow
    stage: str | None
    recycles: int
    last_recycled_at: datetime | None
    fields: dict[str, Any]
    changed: bool = False


def take_outcomes(cy: Cycle, batch: OutcomeBatch) -> None:
    """Record one page of verdicts and observations, and commit the cursor with them."""
    now = cy.now()
    with cy.tx() as conn:
        journal = cy.journal()
        for change in batch.problems:
            _quarantine(cy, conn, change)
        states = _observe(cy, conn, batch.observations, journal, now)
        _apply(cy, conn, batch.outcomes, states, journal, now)
        updates = [
            {
                "id": s.row.id,
                "stage": s.stage,
                "recycles": s.recycles,
                "last_recycled_at": s.last_recycled_at,
                "fields": s.fields,
                "marketing_dirty": True,
            }
            for s in states.values()
            if s.changed
        ]
        cy.store.update_leads(conn, updates, now)
        journal.flush(cy.store, conn)
        cy.commit_cursor(conn, cy.sales_system, "outcomes", batch.cursor.position)


def _quarantine(cy: Cycle, conn: Connection, change: Change) -> None:
    text = "; ".join(str(p) for p in change.problems) or "could not be read"
    first = change.problems[0] if change.problems else None
    cy.quarantine(
        conn,
        system=change.system,
        native_id=change.native_id,
        stage="outcome",
        error=f"{change.system} record {change.native_id}: {text}",
        raw=change.raw or {},
        email=change.lead.email if change.lead else None,
        field_name=first.field if first else None,
        rule=first.rule if first else None,
    )


def _observe(
    cy: Cycle,
    conn: Connection,
    observations: Sequence[Change],
    journal: Journal,
    now: datetime,
) -> dict[int, _LeadState]:
    """Record what sales' records show; take the fields sales owns into the lead."""
    states: dict[int, _LeadState] = {}
    if not observations:
        return states
    system = cy.sales_system
    links = cy.store.links_by_native(conn, system, [c.native_id for c in observations], cy.pipeline)
    rows = cy.store.leads_by_id(conn, {link.lead_id for link in links.values()})
    mapping = cy.definition.system(system)
    owned = [f for f in mapping.fields if cy.definition.owned_by(f, mapping)]
    link_rows = []
    for change in observations:
        link = links.get(change.native_id)
        if link is None or change.lead is None or link.lead_id not in rows:
            continue
        observed = {
            f: change.lead.fields[f] for f in cy.writable(system) if f in change.lead.fields
        }
        link_rows.append(
            {
                "pipeline": cy.pipeline,
                "lead_id": link.lead_id,
                "system": system,
                "native_id": change.native_id,
                "native_modified_at": change.modified_at,
                "observed": observed,
                "observed_at": now,
            }
        )
        if is_echo(link, change.modified_at):
            continue
        state = _state(states, rows[link.lead_id])
        changed = {
            f: observed[f] for f in owned if f in observed and observed[f] != state.fields.get(f)
        }
        if changed:
            state.fields.update(changed)
            state.changed = True
            journal.add(
                state.row.id,
                now,
                "updated",
                f"updated in {system}: {', '.join(sorted(changed))} (owned by {system})",
                system=system,
                actor=system,
                data=changed,
            )
    cy.store.upsert_links(conn, link_rows)
    return states


def _state(states: dict[int, _LeadState], row: LeadRow) -> _LeadState:
    if row.id not in states:
        states[row.id] = _LeadState(
            row=row,
            stage=row.stage,
            recycles=row.recycles,
            last_recycled_at=row.last_recycled_at,
            fields=dict(row.fields),
        )
    return states[row.id]


def _apply(
    cy: Cycle,
    conn: Connection,
    outcomes: Sequence[Outcome],
    states: dict[int, _LeadState],
    journal: Journal,
    now: datetime,
) -> None:
    if not outcomes:
        return
    rows = _find_leads(cy, conn, outcomes)
    handoffs = cy.store.open_handoffs(conn, [r.id for r in rows.values()])
    latest = cy.store.latest_handoffs(conn, [r.id for r in rows.values()])
    for outcome in sorted(outcomes, key=lambda o: o.occurred_at):
        row = rows.get(outcome.key)
        if row is None:
            cy.ctx.log.info(
                "%s %s: %s for a lead crmbridge does not know; not recorded",
                outcome.system,
                outcome.native_id,
                outcome.kind,
            )
            continue
        state = _state(states, row)
        handoff = handoffs.get(row.id) or latest.get(row.id)
        _apply_one(cy, conn, outcome, state, handoff, handoffs, journal, now)


def _find_leads(cy: Cycle, conn: Connection, outcomes: Sequence[Outcome]) -> dict[str, LeadRow]:
    """outcome key → the lead: by crmbridge id, then the sales record's link, then email."""
    store = cy.store
    by_cb = store.leads_by_crmbridge_id(
        conn, [o.crmbridge_id for o in outcomes if o.crmbridge_id], cy.pipeline
    )
    links: Mapping[str, LinkRow] = store.links_by_native(
        conn, cy.sales_system, [o.native_id for o in outcomes], cy.pipeline
    )
    by_id = store.leads_by_id(conn, {link.lead_id for link in links.values()})
    by_email = store.leads_by_email(conn, [o.email for o in outcomes if o.email], cy.pipeline)
    found: dict[str, LeadRow] = {}
    for o in outcomes:
        row = by_cb.get(o.crmbridge_id or "")
        if row is None and o.native_id in links:
            row = by_id.get(links[o.native_id].lead_id)
        if row is None and o.email:
            row = by_email.get(o.email)
        if row is not None:
            found[o.key] = row
    return found


def _apply_one(
    cy: Cycle,
    conn: Connection,
    outcome: Outcome,
    state: _LeadState,
    handoff: HandoffRow | None,
    open_handoffs: dict[int, HandoffRow],
    journal: Journal,
    now: datetime,
) -> None:
    definition = cy.definition
    reason = outcome.reason
    spec = definition.outcomes[outcome.kind]
    note = ""
    if reason is None and spec.reason_required:
        reason = "unknown" if "unknown" in definition.reasons else None
        note = " (sales gave no reason)"
    has_opportunity = bool(outcome.details.get("opportunity_id"))
    target = definition.outcome_stage(outcome.kind, reason, has_opportunity=has_opportunity)
    recorded = cy.store.record_outcome(
        conn,
        {
            "pipeline": cy.pipeline,
            "key": outcome.key,
            "lead_id": state.row.id,
            "handoff_id": handoff.id if handoff else None,
            "kind": str(outcome.kind),
            "reason": reason,
            "native_value": outcome.native_value,
            "system": outcome.system,
            "native_id": outcome.native_id,
            "occurred_at": outcome.occurred_at,
            "amount": outcome.amount,
            "owner": outcome.owner,
            "stage": target,
            "recorded_at": now,
        },
    )
    if recorded is None:
        return  # this verdict was recorded before: a replay changes nothing
    cy.counts.outcomes += 1
    label = definition.reasons[reason].label if reason in definition.reasons else reason
    by = f" by {outcome.owner}" if outcome.owner else ""
    amount = f", amount {outcome.amount:,.2f}" if outcome.amount is not None else ""
    journal.add(
        state.row.id,
        now,
        "outcome",
        f"sales {outcome.kind}" + (f" ({label}){note}" if reason else "") + f"{by} in "
        f"{outcome.system} ({outcome.native_value or outcome.kind}){amount}",
        system=outcome.system,
        actor=outcome.owner or outcome.system,
        data={"kind": str(outcome.kind), "reason": reason, **dict(outcome.details)},
    )
    decision = definition.check_transition(state.stage, target, Cause.OUTCOME, now=now)
    if decision.allowed and target != state.stage:
        journal.add(
            state.row.id,
            now,
            "stage",
            f"{state.stage} → {target} (sales' verdict {outcome.kind}): {decision.reason}",
            actor=outcome.system,
            data={"from": state.stage, "to": target, "cause": "outcome"},
        )
        cy.counts.stage_changes += 1
        if target == definition.recycle.stage:
            state.recycles += 1
            state.last_recycled_at = now
        state.stage = target
    elif not decision.allowed:
        cy.counts.refused += 1
        journal.add(
            state.row.id,
            now,
            "refused",
            f"{state.stage} → {target} refused: {decision.reason}",
            actor="crmbridge",
        )
    state.changed = True
    if handoff is not None and handoff.id is not None:
        values: dict[str, Any] = {
            "outcome": str(outcome.kind),
            "outcome_reason": reason,
            "outcome_at": outcome.occurred_at,
        }
        if outcome.kind in ANSWERING and handoff.accepted_at is None:
            values["accepted_at"] = outcome.occurred_at
        if outcome.kind in CLOSING:
            values["closed"] = True
            open_handoffs.pop(state.row.id, None)
        cy.store.update_handoff(conn, handoff.id, **values)
        handoff = replace(handoff, **values)
    lead = lead_of(state.row)
    lead.stage = state.stage
    model = _handoff_model(state.row, handoff) if handoff else None
    if model is not None:
        cy.after_commit.append(
            partial(
                cy.hooks.notify,
                "crm_handoff_outcome",
                ctx=cy.ctx,
                lead=lead,
                handoff=model,
                outcome=outcome,
            )
        )


def _handoff_model(row: LeadRow, h: HandoffRow) -> Handoff:
    return Handoff(
        lead_email=row.email,
        sales_system=h.sales_system,
        native_id=h.native_id,
        handed_off_at=h.handed_off_at,
        sla_due_at=h.sla_due_at,
        owner=h.owner,
        outcome=OutcomeKind(h.outcome) if h.outcome else None,
        outcome_reason=h.outcome_reason,
        outcome_at=h.outcome_at,
        sla_breached_at=h.sla_breached_at,
        id=h.id,
    )
