"""The sync cycle on in-memory connectors: the closed loop, SLA, courtesy, replay, dry run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crmbridge import Hold, Lead, Route, hookimpl
from crmbridge.app import CrmBridge
from crmbridge.context import HookContext, RunCounts
from crmbridge.definition import Qualification, ScoreCard, ScoreReason
from crmbridge.lead import Handoff, Outcome
from crmbridge.store.records import QuarantinedRecord
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

from .conftest import Clock, mql_contact

LIFECYCLE = [
    "crm_lead_captured",
    "crm_normalize_lead",
    "crm_validate_lead",
    "crm_match_lead",
    "crm_score_lead",
    "crm_qualify_lead",
    "crm_route_lead",
    "crm_before_handoff",
    "crm_after_handoff",
    "crm_handoff_outcome",
    "crm_sla_breached",
    "crm_lead_quarantined",
    "crm_cycle_finished",
]


class Recorder:
    """Implements every lifecycle hook and records the order they fire in."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def crm_lead_captured(self, ctx: HookContext, lead: Lead, system: str) -> None:
        self.calls.append("crm_lead_captured")

    @hookimpl
    def crm_normalize_lead(self, ctx: HookContext, lead: Lead) -> None:
        self.calls.append("crm_normalize_lead")

    @hookimpl
    def crm_validate_lead(self, ctx: HookContext, lead: Lead) -> None:
        self.calls.append("crm_validate_lead")

    @hookimpl
    def crm_match_lead(self, ctx: HookContext, lead: Lead) -> None:
        self.calls.append("crm_match_lead")

    @hookimpl
    def crm_score_lead(self, ctx: HookContext, lead: Lead) -> None:
        self.calls.append("crm_score_lead")

    @hookimpl
    def crm_qualify_lead(self, ctx: HookContext, lead: Lead, score: ScoreCard) -> None:
        self.calls.append("crm_qualify_lead")

    @hookimpl
    def crm_route_lead(self, ctx: HookContext, lead: Lead) -> None:
        self.calls.append("crm_route_lead")

    @hookimpl
    def crm_before_handoff(self, ctx: HookContext, lead: Lead, route: Route) -> None:
        self.calls.append("crm_before_handoff")

    @hookimpl
    def crm_after_handoff(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        self.calls.append("crm_after_handoff")

    @hookimpl
    def crm_handoff_outcome(
        self, ctx: HookContext, lead: Lead, handoff: Handoff, outcome: Outcome
    ) -> None:
        self.calls.append("crm_handoff_outcome")

    @hookimpl
    def crm_sla_breached(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        self.calls.append("crm_sla_breached")

    @hookimpl
    def crm_lead_quarantined(self, ctx: HookContext, record: QuarantinedRecord) -> None:
        self.calls.append("crm_lead_quarantined")

    @hookimpl
    def crm_cycle_finished(self, ctx: HookContext, counts: RunCounts) -> None:
        self.calls.append("crm_cycle_finished")


def first_calls(calls: list[str]) -> list[str]:
    seen: list[str] = []
    for name in calls:
        if name not in seen:
            seen.append(name)
    return seen


def test_lifecycle_hooks_fire_in_order_for_one_lead(
    make_bridge: Callable[..., CrmBridge], world: memory.MemoryWorld, clock: Clock
) -> None:
    recorder = Recorder()
    runner = PipelineRunner(make_bridge(("recorder", recorder)))
    world.marketing_add(**mql_contact("ada@analytical.example"))
    runner.run_cycle()
    world.sales_set_status("ada@analytical.example", "Working - Contacted")
    runner.run_cycle()
    world.sales_edit("ada@analytical.example", Status="Open - Not Contacted")
    world.marketing_add(**mql_contact("late@analytical.example"))
    runner.run_cycle()
    clock.advance(hours=25)
    runner.run_cycle()
    world.marketing_add(email="not-an-email", lastname="X")
    runner.run_cycle()
    order = first_calls(recorder.calls)
    expected = [
        "crm_lead_captured",
        "crm_normalize_lead",
        "crm_validate_lead",
        "crm_match_lead",
        "crm_score_lead",
        "crm_qualify_lead",
        "crm_route_lead",
        "crm_before_handoff",
        "crm_after_handoff",
        "crm_cycle_finished",
        "crm_handoff_outcome",
        "crm_sla_breached",
        "crm_lead_quarantined",
    ]
    assert order == expected
    # within one cycle of one lead, the lifecycle hooks fire in lifecycle order
    first_cycle = recorder.calls[: recorder.calls.index("crm_cycle_finished") + 1]
    positions = [LIFECYCLE.index(name) for name in first_calls(first_cycle)]
    assert positions == sorted(positions)


def test_handoff_outcome_and_the_loop_closing(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("grace@navy.example"))
    result = runner.run_cycle()
    assert result.status == "ok", result.error
    assert result.counts.handed_off == 1
    sales = world.sales_get("grace@navy.example")
    assert sales["Status"] == "Open - Not Contacted"
    assert sales["CrmBridge_sla_due_at"] > sales["CrmBridge_handed_off_at"]
    marketing = world.marketing_get("grace@navy.example")
    assert marketing["lifecyclestage"] == "marketingqualifiedlead"
    assert marketing["crmbridge_handed_off_at"] is not None

    world.sales_set_status("grace@navy.example", "Working - Contacted")
    assert runner.run_cycle().counts.outcomes == 1
    marketing = world.marketing_get("grace@navy.example")
    assert marketing["hs_lead_status"] == "IN_PROGRESS"
    assert marketing["crmbridge_outcome"] == "accepted"
    assert marketing["lifecyclestage"] == "salesqualifiedlead"  # sal is written as SQL in HubSpot

    world.sales_convert("grace@navy.example")
    runner.run_cycle()
    world.sales_close("grace@navy.example", won=True, amount=48000.0)
    runner.run_cycle()
    marketing = world.marketing_get("grace@navy.example")
    assert marketing["lifecyclestage"] == "customer"
    assert marketing["crmbridge_deal_amount"] == 48000.0
    lead = bridge.store.lead("grace@navy.example")
    assert lead is not None
    assert lead.stage == "customer"
    kinds = [e.kind for e in bridge.store.journey(lead.id)]
    assert kinds.count("handed_off") == 1
    assert kinds.count("outcome") == 3


def test_a_replayed_cycle_writes_nothing(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("replay@example.com"))
    runner.run_cycle()
    world.sales_set_status("replay@example.com", "Working - Contacted")
    runner.run_cycle()
    runner.run_cycle()
    writes_before = (world.marketing.calls, world.sales.calls, world.seq)
    with bridge.store.transaction() as conn:  # forget every cursor: the next cycle replays all
        from crmbridge.store import tables

        conn.execute(tables.cursors.delete())
    result = runner.run_cycle()
    assert result.status == "ok"
    assert (result.counts.handed_off, result.counts.outcomes, result.counts.written_back) == (
        0,
        0,
        0,
    )
    assert world.seq == writes_before[2], "a replay changed records in a system"
    assert world.sales_count() == 1


def test_rejection_recycles_to_nurture_with_the_reason_and_the_guard_holds(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge, clock: Clock
) -> None:
    email = "pingpong@example.com"
    world.marketing_add(**mql_contact(email))
    runner.run_cycle()
    world.sales_set_status(email, "Closed - Not Converted", "Bad Timing")
    runner.run_cycle()
    marketing = world.marketing_get(email)
    assert marketing["lifecyclestage"] == "lead"
    assert marketing["hs_lead_status"] == "UNQUALIFIED"
    assert marketing["crmbridge_outcome_reason"] == "Bad timing"
    world.marketing_edit(email, hs_analytics_num_page_views=40)
    result = runner.run_cycle()
    assert result.counts.handed_off == 0, "recycled lead handed off again before the cool-off"
    lead = bridge.store.lead(email)
    assert lead is not None
    assert lead.stage == "recycled"
    assert lead.recycles == 1
    clock.advance(days=31)
    world.marketing_edit(email, hs_analytics_num_page_views=80)
    assert runner.run_cycle().counts.handed_off == 1


def test_sla_breach_is_flagged_on_both_sides_once(
    make_bridge: Callable[..., CrmBridge], world: memory.MemoryWorld, clock: Clock
) -> None:
    recorder = Recorder()
    runner = PipelineRunner(make_bridge(("recorder", recorder)))
    world.marketing_add(**mql_contact("ignored@example.com", lead_source="demo_request"))
    runner.run_cycle()
    clock.advance(minutes=61)  # demo requests have a 1 h SLA
    result = runner.run_cycle()
    assert result.counts.sla_breaches == 1
    assert world.marketing_get("ignored@example.com")["crmbridge_sla_breached"] is True
    assert world.sales_get("ignored@example.com")["CrmBridge_sla_breached"] is True
    assert runner.run_cycle().counts.sla_breaches == 0
    assert recorder.calls.count("crm_sla_breached") == 1


def test_dry_run_writes_nothing_and_lists_the_changes(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("dry@example.com"))
    seq = world.seq
    result = runner.run_cycle(dry_run=True)
    assert result.status == "ok"
    assert world.seq == seq
    assert world.sales_count() == 0
    assert bridge.store.lead_count() == 0
    assert bridge.store.runs() == []
    summary = result.plan.summary()
    assert summary["salesforce"] == {"create or update": 1}
    assert summary["hubspot"] == {"update": 1}
    [write] = result.plan.by_system()["salesforce"]
    assert write.email == "dry@example.com"
    assert write.changes["Company" if "Company" in write.changes else "company"] == "Navy Labs"


def test_forbidden_stage_change_is_refused_and_recorded(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("back@example.com"))
    runner.run_cycle()
    world.marketing_edit("back@example.com", lifecyclestage="subscriber")
    result = runner.run_cycle()
    assert result.counts.refused == 1
    lead = bridge.store.lead("back@example.com")
    assert lead is not None
    assert lead.stage == "mql"
    refused = [e for e in bridge.store.journey(lead.id) if e.kind == "refused"]
    assert "mql → subscriber refused" in refused[0].summary
    assert "backwards" in refused[0].summary


def test_a_persons_edit_newer_than_crmbridges_write_is_not_overwritten(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge, clock: Clock
) -> None:
    email = "conflict@example.com"
    world.marketing_add(**mql_contact(email))
    runner.run_cycle()
    assert world.sales_get(email)["Title"] == "VP of Engineering"
    clock.advance(minutes=5)
    world.sales_edit(email, Title="CTO (verified on call)")
    runner.run_cycle()
    clock.advance(minutes=5)
    world.marketing_edit(email, jobtitle="Vice President, Engineering")
    result = runner.run_cycle()
    assert world.sales_get(email)["Title"] == "CTO (verified on call)"
    assert result.counts.conflicts == 1
    lead = bridge.store.lead(email)
    assert lead is not None
    conflict = [e for e in bridge.store.journey(lead.id) if e.kind == "conflict"]
    assert "job_title was changed by a person" in conflict[0].summary


def test_quarantine_names_field_and_rule_and_the_rest_flow_on(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("good@example.com"))
    bad = world.marketing_add(email="bad@@example.com", lastname="Bad")
    world.marketing_add(**mql_contact("odd@example.com", lifecyclestage="nurture-ish"))
    result = runner.run_cycle()
    assert (result.counts.pulled, result.counts.valid, result.counts.quarantined) == (3, 1, 2)
    assert result.counts.handed_off == 1
    entries = {q.native_id: q for q in bridge.store.quarantined()}
    assert entries[bad].field == "email"
    assert entries[bad].rule == "email_format"
    assert "'bad@@example.com' is not a valid email address" in entries[bad].error
    odd = next(q for q in entries.values() if q.native_id != bad)
    assert odd.rule == "picklist_mapping"
    assert "nurture-ish" in odd.error


def test_sales_refusal_is_quarantined_and_retried(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.fail_emails.add("refused@example.com")
    world.marketing_add(**mql_contact("refused@example.com"))
    result = runner.run_cycle()
    assert result.counts.handed_off == 0
    [entry] = bridge.store.quarantined()
    assert (entry.stage, entry.field, entry.rule) == (
        "handoff",
        "Company",
        "REQUIRED_FIELD_MISSING",
    )
    assert runner.run_cycle().counts.handed_off == 0, "a refused handoff is retried only by hand"
    world.fail_emails.clear()
    bridge.store.set_quarantine_status([entry.id], "retry")
    assert runner.run_cycle().counts.handed_off == 1


def test_quota_reserve_pauses_the_pipeline(
    runner: PipelineRunner, world: memory.MemoryWorld
) -> None:
    world.quota = (81, 100)  # 81 % used; the default reserve keeps 20 %
    world.marketing_add(**mql_contact("quota@example.com"))
    result = runner.run_cycle()
    assert result.status == "paused"
    assert "crmbridge keeps 20% for everyone else" in str(result.error)
    assert world.sales_count() == 0


def test_plugins_route_hold_and_score(
    make_bridge: Callable[..., CrmBridge], world: memory.MemoryWorld
) -> None:
    class Territory:
        @hookimpl
        def crm_route_lead(self, ctx: HookContext, lead: Lead) -> Route:
            return Route(owner="005EMEA", reason="country GB → EMEA team")

        @hookimpl
        def crm_before_handoff(self, ctx: HookContext, lead: Lead, route: Route) -> Hold | None:
            if lead.fields.get("company") == "Hold Ltd":
                return Hold("company under legal review", plugin="territory")
            return None

        @hookimpl
        def crm_score_lead(self, ctx: HookContext, lead: Lead) -> list[ScoreReason]:
            return [ScoreReason("partner", "fit", 5, "partner referral")]

    runner = PipelineRunner(make_bridge(("territory", Territory())))
    world.marketing_add(**mql_contact("routed@example.com", country="GB"))
    world.marketing_add(**mql_contact("held@example.com", company="Hold Ltd"))
    result = runner.run_cycle()
    assert (result.counts.handed_off, result.counts.held) == (1, 1)
    assert world.sales_get("routed@example.com")["OwnerId"] == "005EMEA"
    assert "fit 65" in world.sales_get("routed@example.com")["CrmBridge_why"]  # 60 + partner 5


def test_a_failing_notify_plugin_never_stops_the_cycle(
    make_bridge: Callable[..., CrmBridge],
    world: memory.MemoryWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @hookimpl
        def crm_after_handoff(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
            raise RuntimeError("webhook down")

    bridge = make_bridge(("broken", Broken()))
    world.marketing_add(**mql_contact("notify@example.com"))
    result = PipelineRunner(bridge).run_cycle()
    assert result.status == "ok"
    assert result.counts.handed_off == 1
    assert result.counts.errors == 1


def test_a_failing_decision_plugin_quarantines_only_its_lead(
    make_bridge: Callable[..., CrmBridge], world: memory.MemoryWorld
) -> None:
    class Picky:
        @hookimpl
        def crm_validate_lead(self, ctx: HookContext, lead: Lead) -> list[Any]:
            if lead.email.startswith("boom"):
                raise ValueError("cannot parse company")
            return []

    bridge = make_bridge(("picky", Picky()))
    world.marketing_add(**mql_contact("boom@example.com"))
    world.marketing_add(**mql_contact("fine@example.com"))
    result = PipelineRunner(bridge).run_cycle()
    assert result.counts.handed_off == 1
    [entry] = bridge.store.quarantined()
    assert entry.rule == "plugin:picky"
    assert (
        "plugin picky failed in crm_validate_lead: ValueError: cannot parse company" in entry.error
    )


def test_qualify_plugin_overrides_the_definition(
    make_bridge: Callable[..., CrmBridge], world: memory.MemoryWorld
) -> None:
    class Strict:
        @hookimpl
        def crm_qualify_lead(self, ctx: HookContext, lead: Lead, score: ScoreCard) -> Qualification:
            return Qualification("lead", ("strict plugin: only leads, never MQL",))

    bridge = make_bridge(("strict", Strict()))
    world.marketing_add(**mql_contact("strict@example.com"))
    assert PipelineRunner(bridge).run_cycle().counts.handed_off == 0
    lead = bridge.store.lead("strict@example.com")
    assert lead is not None
    assert lead.stage == "lead"


def test_deleted_marketing_record_is_recorded(
    runner: PipelineRunner, world: memory.MemoryWorld, bridge: CrmBridge
) -> None:
    world.marketing_add(**mql_contact("gone@example.com"))
    runner.run_cycle()
    world.marketing_delete("gone@example.com")
    result = runner.run_cycle()
    assert result.counts.deleted == 1
    lead = bridge.store.lead("gone@example.com")
    assert lead is not None
    assert any(e.kind == "deleted" for e in bridge.store.journey(lead.id))


def test_two_runners_never_both_advance_a_pipeline(
    bridge: CrmBridge, world: memory.MemoryWorld
) -> None:
    world.marketing_add(**mql_contact("lease@example.com"))
    first, second = (
        PipelineRunner(bridge, owner="host-a:1"),
        PipelineRunner(bridge, owner="host-b:2"),
    )
    assert first.run_cycle().status == "ok"
    held = second.run_cycle()
    assert held.status == "held"
    assert "held by host-a:1" in str(held.error)


class Router:
    @hookimpl
    def crm_route_lead(self, ctx: HookContext, lead: Lead) -> Route:
        return Route(owner="inbound-rep", reason="round robin")


def test_a_handoff_sent_before_a_crash_is_sent_again_without_undoing_sales_work(
    make_bridge: Callable[..., CrmBridge],
    world: memory.MemoryWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = make_bridge(("router", Router()))
    runner = PipelineRunner(bridge)
    email = "crashed@example.com"
    world.marketing_add(**mql_contact(email))
    store_type = type(bridge.store)
    real = store_type.insert_handoffs

    def killed(self: Any, conn: Any, rows: Any) -> list[int]:
        raise RuntimeError("killed between the write to sales and its record")

    monkeypatch.setattr(store_type, "insert_handoffs", killed)
    crashed = runner.run_cycle()
    assert crashed.status == "failed"
    assert "killed between" in str(crashed.error)
    monkeypatch.setattr(store_type, "insert_handoffs", real)
    lead = bridge.store.lead(email)
    assert lead is not None
    assert lead.handoff_sent_at is not None, "the send was marked before the write"
    assert world.sales_count() == 1  # the write reached sales; crmbridge did not record it
    world.sales_edit(email, OwnerId="someone-in-sales")
    world.sales_set_status(email, "Closed - Not Converted", "Bad Timing")

    result = runner.run_cycle()
    assert result.status == "ok", result.error
    sales = world.sales_get(email)
    assert (sales["Status"], sales["OwnerId"]) == ("Closed - Not Converted", "someone-in-sales")
    assert world.sales_count() == 1
    runner.run_cycle()
    lead = bridge.store.lead(email)
    assert lead is not None
    assert lead.handoff_sent_at is None
    assert lead.stage == "recycled", "sales' rejection was read, not written over"
    assert world.marketing_get(email)["crmbridge_outcome"] == "rejected"
    runner.close()


def test_a_stale_stage_in_marketing_does_not_undo_a_verdict_not_yet_written_back(
    runner: PipelineRunner,
    world: memory.MemoryWorld,
    bridge: CrmBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crmbridge.sync import cycle as cycle_module

    email = "verdict@example.com"
    world.marketing_add(**mql_contact(email))
    runner.run_cycle()
    # Marketing disqualifies the lead it handed off; sales rejects it, which recycles it.
    world.marketing_edit(email, lifecyclestage="other")
    runner.run_cycle()
    assert bridge.store.lead(email).stage == "disqualified"  # type: ignore[union-attr]
    world.sales_set_status(email, "Closed - Not Converted", "Bad Timing")

    def killed(cy: Any) -> None:
        raise RuntimeError("killed before the write-back")

    monkeypatch.setattr(cycle_module, "writeback_step", killed)
    assert runner.run_cycle().status == "failed"
    monkeypatch.undo()
    lead = bridge.store.lead(email)
    assert lead is not None
    assert lead.stage == "recycled"
    # Marketing still shows the stage crmbridge saw before the verdict; a person edits another
    # field, so the record comes back with that old stage.
    assert world.marketing_get(email)["lifecyclestage"] == "other"
    world.marketing_edit(email, jobtitle="VP of Engineering (updated)")

    assert runner.run_cycle().status == "ok"
    lead = bridge.store.lead(email)
    assert lead is not None
    assert lead.stage == "recycled", "the stale stage in marketing undid sales' verdict"
    marketing = world.marketing_get(email)
    assert marketing["lifecyclestage"] == "lead"
    assert marketing["crmbridge_outcome"] == "rejected"
