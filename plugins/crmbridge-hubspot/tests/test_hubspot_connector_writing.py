"""The HubSpot connector's writes through the real SDK against the sandbox: sales' verdicts back
to marketing (batch update, the backwards lifecycle stage, crmbridge's properties), per-record
failures, and HubSpot as the sales system (batch upsert by email, verdicts from hs_lead_status)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from crmbridge_hubspot.connector import HubSpotConnector
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import (
    REASON_PROPERTY,
    add_option,
    connector_for,
    definition_with_reasons,
)

from crmbridge import (
    Cursor,
    LeadWrite,
    MappingError,
    OutcomeBatch,
    OutcomeKind,
    WriteRejected,
)
from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

UPDATE = "POST /crm/v3/objects/contacts/batch/update"
UPSERT = "POST /crm/v3/objects/contacts/batch/upsert"
READ = "POST /crm/v3/objects/contacts/batch/read"


def contact(sandbox: HubSpotSandbox, email: str) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.control.control("get_contact", email=email)
    return found


def seed(sandbox: HubSpotSandbox, *stages: str) -> list[str]:
    rows = [
        {"email": f"w{i}@example.com", "lastname": f"W{i}", "lifecyclestage": stage}
        for i, stage in enumerate(stages)
    ]
    ids: list[str] = sandbox.control.control("seed_contacts", contacts=rows)
    return ids


def ready(sandbox: HubSpotSandbox, **settings: Any) -> HubSpotConnector:
    connector = connector_for(sandbox, **settings)
    connector.setup()
    sandbox.server.call_log.reset()
    return connector


def outcome_write(native_id: str, email: str, **kw: Any) -> LeadWrite:
    return LeadWrite(email=email, crmbridge_id=f"cb-{native_id}", native_id=native_id, **kw)


def test_write_outcomes_writes_stage_status_and_crmbridge_properties(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    [cid] = seed(hubspot_sandbox, "marketingqualifiedlead")
    connector = ready(hubspot_sandbox)
    handed = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    [result] = connector.write_outcomes(
        [
            outcome_write(
                cid,
                "w0@example.com",
                stage="sal",
                outcome=OutcomeKind.ACCEPTED,
                fields={"phone": "+44 20 7946 0000"},
                annotations={
                    "crmbridge_id": "cb-1",
                    "stage": "sal",
                    "score": 72,
                    "why": "score 72 (fit 30, engagement 42)",
                    "handed_off_at": handed,
                    "accepted_at": datetime(2026, 3, 1, 10, 0),
                    "sla_breached": False,
                    "outcome": OutcomeKind.ACCEPTED,
                    "owner": "ava.stone@sandbox-sales.example",
                    "deal_amount": 1200.0,
                    "definition_version": "2026.11.1",
                },
                create=False,
            )
        ]
    )
    assert result.ok, result.error
    assert result.native_id == cid
    assert result.created is False
    props = contact(hubspot_sandbox, "w0@example.com")["properties"]
    assert props["lifecyclestage"] == "salesqualifiedlead"
    assert props["hs_lead_status"] == "IN_PROGRESS"
    assert props["phone"] == "+44 20 7946 0000"
    assert props["crmbridge_id"] == "cb-1"
    assert props["crmbridge_stage"] == "sal"
    assert props["crmbridge_score"] == "72"
    assert props["crmbridge_handed_off_at"] == "2026-03-01T09:30:00.000Z"
    assert props["crmbridge_accepted_at"] == "2026-03-01T10:00:00.000Z"
    assert props["crmbridge_sla_breached"] == "false"
    assert props["crmbridge_outcome"] == "accepted"
    assert props["crmbridge_deal_amount"] == "1200"
    assert props["crmbridge_definition_version"] == "2026.11.1"
    # modified_at is HubSpot's updatedAt, so the core can tell its own write from a person's.
    assert result.modified_at is not None
    assert (
        result.modified_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        == props["lastmodifieddate"]
    )
    assert hubspot_sandbox.calls().by_endpoint() == {UPDATE: 1}


def test_a_backwards_stage_is_cleared_then_set(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, "marketingqualifiedlead", "opportunity", "lead")
    connector = ready(hubspot_sandbox)
    writes = [
        outcome_write(ids[0], "w0@example.com", stage="recycled", stage_backwards=True),
        outcome_write(ids[1], "w1@example.com", stage="recycled", stage_backwards=True),
        outcome_write(ids[2], "w2@example.com", stage="mql"),
    ]
    results = connector.write_outcomes(writes)
    assert [r.ok for r in results] == [True, True, True]
    stages = [contact(hubspot_sandbox, f"w{i}@example.com")["properties"] for i in range(3)]
    assert [p["lifecyclestage"] for p in stages] == ["lead", "lead", "marketingqualifiedlead"]
    # One call clears the two backwards stages, the next writes everything.
    assert hubspot_sandbox.calls().count(UPDATE) == 2
    assert [c.records_in for c in hubspot_sandbox.calls() if c.endpoint == UPDATE] == [2, 3]


def test_hubspot_would_keep_the_later_stage_without_clearing(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    [cid] = seed(hubspot_sandbox, "opportunity")
    hubspot_sandbox.client.crm.contacts.basic_api.update(
        cid, {"properties": {"lifecyclestage": "lead"}}
    )
    assert contact(hubspot_sandbox, "w0@example.com")["properties"]["lifecyclestage"] == (
        "opportunity"
    )


def test_a_backwards_stage_not_flagged_is_seen_in_the_answer_and_written_again(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    [cid] = seed(hubspot_sandbox, "customer")
    connector = ready(hubspot_sandbox)
    [result] = connector.write_outcomes([outcome_write(cid, "w0@example.com", stage="recycled")])
    assert result.ok
    props = contact(hubspot_sandbox, "w0@example.com")["properties"]
    assert props["lifecyclestage"] == "lead"
    assert hubspot_sandbox.calls().count(UPDATE) == 3


def test_a_partial_failure_names_the_record_and_field_and_writes_the_rest(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    ids = seed(hubspot_sandbox, "lead", "lead", "lead")
    connector = ready(hubspot_sandbox)
    writes = [
        outcome_write(ids[0], "w0@example.com", annotations={"score": 10}),
        outcome_write(ids[1], "w1@example.com", annotations={"score": "lots"}),
        outcome_write("999999", "ghost@example.com", annotations={"score": 30}),
        outcome_write(ids[2], "w2@example.com", annotations={"score": 40}),
    ]
    results = connector.write_outcomes(writes)
    assert [r.key for r in results] == [w.key for w in writes]
    assert [r.ok for r in results] == [True, False, False, True]
    bad = results[1].error
    assert isinstance(bad, WriteRejected)
    assert bad.record == "w1@example.com"
    assert bad.field == "crmbridge_score"
    assert bad.code == "INVALID_LONG"
    assert "crmbridge_score" in str(bad)
    assert "lots" in str(bad)
    gone = results[2].error
    assert isinstance(gone, WriteRejected)
    assert gone.record == "ghost@example.com"
    assert gone.field == "hs_object_id"
    assert gone.code == "OBJECT_NOT_FOUND"
    assert contact(hubspot_sandbox, "w0@example.com")["properties"]["crmbridge_score"] == "10"
    assert contact(hubspot_sandbox, "w2@example.com")["properties"]["crmbridge_score"] == "40"
    assert hubspot_sandbox.calls().by_endpoint() == {UPDATE: 1}
    assert {c.status for c in hubspot_sandbox.calls()} == {207}


def test_a_batch_refused_as_a_whole_is_split_until_the_fault_is_found(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    ids = seed(hubspot_sandbox, "lead", "lead", "lead", "lead")
    connector = ready(hubspot_sandbox)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=400, on_calls=(1, 2, 3), path="/batch/update")]
    )
    writes = [
        outcome_write(cid, f"w{i}@example.com", annotations={"score": i})
        for i, cid in enumerate(ids)
    ]
    results = connector.write_outcomes(writes)
    # The whole batch and its first half are refused; the first record alone is refused, the
    # second alone and the second half are written.
    assert [r.ok for r in results] == [False, True, True, True]
    error = results[0].error
    assert isinstance(error, WriteRejected)
    assert error.code == "VALIDATION_ERROR"
    assert [c.records_in for c in hubspot_sandbox.calls()] == [0, 0, 0, 1, 2]


def test_a_partial_fault_fails_only_some_records(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, *["lead"] * 10)
    connector = ready(hubspot_sandbox)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, on_calls=(1,), path="/batch/update", fail_share=0.3)],
        seed=3,
    )
    writes = [
        outcome_write(cid, f"w{i}@example.com", annotations={"score": 5})
        for i, cid in enumerate(ids)
    ]
    results = connector.write_outcomes(writes)
    failed = [r for r in results if not r.ok]
    assert 0 < len(failed) < 10
    assert all(isinstance(r.error, WriteRejected) and r.error.record for r in failed)
    assert hubspot_sandbox.calls().count(UPDATE) == 1


def test_unmappable_values_and_missing_ids_fail_their_record_without_a_call(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    [cid] = seed(hubspot_sandbox, "lead")
    connector = ready(hubspot_sandbox)
    results = connector.write_outcomes(
        [
            outcome_write(cid, "w0@example.com", fields={"lead_source": "carrier_pigeon"}),
            LeadWrite(email="nobody@example.com", crmbridge_id="cb-x", annotations={"score": 1}),
        ]
    )
    assert [r.ok for r in results] == [False, False]
    assert isinstance(results[0].error, MappingError)
    assert results[0].error.field == "lead_source"
    assert isinstance(results[1].error, WriteRejected)
    assert results[1].error.code == "NO_ID"
    assert len(hubspot_sandbox.calls()) == 0


# -- HubSpot as the sales system -----------------------------------------------------------------


def handoffs(count: int, **kw: Any) -> list[LeadWrite]:
    return [
        LeadWrite(
            email=f"lead{i}@prospect-{i % 17}.example",
            crmbridge_id=f"cb-{i:05d}",
            fields={
                "email": f"lead{i}@prospect-{i % 17}.example",
                "first_name": "Grace",
                "last_name": f"Hopper {i}",
                "company": f"Prospect {i % 17}",
                "job_title": "VP Engineering",
                "lead_source": "demo_request",
            },
            stage="mql",
            annotations={"crmbridge_id": f"cb-{i:05d}", "score": 70, "sla_breached": False},
            **kw,
        )
        for i in range(count)
    ]


def test_1000_leads_are_pushed_in_at_most_10_calls(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = ready(hubspot_sandbox)
    writes = handoffs(1000, owner="70002")
    results = connector.push_leads(writes)
    assert len(results) == 1000
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    assert all(r.created is True for r in results)
    calls = hubspot_sandbox.calls()
    assert len(calls) <= 10
    assert calls.by_endpoint() == {UPSERT: 10}
    assert calls.records_in(UPSERT) == 1000
    props = contact(hubspot_sandbox, "lead7@prospect-7.example")["properties"]
    assert props["lifecyclestage"] == "marketingqualifiedlead"
    assert props["hubspot_owner_id"] == "70002"
    assert props["crmbridge_id"] == "cb-00007"
    assert props["company"] == "Prospect 7"
    # Replayed, the same upsert changes nothing and creates nothing.
    before = hubspot_sandbox.emulator.portal.store.live_count()
    again = connector.push_leads(writes)
    assert [r.native_id for r in again] == [r.native_id for r in results]
    assert all(r.ok and r.created is False for r in again)
    assert hubspot_sandbox.emulator.portal.store.live_count() == before


def test_a_handoff_sent_again_after_a_crash_leaves_sales_stage_status_and_owner_alone(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = ready(hubspot_sandbox)
    writes = handoffs(3, owner="70002")
    connector.push_leads(writes[:2])  # crmbridge stopped before recording these answers
    worked = writes[0].email
    hubspot_sandbox.control.control("edit_contact", email=worked, properties={
        "hs_lead_status": "IN_PROGRESS", "lifecyclestage": "salesqualifiedlead",
        "hubspot_owner_id": "70003",
    })  # fmt: skip
    hubspot_sandbox.server.call_log.reset()
    again = connector.push_leads(
        [replace(w, may_exist=True, fields={**w.fields, "job_title": "CTO"}) for w in writes]
    )
    assert all(r.ok for r in again), [str(r.error) for r in again if not r.ok]
    props = contact(hubspot_sandbox, worked)["properties"]
    assert (props["hs_lead_status"], props["lifecyclestage"], props["hubspot_owner_id"]) == (
        "IN_PROGRESS", "salesqualifiedlead", "70003",
    )  # fmt: skip
    assert props["jobtitle"] == "CTO"  # marketing's fields are still crmbridge's to write
    new = contact(hubspot_sandbox, writes[2].email)["properties"]
    assert (new["lifecyclestage"], new["hubspot_owner_id"]) == ("marketingqualifiedlead", "70002")
    assert hubspot_sandbox.calls().by_endpoint() == {READ: 1, UPSERT: 1}


def test_owners_are_given_by_id_or_email(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = ready(hubspot_sandbox)
    owners = ["noah.kim@sandbox-sales.example", "70003", "nobody@nowhere.example"]
    writes = [replace(w, owner=o) for w, o in zip(handoffs(3), owners, strict=True)]
    results = connector.push_leads(writes)
    assert [r.ok for r in results] == [True, True, False]
    error = results[2].error
    assert isinstance(error, WriteRejected)
    assert error.field == "hubspot_owner_id"
    assert "nobody@nowhere.example" in str(error)
    assigned = [
        contact(hubspot_sandbox, w.email)["properties"].get("hubspot_owner_id") for w in writes[:2]
    ]
    assert assigned == ["70002", "70003"]
    assert hubspot_sandbox.calls().count("GET /crm/v3/owners") >= 1


def test_a_push_that_must_not_create_updates_by_id(hubspot_sandbox: HubSpotSandbox) -> None:
    [cid] = seed(hubspot_sandbox, "lead")
    connector = ready(hubspot_sandbox)
    update, missing = (
        LeadWrite(
            email="w0@example.com",
            crmbridge_id="cb-w0",
            native_id=cid,
            annotations={"score": 80},
            create=False,
        ),
        LeadWrite(email="new@example.com", crmbridge_id="cb-new", create=False),
    )
    results = connector.push_leads([update, missing])
    assert results[0].ok
    assert results[0].created is False
    assert results[1].skipped
    assert contact(hubspot_sandbox, "new@example.com") is None
    assert hubspot_sandbox.calls().by_endpoint() == {UPDATE: 1}


def outcomes_of(batches: Iterable[OutcomeBatch]) -> tuple[list[Any], list[Any], Cursor]:
    outcomes: list[Any] = []
    problems: list[Any] = []
    cursor = Cursor()
    for batch in batches:
        outcomes.extend(batch.outcomes)
        problems.extend(batch.problems)
        cursor = batch.cursor
    return outcomes, problems, cursor


@pytest.mark.hubspot_sandbox(properties=[REASON_PROPERTY])
def test_pull_outcomes_reads_verdicts_from_the_lead_status(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = connector_for(hubspot_sandbox, definition=definition_with_reasons())
    connector.setup()
    writes = handoffs(3, owner="70001")
    pushed = connector.push_leads(writes)
    assert all(r.ok for r in pushed)
    outcomes, _problems, cursor = outcomes_of(connector.pull_outcomes(Cursor()))
    assert outcomes == []
    hubspot_sandbox.control.advance_clock(1)
    hubspot_sandbox.control.control(
        "edit_contact",
        email=writes[0].email,
        properties={"hs_lead_status": "UNQUALIFIED", "rejection_reason": "no_budget"},
    )
    hubspot_sandbox.control.control(
        "edit_contact", email=writes[1].email, properties={"hs_lead_status": "IN_PROGRESS"}
    )
    hubspot_sandbox.control.control(
        "edit_contact", email=writes[2].email, properties={"hs_lead_status": "CONNECTED"}
    )
    outcomes, problems, after = outcomes_of(connector.pull_outcomes(cursor))
    by_id = {o.native_id: o for o in outcomes}
    assert problems == []
    rejected = by_id[str(pushed[0].native_id)]
    assert rejected.kind is OutcomeKind.REJECTED
    assert rejected.reason == "no_budget"
    assert rejected.native_value == "UNQUALIFIED"
    assert rejected.email == writes[0].email
    assert rejected.crmbridge_id == writes[0].crmbridge_id
    assert rejected.owner == "ava.stone@sandbox-sales.example"
    assert rejected.occurred_at.tzinfo is not None
    assert by_id[str(pushed[1].native_id)].kind is OutcomeKind.ACCEPTED
    assert str(pushed[2].native_id) not in by_id  # CONNECTED is ignored by the definition
    # Read again, the same verdicts carry the same keys: the core records each once.
    replay, _, _ = outcomes_of(connector.pull_outcomes(after))
    assert {o.key for o in replay} <= {o.key for o in outcomes}


def test_an_unmapped_lead_status_is_a_problem(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = ready(hubspot_sandbox)
    [pushed] = connector.push_leads(handoffs(1))
    add_option(hubspot_sandbox, "hs_lead_status", "ZOMBIE")
    hubspot_sandbox.control.control(
        "edit_contact", email="lead0@prospect-0.example", properties={"hs_lead_status": "ZOMBIE"}
    )
    outcomes, problems, _ = outcomes_of(connector.pull_outcomes(Cursor()))
    assert outcomes == []
    [problem_change] = problems
    assert problem_change.native_id == pushed.native_id
    assert "ZOMBIE" in problem_change.problems[0].message
