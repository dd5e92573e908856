"""Control actions (seeding, schema changes, a rep's work), options, restarts, subprocesses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.sandbox import SalesforceEmulator, SandboxConfigError
from crmbridge_salesforce.transport import sandbox_session
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from crmbridge.testing.sandbox import SandboxControlError, SandboxProcess

pytestmark = pytest.mark.sandbox

REP = "james.chen@crmbridge.sandbox"


def test_seed_demo_builds_a_realistic_org(salesforce_sandbox: SalesforceSandbox) -> None:
    counts = salesforce_sandbox.control.control("seed_demo", count=400, seed=7)
    assert counts["Lead"] > 50
    assert 0 < counts["Contact"] == counts["Account"] < counts["Lead"]
    assert 0 < counts["Opportunity"] <= counts["Contact"]
    sf = salesforce_sandbox.sf
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == counts["Lead"]
    converted = sf.query_all(
        "SELECT Id, Status, ConvertedContactId, ConvertedContact.Email, Owner.Name FROM Lead "
        "WHERE IsConverted = true"
    )["records"]
    assert len(converted) == counts["Contact"]
    assert {r["Status"] for r in converted} == {"Closed - Converted"}
    assert all(r["ConvertedContactId"].startswith("003") for r in converted)
    queued = sf.query("SELECT COUNT() FROM Lead WHERE Owner.Name = 'Inbound Leads'")
    assert queued["totalSize"] > 0
    rejected = sf.query_all(
        "SELECT Rejection_Reason__c FROM Lead WHERE Status = 'Closed - Not Converted'"
    )["records"]
    assert rejected
    assert all(r["Rejection_Reason__c"] for r in rejected)
    stamps = sf.query("SELECT CreatedDate FROM Lead ORDER BY CreatedDate LIMIT 1")["records"]
    assert stamps[0]["CreatedDate"].startswith("2026-01")


def test_seeding_is_deterministic(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> None:
    def snapshot() -> list[Any]:
        sandbox = salesforce_sandbox_factory()
        sandbox.control.control("seed_demo", count=150, seed=3)
        rows = sandbox.sf.query_all("SELECT Id, Email, Status, OwnerId FROM Lead ORDER BY Id")
        return [tuple(r.values())[1:] for r in rows["records"]]

    assert snapshot() == snapshot()


def test_seed_records_validates_unless_asked_not_to(salesforce_sandbox: SalesforceSandbox) -> None:
    control = salesforce_sandbox.control
    with pytest.raises(SandboxControlError, match="record 1: REQUIRED_FIELD_MISSING"):
        control.control(
            "seed_records",
            object="Lead",
            records=[{"LastName": "Ok", "Company": "C"}, {"LastName": "No company"}],
        )
    assert salesforce_sandbox.sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    raw = control.control(
        "seed_records",
        object="Lead",
        records=[
            {"LastName": "No company", "IsConverted": True, "CreatedDate": "2020-01-01T00:00:00Z"}
        ],
        validate=False,
    )
    [lead_id] = raw["ids"]
    lead = salesforce_sandbox.sf.Lead.get(lead_id)
    assert (lead["Company"], lead["IsConverted"], lead["CreatedDate"]) == (
        None,
        True,
        "2020-01-01T00:00:00.000+0000",
    )
    with pytest.raises(SandboxControlError, match="no sObject 'Widget'"):
        control.control("seed_records", object="Widget", records=[])


def test_a_rep_works_a_lead(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead()
    sf = salesforce_sandbox.sf
    before = sf.Lead.get(lead_id)
    salesforce_sandbox.control.advance_clock(90)
    worked = salesforce_sandbox.control.control(
        "set_lead_status", lead_id=lead_id, status="Working - Contacted", owner=REP
    )
    rep_id = salesforce_sandbox.emulator.org.user_ids[REP]
    assert (worked["Status"], worked["OwnerId"], worked["LastModifiedById"]) == (
        "Working - Contacted",
        rep_id,
        rep_id,
    )
    assert worked["SystemModstamp"] > before["SystemModstamp"]
    assert worked["LastModifiedDate"] == worked["SystemModstamp"]
    rejected = salesforce_sandbox.control.control(
        "set_lead_status", lead_id=lead_id, status="Closed - Not Converted", reason="No Budget"
    )
    assert (rejected["Rejection_Reason__c"], rejected["LastModifiedById"]) == ("No Budget", rep_id)
    with pytest.raises(SandboxControlError, match="INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"):
        salesforce_sandbox.control.control("set_lead_status", lead_id=lead_id, status="Nurture")
    with pytest.raises(SandboxControlError, match="FIELD_INTEGRITY_EXCEPTION"):
        salesforce_sandbox.control.control(
            "set_lead_status", lead_id=lead_id, status="Closed - Converted"
        )
    queued = salesforce_sandbox.control.control(
        "set_lead_status", lead_id=lead_id, status="Open - Not Contacted", owner="Inbound Leads"
    )
    assert queued["OwnerId"].startswith("00G")
    assert queued["LastModifiedById"] == rep_id  # the rep who gave it back to the queue


def test_edit_record_as_a_named_user(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead()
    edited = salesforce_sandbox.control.control(
        "edit_record", object="lead", id=lead_id, fields={"Title": "CTO"}, as_user="Aisha Okafor"
    )
    aisha = salesforce_sandbox.emulator.org.user_ids["aisha.okafor@crmbridge.sandbox"]
    assert (edited["Title"], edited["LastModifiedById"]) == ("CTO", aisha)
    with pytest.raises(SandboxControlError, match="no user 'Nobody'"):
        salesforce_sandbox.control.control(
            "edit_record", object="Lead", id=lead_id, fields={}, as_user="Nobody"
        )
    with pytest.raises(SandboxControlError, match="no live Lead"):
        salesforce_sandbox.control.control("edit_record", object="Lead", id="nope", fields={})


def test_convert_a_lead_then_close_its_opportunity(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead(FirstName="Grace", Company="Navy", LeadSource="Webinar")
    ids = salesforce_sandbox.control.control(
        "convert_lead", lead_id=lead_id, opportunity_name="Navy - Pilot", amount=5000, as_user=REP
    )
    sf = salesforce_sandbox.sf
    lead = sf.Lead.get(lead_id)
    assert lead["IsConverted"] is True
    assert lead["Status"] == "Closed - Converted"
    assert (
        lead["ConvertedContactId"],
        lead["ConvertedAccountId"],
        lead["ConvertedOpportunityId"],
    ) == (
        ids["contact_id"],
        ids["account_id"],
        ids["opportunity_id"],
    )
    assert lead["ConvertedDate"] == lead["LastModifiedDate"][:10]
    contact = sf.Contact.get(ids["contact_id"])
    assert (contact["FirstName"], contact["AccountId"], contact["Email"]) == (
        "Grace",
        ids["account_id"],
        lead["Email"],
    )
    assert sf.Account.get(ids["account_id"])["Name"] == "Navy"
    opportunity = sf.Opportunity.get(ids["opportunity_id"])
    assert (opportunity["Name"], opportunity["StageName"], opportunity["Amount"]) == (
        "Navy - Pilot",
        "Prospecting",
        5000.0,
    )
    assert opportunity["LeadSource"] == "Webinar"
    lost = salesforce_sandbox.control.control(
        "close_opportunity", opportunity_id=ids["opportunity_id"], won=False, loss_reason="Price"
    )
    assert (lost["StageName"], lost["IsClosed"], lost["IsWon"], lost["Loss_Reason__c"]) == (
        "Closed Lost",
        True,
        False,
        "Price",
    )
    won = salesforce_sandbox.control.control(
        "close_opportunity", opportunity_id=ids["opportunity_id"], won=True, amount=7500
    )
    assert (won["IsWon"], won["Amount"], won["Probability"]) == (True, 7500.0, 100.0)
    with pytest.raises(SandboxControlError, match="CANNOT_UPDATE_CONVERTED_LEAD"):
        salesforce_sandbox.control.control("convert_lead", lead_id=lead_id)


def test_convert_without_opportunity_from_a_queue(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    queue = salesforce_sandbox.emulator.org.queue_ids["Inbound Leads"]
    lead_id = new_lead(OwnerId=queue)
    ids = salesforce_sandbox.control.control(
        "convert_lead", lead_id=lead_id, create_opportunity=False
    )
    assert ids["opportunity_id"] is None
    assert salesforce_sandbox.sf.Lead.get(lead_id)["OwnerId"].startswith("005")


def test_delete_record_and_find_leads(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead(Email="Find.Me@Example.com")
    [found] = salesforce_sandbox.control.control("find_leads", email="  find.me@example.COM ")
    assert found["Id"] == lead_id
    assert salesforce_sandbox.control.control("delete_record", object="Lead", id=lead_id) == {
        "id": lead_id,
        "deleted": True,
    }
    assert salesforce_sandbox.control.control("find_leads", email="find.me@example.com") == []
    every = salesforce_sandbox.sf.query_all("SELECT Id FROM Lead", include_deleted=True)
    assert [r["Id"] for r in every["records"]] == [lead_id]


def test_picklist_drift_and_removed_fields(salesforce_sandbox: SalesforceSandbox) -> None:
    control = salesforce_sandbox.control
    changed = control.control(
        "set_picklist",
        field="Lead.Status",
        values=["Open - Not Contacted", "Working - Contacted", "Nurture", "Closed - Converted"],
    )
    assert changed["values"][2] == "Nurture"
    with pytest.raises(SandboxControlError, match="is not a picklist"):
        control.control("set_picklist", field="Lead.Email", values=["x"])
    sf = salesforce_sandbox.sf
    lead_id = sf.Lead.create({"LastName": "L", "Company": "C", "CrmBridge_Stage__c": "mql"})["id"]
    assert control.control("remove_field", object="Lead", field="CrmBridge_Stage__c") == {
        "removed": "Lead.CrmBridge_Stage__c",
        "records_cleared": 1,
    }
    assert "CrmBridge_Stage__c" not in sf.Lead.get(lead_id)
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_FIELD"):
        sf.query("SELECT CrmBridge_Stage__c FROM Lead")
    with pytest.raises(SandboxControlError, match="cannot go"):
        control.control("remove_field", object="Lead", field="LastName")


def test_an_org_without_crmbridge_fields(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> None:
    bare = salesforce_sandbox_factory(lead_custom_fields=False)
    names = {f["name"] for f in bare.sf.Lead.describe()["fields"]}
    assert not any(n.startswith("CrmBridge_") for n in names)
    assert "Rejection_Reason__c" in names
    with pytest.raises(SalesforceResourceNotFound, match="Provided external ID field does not"):
        bare.sf.Lead.upsert("CrmBridge_Id__c/x", {"LastName": "L", "Company": "C"})
    partial = salesforce_sandbox_factory(lead_custom_fields=["CrmBridge_Id__c"])
    names = {f["name"] for f in partial.sf.Lead.describe()["fields"]}
    assert {n for n in names if n.startswith("CrmBridge_")} == {"CrmBridge_Id__c"}


def test_options_are_checked(salesforce_sandbox_factory: Callable[..., SalesforceSandbox]) -> None:
    with pytest.raises(
        SandboxConfigError, match=r"unknown Salesforce sandbox option\(s\) \['typo'\]"
    ):
        SalesforceEmulator({"typo": 1})
    with pytest.raises(SandboxConfigError, match="daily_api_limit must be a positive integer"):
        SalesforceEmulator({"daily_api_limit": 0})
    with pytest.raises(SandboxConfigError, match="api_version"):
        SalesforceEmulator({"api_version": "latest"})
    custom = salesforce_sandbox_factory(
        api_version="v60.0",
        users={"solo@acme.test": {"password": "pw", "security_token": "TOK", "name": "Solo"}},
        clients={"app": "secret"},
        queues=["Partners"],
        picklists={"Lead.Status": ["Open - Not Contacted", "Nurture", "Closed - Converted"]},
    )
    sf = custom.make_client(username="solo@acme.test", password="pw", security_token="TOK")
    assert sf.sf_version == "60.0"
    assert sf.query("SELECT Name FROM User")["records"][0]["Name"] == "Solo"
    assert sf.query("SELECT Name FROM Group")["records"][0]["Name"] == "Partners"
    status = {f["name"]: f for f in sf.Lead.describe()["fields"]}["Status"]
    assert [v["value"] for v in status["picklistValues"]][1] == "Nurture"
    with pytest.raises(SalesforceMalformedRequest, match="restricted picklist"):
        sf.Lead.create({"LastName": "L", "Company": "C", "Status": "Working - Contacted"})
    assert custom.emulator.env(custom.url)["CRMBRIDGE_SALESFORCE__DOMAIN"] == "crmbridge-sandbox.my"


def test_unknown_control_action_lists_the_known_ones(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SandboxControlError) as error:
        salesforce_sandbox.control.control("make_coffee")
    for action in ("convert_lead", "seed_demo", "set_lead_status", "expire_sessions"):
        assert action in str(error.value)


def test_state_survives_a_restart(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox], tmp_path: Path
) -> None:
    state = tmp_path / "salesforce.json"
    first = salesforce_sandbox_factory(state_path=state)
    lead_id = first.sf.Lead.create({"LastName": "Kept", "Company": "C", "CrmBridge_Id__c": "k"})[
        "id"
    ]
    first.sf.Lead.delete(first.sf.Lead.create({"LastName": "Gone", "Company": "C"})["id"])
    first.control.control(
        "set_picklist", field="Lead.Status", values=["Open - Not Contacted", "Nurture"]
    )
    first.control.control("set_api_usage", used=41)
    token = first.sf.session_id
    first.server.stop()
    assert state.exists()

    second = salesforce_sandbox_factory(state_path=state)
    direct = second.make_client(session_id=token, instance="crmbridge-sandbox.my.salesforce.com")
    assert direct.Lead.get_by_custom_id("CrmBridge_Id__c", "K")["Id"] == lead_id
    assert direct.query("SELECT COUNT() FROM Lead")["totalSize"] == 1
    assert len(direct.query_all("SELECT Id FROM Lead", include_deleted=True)["records"]) == 2
    assert direct.api_usage["api-usage"].used == 44
    status = {f["name"]: f for f in direct.Lead.describe()["fields"]}["Status"]
    assert [v["value"] for v in status["picklistValues"]] == ["Open - Not Contacted", "Nurture"]
    new_id = direct.Lead.create({"LastName": "After", "Company": "C"})["id"]
    assert new_id not in {lead_id}
    assert direct.Lead.get(new_id)["Name"] == "After"


def test_call_log_names_endpoints(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead()
    sf = salesforce_sandbox.sf
    sf.Lead.get(lead_id)
    sf.Lead.upsert("CrmBridge_Id__c/abc", {"LastName": "L", "Company": "C"})
    sf.Lead.describe()
    sf.query("SELECT Id FROM Lead")
    endpoints = [c.endpoint for c in salesforce_sandbox.calls()]
    assert endpoints == [
        "POST oauth2/token",
        "POST sobjects/Lead",
        "GET sobjects/Lead/{id}",
        "PATCH sobjects/Lead/CrmBridge_Id__c/{value}",
        "GET sobjects/Lead/describe",
        "GET query",
    ]


def test_subprocess_mode_serves_the_same_emulator(tmp_path: Path) -> None:
    with SandboxProcess(
        SalesforceEmulator, options={"query_batch_size": 200}, state_path=tmp_path / "sf.json"
    ) as proc:
        from simple_salesforce import Salesforce

        sf = Salesforce(
            consumer_key="crmbridge-sandbox-key",
            consumer_secret="crmbridge-sandbox-secret",
            domain="crmbridge-sandbox.my",
            session=sandbox_session(proc.url),
        )
        proc.control.control(
            "seed_records",
            object="Lead",
            records=[{"LastName": str(i), "Company": "C"} for i in range(250)],
        )
        assert len(sf.query_all("SELECT Id FROM Lead")["records"]) == 250
        assert proc.control.calls().count("GET query/{locator}") == 1
    assert (tmp_path / "sf.json").exists()
