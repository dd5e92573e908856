"""Each hook's calling style, through the plugin manager: what plugins return, in which order,
and how crmbridge's own ``trylast`` defaults combine with (or yield to) a plugin's answer.

These tests call hooks the way the sync engine does (``pm.hook.<name>(**kwargs)``), without the
engine; the lifecycle order of the hooks is tested with the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crmbridge import hookimpl, hookspecs
from crmbridge.context import Hold, HookContext, Route, RunCounts
from crmbridge.definition import LeadDefinition, Problem, Qualification, ScoreCard, ScoreReason
from crmbridge.lead import Handoff, Lead, Outcome, OutcomeKind
from crmbridge.plugins import PluginManager, make_plugin_manager
from crmbridge.settings import Settings
from crmbridge.store import QuarantinedRecord, Store, open_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FIRSTRESULT = {"crm_match_lead", "crm_qualify_lead", "crm_route_lead"}


@pytest.fixture
def ctx(definition: LeadDefinition) -> HookContext:
    """A hook context with default settings and a fixed clock."""
    return HookContext(settings=Settings(), definition=definition, now=lambda: NOW)


def manager(*plugins: tuple[str, object]) -> PluginManager:
    """The built-ins plus ``plugins`` (registered in order), without installed plugins."""
    return make_plugin_manager(entrypoints=False, extra=plugins)


def jane(**fields: Any) -> Lead:
    """A lead with a business email."""
    return Lead.from_fields({"email": "jane.doe@acme.example", **fields})


def test_calling_styles_of_the_specs() -> None:
    pm = manager()
    names = [name for name in vars(hookspecs) if name.startswith("crm_")]
    styles = {}
    for name in names:
        spec = getattr(pm.hook, name).spec
        assert spec is not None, name
        styles[name] = bool(spec.opts.get("firstresult"))
    assert {name for name, first in styles.items() if first} == FIRSTRESULT
    assert len(styles) == 15


# -- collect-all ----------------------------------------------------------------------------------


class CountryNames:
    """Normalizes country names to ISO codes."""

    @hookimpl
    def crm_normalize_lead(self, ctx: HookContext, lead: Lead) -> Mapping[str, Any] | None:
        """United States → US."""
        return {"country": "US"} if lead.get("country") == "United States" else None


def test_normalize_collects_changes_with_the_builtin_last(ctx: HookContext) -> None:
    pm = manager(("countries", CountryNames()))
    lead = jane(country="United States", company="  Acme   Inc ", job_title="")
    assert pm.hook.crm_normalize_lead(ctx=ctx, lead=lead) == [
        {"country": "US"},
        {"company": "Acme Inc", "job_title": None},
    ]
    assert pm.hook.crm_normalize_lead(ctx=ctx, lead=jane(company="Acme")) == []


class NoFreeMail:
    """Refuses leads with a free email address."""

    @hookimpl
    def crm_validate_lead(self, lead: Lead) -> Sequence[Problem] | None:
        """gmail.com is not a business."""
        if lead.email.endswith("@gmail.com"):
            return [Problem("email", "free_email", "is a free email address")]
        return None


def test_validate_gathers_problems_from_every_plugin(ctx: HookContext) -> None:
    pm = manager(("no-free-mail", NoFreeMail()))
    lead = Lead.from_fields({"email": "someone@gmail.com", "employees": "many"})
    assert pm.hook.crm_validate_lead(ctx=ctx, lead=lead) == [
        [Problem("email", "free_email", "is a free email address")],
        [Problem("employees", "type", "must be an integer, got 'many'")],
    ]
    assert pm.hook.crm_validate_lead(ctx=ctx, lead=jane()) == []


class WebinarBonus:
    """Ten engagement points for webinar leads."""

    @hookimpl
    def crm_score_lead(self, lead: Lead) -> Sequence[ScoreReason] | None:
        """Webinars show intent."""
        if lead.get("lead_source") == "webinar":
            return [ScoreReason("webinar_bonus", "engagement", 10, "came from a webinar")]
        return None


def test_score_adds_plugin_points_to_the_definitions(ctx: HookContext) -> None:
    pm = manager(("webinar", WebinarBonus()))
    lead = jane(lead_source="webinar", page_views=4, industry="Software")
    results = pm.hook.crm_score_lead(ctx=ctx, lead=lead)
    card = ScoreCard.from_reasons(reason for result in results for reason in result)
    assert [r.rule for r in card.reasons] == ["webinar_bonus", "target_industry", "page_views"]
    assert (card.fit, card.engagement, card.total) == (15, 14, 29)


class HoldWeekends:
    """Holds every lead (the office is closed)."""

    @hookimpl
    def crm_before_handoff(self, lead: Lead, route: Route) -> Hold | None:
        """Nobody answers on a Sunday."""
        return Hold(reason=f"office closed; {route.target or 'queue'} answers on Monday")


class LetThrough:
    """Never holds a lead."""

    @hookimpl
    def crm_before_handoff(self, lead: Lead) -> Hold | None:
        """No objection."""
        return None


def test_before_handoff_collects_every_hold(ctx: HookContext) -> None:
    pm = manager(("weekend", HoldWeekends()), ("through", LetThrough()))
    holds = pm.hook.crm_before_handoff(ctx=ctx, lead=jane(), route=Route(owner="ae@acme.example"))
    assert holds == [Hold(reason="office closed; ae@acme.example answers on Monday")]
    only_through = manager(("through", LetThrough()))
    assert only_through.hook.crm_before_handoff(ctx=ctx, lead=jane(), route=Route()) == []


# -- firstresult ----------------------------------------------------------------------------------


class MatchByCompanyDomain:
    """Finds a known lead for a lead with a known id field."""

    def __init__(self, known: Lead | None) -> None:
        self.known = known
        self.calls = 0

    @hookimpl
    def crm_match_lead(self, lead: Lead) -> Lead | None:
        """The known lead, or None to let the next plugin try."""
        self.calls += 1
        return self.known


def test_match_takes_the_first_answer(ctx: HookContext) -> None:
    known = jane().copy(id=42)
    answers, defers = MatchByCompanyDomain(known), MatchByCompanyDomain(None)
    # The plugin registered last is asked first; its None defers to the next one.
    pm = manager(("answers", answers), ("defers", defers))
    assert pm.hook.crm_match_lead(ctx=ctx, lead=jane()) == known
    assert (defers.calls, answers.calls) == (1, 1)
    assert manager().hook.crm_match_lead(ctx=ctx, lead=jane()) is None


def test_match_stops_at_the_first_answer(ctx: HookContext) -> None:
    first, second = MatchByCompanyDomain(jane().copy(id=1)), MatchByCompanyDomain(None)
    pm = manager(("second", second), ("first", first))
    assert pm.hook.crm_match_lead(ctx=ctx, lead=jane()).id == 1
    assert second.calls == 0


class VipQualifies:
    """Qualifies VIPs straight to mql; has no opinion on anyone else."""

    @hookimpl
    def crm_qualify_lead(self, lead: Lead, score: ScoreCard) -> Qualification | None:
        """A VIP is an MQL whatever the score."""
        if lead.get("job_title") == "CEO":
            return Qualification("mql", ("mql: the CEO asked for a call",))
        return None


def test_qualify_default_is_the_definitions(ctx: HookContext) -> None:
    pm = manager(("vip", VipQualifies()))
    lead = jane(page_views=12)
    default = pm.hook.crm_qualify_lead(ctx=ctx, lead=lead, score=ctx.definition.score(lead))
    assert default == ctx.definition.qualify(lead, ctx.definition.score(lead))
    assert default.stage == "lead"


def test_qualify_plugin_overrides_the_default(ctx: HookContext) -> None:
    pm = manager(("vip", VipQualifies()))
    lead = jane(job_title="CEO")
    answer = pm.hook.crm_qualify_lead(ctx=ctx, lead=lead, score=ScoreCard(0, 0))
    assert answer == Qualification("mql", ("mql: the CEO asked for a call",))


class RouteByCountry:
    """German leads go to the DACH queue."""

    @hookimpl
    def crm_route_lead(self, lead: Lead) -> Route | None:
        """DACH or no opinion."""
        if lead.get("country") == "DE":
            return Route(queue="dach", reason="country DE")
        return None


def test_route_plugin_wins_and_the_default_remains(ctx: HookContext) -> None:
    pm = manager(("dach", RouteByCountry()))
    assert pm.hook.crm_route_lead(ctx=ctx, lead=jane(country="DE")) == Route(
        queue="dach", reason="country DE"
    )
    default = pm.hook.crm_route_lead(ctx=ctx, lead=jane(country="FR"))
    assert default.target is None
    assert default.reason.startswith("no routing plugin chose an owner")


# -- notify ---------------------------------------------------------------------------------------


class Recorder:
    """Records what every notify hook was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def crm_lead_captured(self, ctx: HookContext, lead: Lead, system: str) -> None:
        """A lead was read."""
        self.calls.append(("crm_lead_captured", (lead.email, system, ctx.now())))

    @hookimpl
    def crm_after_handoff(self, lead: Lead, handoff: Handoff) -> None:
        """A lead went to sales."""
        self.calls.append(("crm_after_handoff", (lead.email, handoff.sla_due_at)))

    @hookimpl
    def crm_handoff_outcome(self, lead: Lead, handoff: Handoff, outcome: Outcome) -> None:
        """Sales answered."""
        self.calls.append(("crm_handoff_outcome", (handoff.outcome, outcome.reason)))

    @hookimpl
    def crm_sla_breached(self, lead: Lead, handoff: Handoff) -> None:
        """Sales did not answer in time."""
        self.calls.append(("crm_sla_breached", handoff.is_breached(NOW)))

    @hookimpl
    def crm_lead_quarantined(self, record: QuarantinedRecord) -> None:
        """A record was held back."""
        self.calls.append(("crm_lead_quarantined", (record.field, record.rule, record.attempts)))

    @hookimpl
    def crm_cycle_finished(self, counts: RunCounts) -> None:
        """A cycle ended."""
        self.calls.append(("crm_cycle_finished", counts.to_dict()["pulled"]))


def test_lead_notify_hooks(ctx: HookContext) -> None:
    recorder = Recorder()
    pm = manager(("recorder", recorder))
    lead = jane(lead_source="demo_request")
    due = ctx.definition.sla_due(lead, NOW - timedelta(hours=2))
    handoff = Handoff(lead.email, "salesforce", "00Q1", NOW - timedelta(hours=2), due)
    answered = Handoff(
        lead.email,
        "salesforce",
        "00Q1",
        handoff.handed_off_at,
        due,
        outcome=OutcomeKind.REJECTED,
        outcome_reason="no_budget",
        outcome_at=NOW,
    )
    outcome = Outcome(OutcomeKind.REJECTED, "salesforce", "00Q1", NOW, reason="no_budget")

    assert pm.hook.crm_lead_captured(ctx=ctx, lead=lead, system="hubspot") == []
    pm.hook.crm_after_handoff(ctx=ctx, lead=lead, handoff=handoff)
    pm.hook.crm_sla_breached(ctx=ctx, lead=lead, handoff=handoff)
    pm.hook.crm_handoff_outcome(ctx=ctx, lead=lead, handoff=answered, outcome=outcome)

    assert recorder.calls == [
        ("crm_lead_captured", ("jane.doe@acme.example", "hubspot", NOW)),
        ("crm_after_handoff", ("jane.doe@acme.example", NOW - timedelta(hours=1))),
        ("crm_sla_breached", True),
        ("crm_handoff_outcome", (OutcomeKind.REJECTED, "no_budget")),
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store in a temporary folder."""
    opened = open_store(f"sqlite:///{tmp_path / 'hooks.sqlite3'}")
    yield opened
    opened.close()


def test_quarantine_and_cycle_notify_hooks(ctx: HookContext, store: Store) -> None:
    recorder = Recorder()
    pm = manager(("recorder", recorder))
    for _ in range(2):
        with store.transaction() as conn:
            store.quarantine(
                conn,
                pipeline="default",
                system="hubspot",
                native_id="101",
                stage="read",
                error="email: 'x' is not a valid email address (rule email_format)",
                raw={"email": "x"},
                now=NOW,
                email="x",
                field="email",
                rule="email_format",
            )
    [record] = store.quarantined()
    pm.hook.crm_lead_quarantined(ctx=ctx, record=record)
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts(pulled=3, valid=2, quarantined=1))
    assert recorder.calls == [
        ("crm_lead_quarantined", ("email", "email_format", 2)),
        ("crm_cycle_finished", 3),
    ]


# -- registration ---------------------------------------------------------------------------------


def test_registration_hooks_hand_plugins_a_register_callback() -> None:
    seen: list[str] = []

    class Registrar:
        """Registers nothing; shows what it is given."""

        @hookimpl
        def crm_register_connectors(self, register: Any) -> None:
            """Just look at the callback."""
            seen.append(f"connectors:{callable(register)}")

        @hookimpl
        def crm_register_sandboxes(self, register: Any) -> None:
            """Just look at the callback."""
            seen.append(f"sandboxes:{callable(register)}")

    pm = manager(("registrar", Registrar()))
    pm.hook.crm_register_connectors(register=lambda cls: None)
    pm.hook.crm_register_sandboxes(register=lambda cls: None)
    assert seen == ["connectors:True", "sandboxes:True"]
