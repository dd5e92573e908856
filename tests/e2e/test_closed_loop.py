"""The closed loop, HubSpot sandbox → crmbridge → Salesforce sandbox and back, through the real
SDKs (hubspot-api-client, simple-salesforce) over HTTP: the acceptance of the sync engine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from crmbridge import Handoff, HookContext, Lead, hookimpl
from crmbridge.cli import app

from .conftest import Loop, mql

pytestmark = pytest.mark.sandbox


def hand_off(loop: Loop, email: str, **extra: Any) -> dict[str, Any]:
    """A contact appears in HubSpot, qualifies, and is handed to Salesforce; the SF lead."""
    loop.hubspot.control.control("seed_contacts", contacts=[mql(email, **extra)])
    result = loop.cycle()
    assert result.counts.handed_off == 1, result.counts
    [lead] = loop.sf_leads(email)
    return lead


def test_an_mql_appears_in_salesforce_once_with_owner_and_sla(loop: Loop) -> None:
    lead = hand_off(loop, "ada@analytical.example")
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["Company"] == "Navy Labs"
    assert lead["OwnerId"]
    assert lead["CrmBridge_SLA_Due__c"] > lead["CrmBridge_Handoff_At__c"]
    assert lead["CrmBridge_Id__c"].startswith("cb-")
    assert "mql: score" in lead["CrmBridge_Why__c"]
    contact = loop.contact("ada@analytical.example")
    assert contact["lifecyclestage"] == "marketingqualifiedlead"
    assert contact["crmbridge_sla_due_at"]
    loop.cycle()
    loop.cycle()
    assert len(loop.sf_leads("ada@analytical.example")) == 1


def test_sales_accepts_and_hubspot_shows_it(loop: Loop) -> None:
    lead = hand_off(loop, "accept@example.com")
    loop.salesforce.control.control(
        "set_lead_status", lead_id=lead["Id"], status="Working - Contacted"
    )
    assert loop.cycle().counts.outcomes == 1
    contact = loop.contact("accept@example.com")
    assert contact["hs_lead_status"] == "IN_PROGRESS"
    assert contact["crmbridge_outcome"] == "accepted"
    assert contact["crmbridge_accepted_at"]
    assert contact["lifecyclestage"] == "salesqualifiedlead"


def test_rejection_with_reason_goes_back_to_nurture_in_hubspot(loop: Loop) -> None:
    lead = hand_off(loop, "reject@example.com")
    loop.salesforce.control.control(
        "set_lead_status",
        lead_id=lead["Id"],
        status="Closed - Not Converted",
        reason="No Budget",
    )
    loop.cycle()
    contact = loop.contact("reject@example.com")
    assert contact["crmbridge_outcome"] == "rejected"
    assert contact["crmbridge_outcome_reason"] == "No budget"
    assert contact["hs_lead_status"] == "UNQUALIFIED"
    assert contact["lifecyclestage"] == "lead", "not moved back to nurture (HubSpot forward-only)"
    row = loop.bridge.store.lead("reject@example.com")
    assert row is not None
    assert (row.stage, row.recycles) == ("recycled", 1)


def test_conversion_and_a_won_deal_show_customer_and_amount(loop: Loop) -> None:
    lead = hand_off(loop, "win@example.com")
    ids = loop.salesforce.control.control("convert_lead", lead_id=lead["Id"], amount=52000.0)
    loop.cycle()
    assert loop.contact("win@example.com")["lifecyclestage"] == "opportunity"
    loop.salesforce.control.control(
        "close_opportunity", opportunity_id=ids["opportunity_id"], won=True, amount=52000.0
    )
    loop.cycle()
    contact = loop.contact("win@example.com")
    assert contact["lifecyclestage"] == "customer"
    assert float(contact["crmbridge_deal_amount"]) == 52000.0
    assert contact["crmbridge_outcome"] == "won"


def test_ignored_past_the_sla_is_flagged_on_both_sides_and_the_hook_fires(loop: Loop) -> None:
    breached: list[str] = []

    class Alarm:
        @hookimpl
        def crm_sla_breached(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
            breached.append(lead.email)

    loop.bridge.pm.register(Alarm(), name="alarm")
    lead = hand_off(loop, "ignored@example.com")
    loop.advance(hours=25)
    assert loop.cycle().counts.sla_breaches == 1
    assert breached == ["ignored@example.com"]
    assert loop.contact("ignored@example.com")["crmbridge_sla_breached"] == "true"
    [after] = loop.sf_leads("ignored@example.com")
    assert after["Id"] == lead["Id"]
    assert after["CrmBridge_SLA_Breached__c"] is True
    assert loop.cycle().counts.sla_breaches == 0


def test_a_replayed_cycle_makes_zero_writes(loop: Loop) -> None:
    lead = hand_off(loop, "replay@example.com")
    loop.salesforce.control.control(
        "set_lead_status", lead_id=lead["Id"], status="Working - Contacted"
    )
    loop.cycle()
    loop.cycle()
    with loop.bridge.store.transaction() as conn:
        from crmbridge.store import tables

        conn.execute(tables.cursors.delete())
    before = loop.writes()
    result = loop.cycle()
    assert (result.counts.handed_off, result.counts.outcomes, result.counts.written_back) == (
        0,
        0,
        0,
    )
    assert loop.writes() == before, "a replayed cycle wrote to a system"


def test_a_dry_run_makes_zero_writes_and_lists_the_changes(loop: Loop) -> None:
    loop.hubspot.control.control("seed_contacts", contacts=[mql("dry@example.com")])
    before = loop.writes()
    result = loop.cycle(dry_run=True)
    assert loop.writes() == before
    assert loop.sf_leads("dry@example.com") == []
    assert loop.bridge.store.lead_count() == 0
    salesforce = result.plan.by_system()["salesforce"]
    assert [w.email for w in salesforce] == ["dry@example.com"]
    assert salesforce[0].changes["company"] == "Navy Labs"
    assert "hubspot" in result.plan.by_system()


def test_a_forbidden_stage_change_is_refused(loop: Loop) -> None:
    hand_off(loop, "backwards@example.com")
    loop.hubspot.control.control(
        "set_lifecycle_stage", email="backwards@example.com", stage="subscriber"
    )
    result = loop.cycle()
    assert result.counts.refused == 1
    row = loop.bridge.store.lead("backwards@example.com")
    assert row is not None
    assert row.stage == "mql"
    [refusal] = [e for e in loop.bridge.store.journey(row.id) if e.kind == "refused"]
    assert "mql → subscriber refused" in refusal.summary


def test_a_persons_edit_newer_than_crmbridges_write_is_not_overwritten(loop: Loop) -> None:
    lead = hand_off(loop, "edited@example.com")
    loop.advance(minutes=5)
    loop.salesforce.control.control(
        "edit_record", object="Lead", id=lead["Id"], fields={"Title": "CTO (verified)"}
    )
    loop.cycle()
    loop.advance(minutes=5)
    loop.hubspot.control.control(
        "edit_contact", email="edited@example.com", properties={"jobtitle": "Head of Platform"}
    )
    result = loop.cycle()
    assert loop.sf_leads("edited@example.com")[0]["Title"] == "CTO (verified)"
    assert result.counts.conflicts == 1
    row = loop.bridge.store.lead("edited@example.com")
    assert row is not None
    [conflict] = [e for e in loop.bridge.store.journey(row.id) if e.kind == "conflict"]
    assert "job_title was changed by a person to 'CTO (verified)'" in conflict.summary


def test_quarantined_records_are_listed_with_field_and_rule_and_can_be_retried(
    loop: Loop,
) -> None:
    loop.hubspot.control.control(
        "seed_contacts",
        contacts=[mql("fine@example.com"), mql("broken@@example.com", lastname="Broken")],
    )
    result = loop.cycle()
    assert (result.counts.quarantined, result.counts.handed_off) == (1, 1)
    runner = CliRunner()
    listed = runner.invoke(app, ["quarantine", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)
    assert (entry["field"], entry["rule"]) == ("email", "email_format")
    assert "'broken@@example.com' is not a valid email address" in entry["error"]
    retried = runner.invoke(app, ["quarantine", "retry", str(entry["id"])])
    assert retried.exit_code == 0, retried.output
    assert "1 record(s) will be retried" in retried.output
    loop.advance(minutes=10)  # out of the lookback: only the retry reads the record again
    calls = len(loop.hubspot.calls().snapshot())
    again = loop.cycle()
    assert again.counts.quarantined >= 1, "still broken: quarantined again"
    assert any("batch/read" in c.endpoint for c in loop.hubspot.calls().snapshot()[calls:])
    [entry_after] = loop.bridge.store.quarantined()
    assert entry_after.attempts >= 2
    assert entry_after.status == "open"
