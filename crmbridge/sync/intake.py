"""Step 1 and 2 of a cycle: leads read from marketing are captured, normalized, validated (the
bad ones quarantined, the rest flow on), matched to known leads, scored, qualified and stored.

A batch is one transaction together with the cursor that covers it, so a batch is either wholly
taken in or not at all, and a replayed batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from crmbridge.connector import Change, ChangeBatch, ChangeKind
from crmbridge.definition import (
    Cause,
    Problem,
    Qualification,
    RecycleHistory,
    ScoreCard,
    ScoreReason,
)
from crmbridge.lead import Lead, normalize_email
from crmbridge.store.store import LeadRow, LeadUpsert, LinkRow
from crmbridge.sync.cycle_context import Cycle
from crmbridge.sync.hooks import PluginFailed
from crmbridge.sync.journal import Journal
from crmbridge.sync.links import is_echo, stage_seen_before

WHY_LIMIT = 1000


@dataclass
class Evaluation:
    """What crmbridge decided about one lead in this batch."""

    stage: str | None
    card: ScoreCard
    qualification: Qualification | None
    why: str
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    marketing_dirty: bool = False
    stage_changed: bool = False


def intake_batch(cy: Cycle, batch: ChangeBatch, stream: str = "changes") -> None:
    """Take in one batch of marketing changes and commit its cursor (``stream``) with it."""
    latest: dict[str, Change] = {}
    for change in batch.changes:
        seen = latest.get(change.native_id)
        if seen is None or change.modified_at >= seen.modified_at:
            latest[change.native_id] = change
    cy.counts.pulled += len(latest)
    with cy.tx() as conn:
        journal = cy.journal()
        links = cy.store.links_by_native(conn, cy.marketing_system, list(latest), cy.pipeline)
        upserts: list[tuple[Change, Lead]] = []
        gone: list[dict[str, Any]] = []
        for change in latest.values():
            if change.kind is ChangeKind.UPSERT:
                lead = _prepare(cy, conn, change)
                if lead is not None:
                    upserts.append((change, lead))
            else:
                row = _gone(cy, change, links.get(change.native_id), journal)
                if row is not None:
                    gone.append(row)
        cy.counts.valid += len(upserts)
        _take_in(cy, conn, upserts, links, journal)
        cy.store.resolve_quarantine(
            conn,
            pipeline=cy.pipeline,
            system=cy.marketing_system,
            native_ids=[c.native_id for c, _ in upserts],
            stage="read",
        )
        cy.store.upsert_links(conn, gone)
        journal.flush(cy.store, conn)
        cy.commit_cursor(conn, cy.marketing_system, stream, batch.cursor.position)


def _prepare(cy: Cycle, conn: Connection, change: Change) -> Lead | None:
    """Captured, normalized and validated; ``None`` when quarantined."""
    system = cy.marketing_system
    if change.problems or change.lead is None:
        found = list(change.problems) or [Problem("record", "mapping", "could not be read")]
        _quarantine_problems(cy, conn, change, found, email=_email_of(change))
        return None
    lead = change.lead.copy()
    lead.system_ids.setdefault(system, change.native_id)
    lead.source = system
    lead.modified_at = change.modified_at
    problems: list[Problem]
    try:
        cy.hooks.notify("crm_lead_captured", ctx=cy.ctx, lead=lead, system=system)
        normalized: dict[str, Any] = {}
        # Results come plugins first, crmbridge's own (trylast) last; apply them the other way
        # round, so a plugin's change to a field wins over the default trimming of it.
        for changes in reversed(cy.hooks.collect("crm_normalize_lead", ctx=cy.ctx, lead=lead)):
            normalized.update(changes)
        if normalized:
            lead.fields.update(normalized)
        lead.email = normalize_email(lead.fields.get("email", lead.raw_email))
        problems = list(cy.hooks.flatten("crm_validate_lead", ctx=cy.ctx, lead=lead))
    except PluginFailed as exc:
        problems = [Problem("record", exc.rule or "plugin", exc.message)]
    if not lead.email and not any(p.field == "email" for p in problems):
        problems.append(Problem("email", "required", "is missing; it is every lead's identity"))
    if problems:
        _quarantine_problems(cy, conn, change, problems, email=lead.email or _email_of(change))
        return None
    return lead


def _quarantine_problems(
    cy: Cycle, conn: Connection, change: Change, problems: Sequence[Problem], email: str | None
) -> None:
    first = problems[0]
    text = "; ".join(str(p) for p in problems)
    cy.quarantine(
        conn,
        system=change.system,
        native_id=change.native_id,
        stage="read",
        error=f"{change.system} record {change.native_id} ({email or 'no email'}): {text}",
        raw=change.raw or {},
        email=email or None,
        field_name=first.field,
        rule=first.rule,
    )


def _email_of(change: Change) -> str | None:
    if change.lead is not None:
        return change.lead.email or None
    for key in ("email", "Email"):
        value = change.raw.get(key) if change.raw else None
        if value:
            return normalize_email(value)
    return None


def _gone(
    cy: Cycle, change: Change, link: LinkRow | None, journal: Journal
) -> dict[str, Any] | None:
    """A record deleted or merged away in marketing: its link says so; the lead stays."""
    cy.counts.deleted += 1
    if link is None:
        return None
    if link.deleted_at is not None and link.merged_into == change.merged_into:
        return None  # read again within the lookback: known already
    what = (
        "merged into " + str(change.merged_into) if change.kind is ChangeKind.MERGE else "deleted"
    )
    journal.add(
        link.lead_id,
        cy.now(),
        "deleted" if change.kind is ChangeKind.DELETE else "merged",
        f"{change.system} record {change.native_id} was {what}",
        system=change.system,
        actor=change.system,
    )
    return {
        "pipeline": cy.pipeline,
        "lead_id": link.lead_id,
        "system": change.system,
        "native_id": change.native_id,
        "native_modified_at": change.modified_at,
        "deleted_at": change.modified_at,
        "merged_into": change.merged_into,
    }


def _take_in(
    cy: Cycle,
    conn: Connection,
    upserts: list[tuple[Change, Lead]],
    links: Mapping[str, LinkRow],
    journal: Journal,
) -> None:
    store = cy.store
    now = cy.now()
    groups: dict[str, list[tuple[Change, Lead]]] = {}
    for item in upserts:
        groups.setdefault(item[1].email, []).append(item)
    by_id = store.leads_by_id(
        conn, {links[c.native_id].lead_id for c, _ in upserts if c.native_id in links}
    )
    by_email = store.leads_by_email(conn, groups, cy.pipeline)
    open_handoffs = store.open_handoffs(
        conn, [row.id for row in (*by_id.values(), *by_email.values())]
    )
    chosen: dict[str, _Chosen] = {}
    for items in groups.values():
        items.sort(key=lambda item: item[0].modified_at)
        change, lead = items[-1]
        stored = _match(cy, conn, lead, links.get(change.native_id), by_id, by_email, journal)
        email = stored.email if stored is not None else lead.email
        lead.email = email
        previous = chosen.get(email)
        if previous is not None and previous.change.modified_at > change.modified_at:
            previous.members.extend(items)
            continue
        members = [*items, *(previous.members if previous else [])]
        chosen[email] = _Chosen(change, lead, stored, members)
    theirs = _owned_elsewhere(cy)
    snapshots = []
    for email, pick in chosen.items():
        if pick.stored is not None:
            for name in theirs:
                if pick.stored.fields.get(name) is not None:
                    pick.lead.fields[name] = pick.stored.fields[name]
        link = links.get(pick.change.native_id)
        echo = is_echo(link, pick.change.modified_at) or stage_seen_before(link, pick.lead.stage)
        pick.evaluation = evaluate(cy, pick.lead, pick.stored, echo=echo, now=now)
        stored = pick.stored
        sales_dirty = (
            stored is not None
            and stored.id in open_handoffs
            and _sales_relevant_change(cy, stored, pick.lead, pick.evaluation)
        )
        marketing_dirty = pick.evaluation.marketing_dirty or _shown_score_stale(
            links.get(pick.change.native_id), pick.evaluation
        )
        snapshots.append(
            LeadUpsert(
                email=email,
                fields=pick.lead.fields,
                source=cy.marketing_system,
                source_modified_at=pick.change.modified_at,
                pipeline=cy.pipeline,
                columns={
                    "stage": pick.evaluation.stage,
                    "score": pick.evaluation.card.total,
                    "fit": pick.evaluation.card.fit,
                    "engagement": pick.evaluation.card.engagement,
                    "why": pick.evaluation.why,
                    "definition_version": cy.definition.version,
                    "definition_hash": cy.definition.content_hash,
                    "engaged_at": _engaged_at(cy, stored, pick.lead, pick.evaluation, now),
                    "marketing_dirty": bool(stored and stored.marketing_dirty) or marketing_dirty,
                    "sales_dirty": bool(stored and stored.sales_dirty) or sales_dirty,
                },
            )
        )
    ids = store.upsert_leads(conn, snapshots, now)
    link_rows = []
    candidates = cy.handoff_candidates
    handoff_stage = cy.definition.handoff.stage
    for email, pick in chosen.items():
        lead_id, applied = ids[email]
        evaluation = pick.evaluation
        if candidates is not None and applied and evaluation and evaluation.stage == handoff_stage:
            candidates.add(lead_id)
        for member_change, member_lead in pick.members:
            link_rows.append(_link_row(cy, lead_id, member_change, member_lead, now))
        if not applied:
            journal.add(
                lead_id,
                now,
                "stale",
                f"{pick.change.system} record {pick.change.native_id} changed at "
                f"{pick.change.modified_at:%Y-%m-%d %H:%M:%S} is older than what crmbridge "
                "holds; ignored",
                system=pick.change.system,
            )
            continue
        _journal_lead(cy, journal, lead_id, pick, now)
    store.upsert_links(conn, link_rows)


def _shown_score_stale(link: LinkRow | None, evaluation: Evaluation) -> bool:
    """Whether the marketing record shows a score (or its why) crmbridge wrote there that is no
    longer the lead's: it is written again, whenever the change came (with a verdict in the same
    cycle or on its own), so what marketing sees never depends on timing."""
    written = (link.written or {}) if link is not None else {}
    if "@score" not in written:
        return False
    return written.get("@score") != evaluation.card.total or written.get("@why") != evaluation.why


def _owned_elsewhere(cy: Cycle) -> list[str]:
    """Fields the marketing system does not own: its values of them never replace the lead's."""
    mapping = cy.definition.system(cy.marketing_system)
    return [
        name
        for name, spec in cy.definition.fields.items()
        if spec.owner not in (mapping.name, mapping.role)
    ]


@dataclass
class _Chosen:
    """The newest version of one lead in a batch, and every record that is this lead."""

    change: Change
    lead: Lead
    stored: LeadRow | None
    members: list[tuple[Change, Lead]]
    evaluation: Evaluation | None = None


def _match(
    cy: Cycle,
    conn: Connection,
    lead: Lead,
    link: LinkRow | None,
    by_id: Mapping[int, LeadRow],
    by_email: Mapping[str, LeadRow],
    journal: Journal,
) -> LeadRow | None:
    """The known lead: by this system's id first, then by normalized email, then by plugin."""
    if link is not None and link.lead_id in by_id:
        stored = by_id[link.lead_id]
        if stored.email != lead.email:
            taken = by_email.get(lead.email)
            if taken is None:
                cy.store.update_lead(conn, stored.id, cy.now(), email=lead.email)
                journal.add(
                    stored.id,
                    cy.now(),
                    "identity",
                    f"email changed in {lead.source}: {stored.email} → {lead.email}",
                    system=lead.source,
                )
                cy.counts.matched += 1
                return _with_email(stored, lead.email)
            cy.counts.matched += 1
            return taken
        cy.counts.matched += 1
        return stored
    found = by_email.get(lead.email)
    if found is not None:
        cy.counts.matched += 1
        return found
    if cy.hooks.implemented("crm_match_lead"):
        try:
            matched = cy.hooks.first("crm_match_lead", ctx=cy.ctx, lead=lead)
        except PluginFailed as exc:
            cy.hooks.errors += 1
            cy.counts.errors += 1
            journal_note = f"match plugin failed; treated as a new lead: {exc.message}"
            cy.ctx.log.error(journal_note)
            return None
        if isinstance(matched, Lead) and matched.id is not None:
            rows = cy.store.leads_by_id(conn, [matched.id])
            if matched.id in rows:
                cy.counts.matched += 1
                return rows[matched.id]
    cy.counts.created += 1
    return None


def _with_email(row: LeadRow, email: str) -> LeadRow:
    from dataclasses import replace

    return replace(row, email=email)


def evaluate(
    cy: Cycle, lead: Lead, stored: LeadRow | None, *, echo: bool, now: datetime
) -> Evaluation:
    """Score and qualify ``lead``, and judge the stage changes that asks for.

    ``lead.stage`` comes in as the stage the marketing system shows (a person may have changed
    it there) and leaves as the stage crmbridge decided; ``echo`` means the record only shows
    crmbridge's own last write, or the stage crmbridge saw there before, so its stage is not a
    person's decision.
    """
    current = stored.stage if stored is not None else None
    system_stage = lead.stage
    if stored is not None:
        lead.id = stored.id
    lead.stage = current
    try:
        reasons: list[ScoreReason] = cy.hooks.flatten("crm_score_lead", ctx=cy.ctx, lead=lead)
        card = ScoreCard.from_reasons(reasons)
        lead.score = card.total
        qualification = cy.hooks.first("crm_qualify_lead", ctx=cy.ctx, lead=lead, score=card)
    except PluginFailed as exc:
        cy.counts.errors += 1
        return Evaluation(
            stage=current,
            card=ScoreCard(stored.fit or 0, stored.engagement or 0) if stored else ScoreCard(0, 0),
            qualification=None,
            why=(stored.why or "") if stored is not None else "",
            events=[("plugin_failed", exc.message, {})],
        )
    history = RecycleHistory(
        recycles=stored.recycles if stored else 0,
        last_recycled_at=stored.last_recycled_at if stored else None,
        engaged_since=_engaged_since(cy, stored, lead, now),
    )
    evaluation = Evaluation(stage=current, card=card, qualification=qualification, why="")
    if system_stage is not None and not echo:
        _consider(cy, evaluation, system_stage, Cause.SYSTEM, history, now, lead.source)
    if isinstance(qualification, Qualification) and _qualification_applies(
        cy, evaluation.stage, qualification.stage
    ):
        before = evaluation.stage
        _consider(cy, evaluation, qualification.stage, Cause.QUALIFICATION, history, now, None)
        if evaluation.stage != before:
            evaluation.marketing_dirty = True
    evaluation.why = _why(evaluation)
    lead.stage = evaluation.stage
    return evaluation


def _consider(
    cy: Cycle,
    evaluation: Evaluation,
    target: str,
    cause: Cause,
    history: RecycleHistory,
    now: datetime,
    system: str | None,
) -> None:
    current = evaluation.stage
    if target == current:
        return
    if current is not None and cause is Cause.SYSTEM:
        mapping = cy.definition.system(cy.marketing_system)
        picklist = mapping.picklist(mapping.stage_field) if mapping.stage_field else None
        if (
            picklist is not None
            and picklist.can_write("stage", current)
            and (picklist.write("stage", current) == _native_of(picklist, target))
        ):
            return  # the system spells both stages alike (recycled and lead are both "lead")
    decision = cy.definition.check_transition(current, target, cause, history=history, now=now)
    if decision.allowed:
        reasons = (
            list(evaluation.qualification.reasons)
            if cause is Cause.QUALIFICATION and evaluation.qualification
            else []
        )
        who = f"set in {system}" if cause is Cause.SYSTEM else "qualified by crmbridge"
        evaluation.events.append(
            (
                "stage",
                f"{current or 'new'} → {target} ({who}): {decision.reason}",
                {"from": current, "to": target, "cause": str(cause), "reasons": reasons},
            )
        )
        evaluation.stage = target
        evaluation.stage_changed = True
        cy.counts.stage_changes += 1
    else:
        evaluation.events.append(
            (
                "refused",
                f"{current} → {target} refused: {decision.reason}",
                {"from": current, "to": target, "cause": str(cause)},
            )
        )
        cy.counts.refused += 1


def _native_of(picklist: Any, stage: str) -> str | None:
    return picklist.write("stage", stage) if picklist.can_write("stage", stage) else None


def _qualification_applies(cy: Cycle, current: str | None, target: str) -> bool:
    """Qualification moves a lead forward, back out of nurture, or to disqualified; never back."""
    if target == current:
        return False
    if current is None:
        return True
    stages = cy.definition.stages
    if target in stages and stages[target].side:
        return target != cy.definition.recycle.stage
    if stages[current].side:
        return current == cy.definition.recycle.stage
    return cy.definition.is_forward(current, target)


def _engaged_since(cy: Cycle, stored: LeadRow | None, lead: Lead, now: datetime) -> bool:
    """Whether the lead engaged after it was last recycled (this change included)."""
    if stored is None or stored.last_recycled_at is None:
        return False
    if stored.engaged_at is not None and stored.engaged_at > stored.last_recycled_at:
        return True
    return _engaged_at(cy, stored, lead, Evaluation(None, ScoreCard(0, 0), None, ""), now) == now


def _engaged_at(
    cy: Cycle, stored: LeadRow | None, lead: Lead, evaluation: Evaluation, now: datetime
) -> datetime | None:
    """When the lead last showed new engagement: a field an engagement rule reads went up (or
    changed), whether or not its points were already capped."""
    if stored is None:
        return now if evaluation.card.engagement > 0 else None
    for name in cy.engagement_fields:
        new, old = lead.fields.get(name), stored.fields.get(name)
        if new is None or new == old:
            continue
        numeric = isinstance(new, int | float) and isinstance(old, int | float)
        if not numeric or new > old:
            return now
    return stored.engaged_at


def _sales_relevant_change(cy: Cycle, stored: LeadRow, lead: Lead, evaluation: Evaluation) -> bool:
    sales = cy.definition.system(cy.sales_system)
    fields = sales.writable_fields(creating=False)
    if any(stored.fields.get(f) != lead.fields.get(f) for f in fields):
        return True
    return stored.score != evaluation.card.total


def _why(evaluation: Evaluation) -> str:
    parts = []
    if evaluation.qualification is not None:
        parts.append("; ".join(evaluation.qualification.reasons[-2:]))
    top = sorted(evaluation.card.reasons, key=lambda r: -abs(r.points))[:6]
    if top:
        parts.append(
            f"score {evaluation.card.total} (fit {evaluation.card.fit}, engagement "
            f"{evaluation.card.engagement}): " + ", ".join(f"{r.rule} {r.points:+d}" for r in top)
        )
    text = " | ".join(parts)
    return text if len(text) <= WHY_LIMIT else text[: WHY_LIMIT - 1] + "…"


def _link_row(cy: Cycle, lead_id: int, change: Change, lead: Lead, now: datetime) -> dict[str, Any]:
    # Only what crmbridge may write there needs watching for a person's edits.
    observed = {f: lead.fields[f] for f in cy.writable(change.system) if f in lead.fields}
    if change.lead is not None and change.lead.stage:
        observed["@stage"] = change.lead.stage
    return {
        "pipeline": cy.pipeline,
        "lead_id": lead_id,
        "system": change.system,
        "native_id": change.native_id,
        "native_modified_at": change.modified_at,
        "observed": observed,
        "observed_at": now,
    }


def _journal_lead(cy: Cycle, journal: Journal, lead_id: int, pick: _Chosen, now: datetime) -> None:
    """One journey entry for what the marketing record brought and how it scored (when anything
    changed), then one per stage decision."""
    stored, lead, change, evaluation = pick.stored, pick.lead, pick.change, pick.evaluation
    assert evaluation is not None
    system = change.system
    card = evaluation.card
    rescored = stored is None or stored.score != card.total
    score = f"score {card.total} (fit {card.fit}, engagement {card.engagement})"
    reasons = [str(r) for r in card.reasons] if rescored else None
    if stored is None:
        journal.add(
            lead_id,
            now,
            "captured",
            f"captured from {system} record {change.native_id}; {score}",
            system=system,
            actor=system,
            data={"fields": lead.fields, "score_reasons": reasons},
        )
    else:
        names = set(lead.fields) | set(stored.fields)
        changed = sorted(k for k in names if lead.fields.get(k) != stored.fields.get(k))
        if changed or rescored:
            what = f"updated in {system}: {', '.join(changed)}" if changed else f"seen in {system}"
            journal.add(
                lead_id,
                now,
                "updated",
                what + (f"; {score}" if rescored else ""),
                system=system,
                actor=system,
                data={"fields": {k: lead.fields.get(k) for k in changed}, "score_reasons": reasons},
            )
    for kind, summary, data in evaluation.events:
        journal.add(lead_id, now, kind, summary, actor="crmbridge", data=data)
