"""Handoffs and write-backs: upserts on crmbridge's external id in collections of 200 (1,000
leads in 5 calls), per-record refusals naming the lead and the field, owners by name, existing
leads adopted through the duplicate rule, converted leads skipped, and Bulk API 2.0 from the
threshold on (a 50,000-lead backfill with refused rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import connector_for, default_definition, give_outcome

from crmbridge import Cursor, LeadWrite, OutcomeKind, WriteRejected, WriteResult
from crmbridge.errors import FatalError
from crmbridge.store.store import crmbridge_id_for

pytestmark = pytest.mark.sandbox

Factory = Callable[..., SalesforceSandbox]
UPSERT = "PATCH composite/sobjects/Lead/CrmBridge_Id__c"
MAPPING = default_definition().system("salesforce")


def handoff(email: str, **changes: Any) -> LeadWrite:
    """A handoff as the core builds it."""
    fields = {
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "job_title": "Head of Research",
        "lead_source": "webinar",
    }
    fields.update(changes.pop("fields", {}))
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    annotations = {
        "crmbridge_id": crmbridge_id_for(email),
        "stage": "mql",
        "score": 72,
        "why": "mql: score 72 ≥ 60, fit 35 ≥ 25",
        "handed_off_at": now,
        "sla_due_at": now + timedelta(hours=24),
        "sla_breached": False,
        "definition_version": "2026.11.1",
    }
    annotations.update(changes.pop("annotations", {}))
    return LeadWrite(
        email=email,
        crmbridge_id=crmbridge_id_for(email),
        fields={k: v for k, v in fields.items() if v is not None},
        stage="mql",
        annotations=annotations,
        **changes,
    )


def lead(sandbox: SalesforceSandbox, record_id: str | None) -> dict[str, Any]:
    assert record_id
    found = sandbox.emulator.org.get("Lead", record_id)
    assert found is not None
    return dict(found)


def refusal(result: WriteResult) -> WriteRejected:
    assert not result.ok
    assert isinstance(result.error, WriteRejected)
    return result.error


# -- collections ---------------------------------------------------------------------------------


def test_1000_leads_take_five_calls(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()  # logged in and described once for the connector's life, as the daemon does
    writes = [handoff(f"bulkish.{i}@example.com") for i in range(1000)]
    before = len(salesforce_sandbox.server.call_log)
    results = connector.push_leads(writes)
    calls = salesforce_sandbox.calls(before)
    assert len(calls) == 5
    assert calls.by_endpoint() == {UPSERT: 5}
    assert calls.records_in() == 1000
    assert [r.key for r in results] == [w.key for w in writes]
    assert all(r.ok and r.created for r in results), [str(r.error) for r in results[:3]]
    before = len(salesforce_sandbox.server.call_log)
    again = connector.push_leads(writes)
    assert len(salesforce_sandbox.calls(before)) == 5
    assert [r.native_id for r in again] == [r.native_id for r in results]
    assert not any(r.created for r in again)


def test_a_handoff_writes_fields_stage_owner_and_annotations(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    why = "why " * 10_000
    [result] = connector.push_leads(
        [
            handoff(
                "Ada@Example.com",
                owner="maria.garcia@crmbridge.sandbox",
                annotations={"why": why, "sla_breached": None},
            )
        ]
    )
    assert result.ok
    assert result.created
    record = lead(salesforce_sandbox, result.native_id)
    maria = salesforce_sandbox.emulator.org.user_ids["maria.garcia@crmbridge.sandbox"]
    assert record["Status"] == "Open - Not Contacted"
    assert record["OwnerId"] == maria
    assert record["LeadSource"] == "Webinar"
    assert record["Title"] == "Head of Research"
    assert record["CrmBridge_Id__c"] == crmbridge_id_for("Ada@Example.com")
    assert record["CrmBridge_Score__c"] == 72
    assert record["CrmBridge_Stage__c"] == "mql"
    assert record["CrmBridge_Handoff_At__c"] == "2026-03-02T09:30:00.000+0000"
    assert record["CrmBridge_SLA_Due__c"] == "2026-03-03T09:30:00.000+0000"
    assert record["CrmBridge_SLA_Breached__c"] is False
    assert record["CrmBridge_Definition_Version__c"] == "2026.11.1"
    assert len(record["CrmBridge_Why__c"]) == 32768
    assert record["CrmBridge_Why__c"].endswith("…")


def test_status_is_written_only_when_crmbridge_creates_the_lead(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    [first] = connector.push_leads([handoff("rep@example.com")])
    salesforce_sandbox.control.control(
        "set_lead_status", lead_id=first.native_id, status="Working - Contacted"
    )
    [again] = connector.push_leads([handoff("rep@example.com", native_id=first.native_id)])
    assert again.ok
    assert again.created is False
    assert lead(salesforce_sandbox, first.native_id)["Status"] == "Working - Contacted"


@pytest.mark.parametrize("count", [3, 2_500], ids=["collection", "bulk"])
def test_a_handoff_sent_again_after_a_crash_leaves_sales_status_and_owner_alone(
    salesforce_sandbox: SalesforceSandbox, count: int
) -> None:
    connector = connector_for(salesforce_sandbox)
    emails = [f"resent.{i}@example.com" for i in range(count)]
    sent = connector.push_leads([handoff(e, owner="James Chen") for e in emails[:2]])
    # crmbridge stopped before recording these; meanwhile sales worked the first one.
    maria = salesforce_sandbox.emulator.org.user_ids["maria.garcia@crmbridge.sandbox"]
    salesforce_sandbox.control.control(
        "set_lead_status",
        lead_id=sent[0].native_id,
        status="Closed - Not Converted",
        reason="No Budget",
        owner=maria,
    )
    before = len(salesforce_sandbox.server.call_log)
    again = connector.push_leads(
        [
            handoff(
                e,
                owner="James Chen",
                may_exist=True,
                fields={"job_title": "CTO", "email": e.upper()},
            )
            for e in emails
        ]
    )
    assert all(r.ok for r in again), [r.error for r in again if not r.ok]
    assert [r.native_id for r in again[:2]] == [r.native_id for r in sent]
    assert [r.created for r in again[:3]] == [False, False, True]
    worked = lead(salesforce_sandbox, sent[0].native_id)
    assert (worked["Status"], worked["OwnerId"]) == ("Closed - Not Converted", maria)
    assert worked["Title"] == "CTO"  # marketing's fields are still crmbridge's to write
    assert worked["Email"] == emails[0], "written as an adopted lead is: never its email"
    assert lead(salesforce_sandbox, again[2].native_id)["Status"] == "Open - Not Contacted"
    calls = salesforce_sandbox.server.call_log.snapshot()[before:]
    # The re-sent handoffs are looked up by crmbridge id, a query per 100-200 of them (IN lists
    # are cut by URL size too); then the updates by Id and the writes as usual.
    queries = [c for c in calls if c.endpoint == "GET query"]
    assert -(-count // 200) <= len(queries) <= -(-count // 100)
    others = Counter(c.endpoint for c in calls if c.endpoint != "GET query")
    assert others["PATCH composite/sobjects"] == 1, others
    assert sum(others.values()) <= (2 if count < 2_000 else 10), others
    found = salesforce_sandbox.control.control(
        "query", soql="SELECT Id FROM Lead WHERE Email LIKE 'resent.%'"
    )
    assert len(found) == count, "nothing made twice"


def test_updates_of_linked_leads_go_by_id_and_never_create(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    kept, gone = connector.push_leads([handoff("kept@example.com"), handoff("gone@example.com")])
    salesforce_sandbox.control.control("delete_record", object="Lead", id=gone.native_id)
    updates = [
        LeadWrite(
            email=email,
            crmbridge_id=crmbridge_id_for(email),
            native_id=result.native_id,
            annotations={"score": 90, "sla_breached": True},
            create=False,
        )
        for email, result in (("kept@example.com", kept), ("gone@example.com", gone))
    ]
    before = len(salesforce_sandbox.server.call_log)
    ok, refused = connector.push_leads(updates)
    assert salesforce_sandbox.calls(before).by_endpoint() == {"PATCH composite/sobjects": 1}
    assert ok.ok
    assert ok.created is False
    record = lead(salesforce_sandbox, kept.native_id)
    assert (record["CrmBridge_Score__c"], record["CrmBridge_SLA_Breached__c"]) == (90, True)
    assert refusal(refused).code == "ENTITY_IS_DELETED"
    assert salesforce_sandbox.control.control("find_leads", email="gone@example.com") == []


def test_owners_by_name_are_looked_up_once(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()
    writes = [
        handoff("q1@example.com", owner="Inbound Leads"),
        handoff("q2@example.com", owner="James Chen"),
        handoff("q3@example.com", owner="' OR Name != '"),
    ]
    before = len(salesforce_sandbox.server.call_log)
    results = connector.push_leads(writes)
    org = salesforce_sandbox.emulator.org
    assert (
        lead(salesforce_sandbox, results[0].native_id)["OwnerId"] == org.queue_ids["Inbound Leads"]
    )
    james = org.user_ids["james.chen@crmbridge.sandbox"]
    assert lead(salesforce_sandbox, results[1].native_id)["OwnerId"] == james
    error = refusal(results[2])
    assert error.code == "OWNER_NOT_FOUND"
    assert error.field == "OwnerId"
    assert "no active user (username, email or name) or lead queue is \"' OR Name != '\"" in str(
        error
    )
    assert salesforce_sandbox.calls(before).by_endpoint() == {"GET query": 2, UPSERT: 1}
    before = len(salesforce_sandbox.server.call_log)
    connector.push_leads([handoff("q4@example.com", owner="James Chen")])
    assert salesforce_sandbox.calls(before).by_endpoint() == {UPSERT: 1}


def test_refused_records_fail_alone_and_name_the_lead_and_field(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    writes = [
        handoff("fine.1@example.com"),
        handoff("nocompany@example.com", fields={"company": None}),
        handoff("longtitle@example.com", fields={"job_title": "T" * 129}),
        handoff("not-an-email", fields={"email": "not-an-email"}),
        handoff("unmapped@example.com", fields={"lead_source": "carrier_pigeon"}),
        handoff("fine.2@example.com"),
    ]
    results = connector.push_leads(writes)
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    missing = refusal(results[1])
    assert (missing.code, missing.field, missing.record) == (
        "REQUIRED_FIELD_MISSING",
        "Company",
        "nocompany@example.com",
    )
    assert str(missing).startswith(
        "plugin crmbridge-salesforce; system salesforce: Salesforce refused lead "
        "nocompany@example.com (crmbridge id "
    )
    assert "on Lead.Company: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]" in (
        str(missing)
    )
    too_long = refusal(results[2])
    assert (too_long.code, too_long.field) == ("STRING_TOO_LONG", "Title")
    assert refusal(results[3]).code == "INVALID_EMAIL_ADDRESS"
    unmapped = refusal(results[4])
    assert unmapped.code == "MAPPING_ERROR"
    assert "has no value written for value 'carrier_pigeon'" in str(unmapped)


def test_a_restricted_picklist_value_the_org_dropped_fails_only_the_new_leads(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    existing = connector.push_leads([handoff(f"old.{i}@example.com") for i in range(2)])
    salesforce_sandbox.control.control(
        "set_picklist",
        field="Lead.Status",
        values=[
            {"value": "Open - Not Contacted", "active": False},
            {"value": "Working - Contacted", "default": True},
            "Closed - Converted",
            "Closed - Not Converted",
        ],
    )
    writes = [
        handoff(f"old.{i}@example.com", native_id=r.native_id) for i, r in enumerate(existing)
    ]
    results = connector.push_leads([*writes, handoff("new@example.com")])
    assert [r.ok for r in results] == [True, True, False]
    error = refusal(results[2])
    assert (error.code, error.field) == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status")
    assert "bad value for restricted picklist field: Open - Not Contacted" in str(error)


def test_partial_lock_failures_are_per_record(salesforce_sandbox: SalesforceSandbox) -> None:
    from crmbridge.testing.sandbox import FaultKind, FaultRule

    connector = connector_for(salesforce_sandbox)
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, probability=1.0, times=1, path="/composite/")]
    )
    results = connector.push_leads([handoff(f"lock.{i}@example.com") for i in range(20)])
    failed = [r for r in results if not r.ok]
    assert 0 < len(failed) < 20
    assert {refusal(r).code for r in failed} == {"UNABLE_TO_LOCK_ROW"}


# -- leads crmbridge did not make ---------------------------------------------------------------


@pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True)
def test_an_existing_lead_with_the_same_email_is_adopted(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    org = salesforce_sandbox.emulator.org
    maria = org.user_ids["maria.garcia@crmbridge.sandbox"]
    [existing] = salesforce_sandbox.control.control(
        "seed_records",
        object="Lead",
        records=[
            {
                "LastName": "Lovelace", "Company": "Old Co", "Email": "ADA@example.com",
                "Phone": "+1 555 0100", "Status": "Working - Contacted", "OwnerId": maria,
            }
        ],
    )["ids"]  # fmt: skip
    connector = connector_for(salesforce_sandbox)
    connector.check()
    write = handoff("ada@example.com", fields={"phone": "+49 30 1234"}, owner="James Chen")
    before = len(salesforce_sandbox.server.call_log)
    [result] = connector.push_leads([write])
    assert result.ok
    assert (result.native_id, result.created) == (existing, False)
    endpoints = salesforce_sandbox.calls(before).by_endpoint()
    assert endpoints == {"GET query": 2, UPSERT: 1, "PATCH composite/sobjects": 1}
    record = lead(salesforce_sandbox, existing)
    assert record["CrmBridge_Id__c"] == write.crmbridge_id
    assert record["Company"] == "Analytical Engines"  # marketing's field
    assert record["Phone"] == "+1 555 0100"  # sales' field, never overwritten
    assert record["Status"] == "Working - Contacted"
    assert record["OwnerId"] == maria
    assert record["CrmBridge_Score__c"] == 72
    assert len(salesforce_sandbox.control.control("find_leads", email="ada@example.com")) == 1
    before = len(salesforce_sandbox.server.call_log)
    [again] = connector.push_leads([write])
    assert again.native_id == existing
    assert salesforce_sandbox.calls(before).by_endpoint() == {UPSERT: 1}


@pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True)
def test_two_matching_leads_are_not_guessed_between(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ids = salesforce_sandbox.control.control(
        "seed_records",
        object="Lead",
        records=[
            {"LastName": "A", "Company": "X", "Email": "twice@example.com"},
            {"LastName": "B", "Company": "Y", "Email": "twice@example.com"},
        ],
        validate=False,
    )["ids"]
    [result] = connector_for(salesforce_sandbox).push_leads([handoff("twice@example.com")])
    error = refusal(result)
    assert error.code == "DUPLICATES_DETECTED"
    assert error.field == "Email"
    assert f"the org's duplicate rule matches {ids[0]}, {ids[1]}" in str(error)


@pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True)
def test_bulk_writes_adopt_duplicates_by_email(salesforce_sandbox: SalesforceSandbox) -> None:
    [existing] = salesforce_sandbox.control.control(
        "seed_records",
        object="Lead",
        records=[{"LastName": "L", "Company": "Old", "Email": "bulkdup@example.com"}],
    )["ids"]
    connector = connector_for(salesforce_sandbox, bulk_threshold=3)
    results = connector.push_leads(
        [
            handoff("bulk.a@example.com"),
            handoff("bulkdup@example.com"),
            handoff("bulk.b@example.com"),
        ]
    )
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert results[1].native_id == existing
    assert results[1].created is False
    assert lead(salesforce_sandbox, existing)["CrmBridge_Id__c"] == crmbridge_id_for(
        "bulkdup@example.com"
    )


def test_a_converted_lead_is_never_updated(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox)
    [pushed] = connector.push_leads([handoff("converted@example.com")])
    assert pushed.native_id
    converted = give_outcome(salesforce_sandbox, MAPPING, pushed.native_id, OutcomeKind.CONVERTED)
    before = len(salesforce_sandbox.server.call_log)
    [result] = connector.push_leads([handoff("converted@example.com")])
    assert result.ok
    assert result.native_id == pushed.native_id
    assert result.skipped == (
        f"converted to contact {converted['contact_id']} / opportunity "
        f"{converted['opportunity_id']}; crmbridge follows those, not lead {pushed.native_id}"
    )
    # Refused once, then looked up once; from then on known without asking.
    assert salesforce_sandbox.calls(before).by_endpoint() == {UPSERT: 1, "GET query": 1}
    before = len(salesforce_sandbox.server.call_log)
    [again] = connector.push_leads([handoff("converted@example.com")])
    assert again.skipped == result.skipped
    assert len(salesforce_sandbox.calls(before)) == 0
    [written_back] = connector.write_outcomes(
        [handoff("converted@example.com", native_id=pushed.native_id, create=False)]
    )
    assert written_back.skipped == result.skipped


def test_converted_leads_read_by_pull_outcomes_are_skipped_without_a_call(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    [pushed] = connector.push_leads([handoff("seen@example.com")])
    assert pushed.native_id
    give_outcome(salesforce_sandbox, MAPPING, pushed.native_id, OutcomeKind.CONVERTED)
    for _batch in connector.pull_outcomes(Cursor()):
        pass
    before = len(salesforce_sandbox.server.call_log)
    [result] = connector.push_leads([handoff("seen@example.com")])
    assert result.skipped
    assert result.skipped.startswith("converted to contact 003")
    assert len(salesforce_sandbox.calls(before)) == 0


# -- write-back to Leads (Salesforce as the marketing side) -------------------------------------


def test_write_outcomes_shows_the_verdict_in_status_and_reason(
    salesforce_sandbox: SalesforceSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    connector = connector_for(salesforce_sandbox)
    [pushed] = connector.push_leads([handoff("mkt@example.com")])
    write = LeadWrite(
        email="mkt@example.com",
        crmbridge_id=crmbridge_id_for("mkt@example.com"),
        native_id=pushed.native_id,
        stage="recycled",
        outcome=OutcomeKind.REJECTED,
        annotations={"outcome": OutcomeKind.REJECTED, "outcome_reason": "Bad timing", "score": 5},
        create=False,
    )
    with caplog.at_level("WARNING"):
        [result] = connector.write_outcomes([write])
    assert result.ok
    record = lead(salesforce_sandbox, pushed.native_id)
    assert (record["Status"], record["Rejection_Reason__c"]) == (
        "Closed - Not Converted",
        "Bad Timing",
    )
    assert record["CrmBridge_Score__c"] == 5
    assert "not writing outcome: the org has no Lead.CrmBridge_Outcome__c" in caplog.text
    [converted] = connector.write_outcomes(
        [LeadWrite(email="mkt@example.com", crmbridge_id=write.crmbridge_id,
                   native_id=pushed.native_id, outcome=OutcomeKind.CONVERTED, create=False)]
    )  # fmt: skip
    assert converted.ok
    # Only converting a lead sets a converted status; crmbridge leaves Status alone.
    assert lead(salesforce_sandbox, pushed.native_id)["Status"] == "Closed - Not Converted"


# -- Bulk API 2.0 ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_backfill_of_50000_leads_goes_through_bulk_with_per_record_failures(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()
    writes = []
    for i in range(50_000):
        changes: dict[str, Any] = {}
        if i % 5000 == 1:
            changes = {"fields": {"company": None}}
        elif i % 5000 == 2:
            changes = {"fields": {"job_title": "T" * 200}}
        writes.append(handoff(f"backfill.{i}@example.com", **changes))
    before = len(salesforce_sandbox.server.call_log)
    results = connector.push_leads(writes)
    calls = salesforce_sandbox.calls(before).by_endpoint()
    assert calls["POST jobs/ingest"] == 1
    assert calls["PUT jobs/ingest/{id}/batches"] == 1
    assert UPSERT not in calls
    assert len(results) == 50_000
    assert [r.key for r in results] == [w.key for w in writes]
    failed = {i: r for i, r in enumerate(results) if not r.ok}
    assert sorted(failed) == sorted(i for i in range(50_000) if i % 5000 in (1, 2))
    company = refusal(failed[1])
    assert (company.code, company.field, company.record) == (
        "REQUIRED_FIELD_MISSING", "Company", "backfill.1@example.com",
    )  # fmt: skip
    assert "on Lead.Company: REQUIRED_FIELD_MISSING" in str(company)
    assert refusal(failed[2]).code == "STRING_TOO_LONG"
    assert all(r.created and r.native_id for r in results if r.ok)
    assert salesforce_sandbox.emulator.org.stores["Lead"].key_indexes["CrmBridge_Id__c"].get(
        crmbridge_id_for("backfill.49999@example.com")
    ) == {results[-1].native_id}


@pytest.mark.salesforce_sandbox(bulk_job_delay_seconds=0.0)
def test_a_bulk_job_done_before_its_first_poll_costs_five_calls(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()
    before = len(salesforce_sandbox.server.call_log)
    results = connector.push_leads([handoff(f"five.{i}@example.com") for i in range(2_500)])
    assert all(r.ok and r.created for r in results)
    assert salesforce_sandbox.calls(before).by_endpoint() == {
        "POST jobs/ingest": 1,
        "PUT jobs/ingest/{id}/batches": 1,
        "PATCH jobs/ingest/{id}": 1,
        "GET jobs/ingest/{id}": 1,  # the poll's answer is the job's summary: no second read
        "GET jobs/ingest/{id}/successfulResults": 1,  # no failures: their results are not read
    }


@pytest.mark.salesforce_sandbox(bulk_job_delay_seconds=0.3)
def test_a_slow_bulk_job_is_polled_less_and_less_often(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox, bulk_poll_seconds=0.05)
    connector.check()
    before = len(salesforce_sandbox.server.call_log)
    results = connector.push_leads([handoff(f"slow.{i}@example.com") for i in range(2_500)])
    assert all(r.ok for r in results)
    polls = salesforce_sandbox.calls(before).by_endpoint()["GET jobs/ingest/{id}"]
    # Waits of 0.05, 0.075, 0.11, 0.17 s reach the job's 0.3 s by the fourth poll at the latest;
    # polling every 0.05 s would take six.
    assert 2 <= polls <= 4


@pytest.mark.salesforce_sandbox(bulk_job_delay_seconds=30.0)
def test_a_bulk_job_that_outlives_its_timeout_is_aborted_and_named(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(
        salesforce_sandbox, bulk_poll_seconds=0.05, bulk_job_timeout_seconds=0.2
    )
    connector.check()
    stuck = r"upsert of 2500 Lead records: .*bulk job \w+ still InProgress after 0.2 s"
    with pytest.raises(FatalError, match=stuck):
        connector.push_leads([handoff(f"stuck.{i}@example.com") for i in range(2_500)])
    jobs = salesforce_sandbox.sf.restful("jobs/ingest")["records"]
    assert [job["state"] for job in jobs] == ["Aborted"]
