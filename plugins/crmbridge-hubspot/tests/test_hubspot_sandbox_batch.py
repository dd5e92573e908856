"""The contacts batch API through the real SDK: 100-input limit, all-or-nothing, multi-status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectId,
)

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox


def batch(sandbox: HubSpotSandbox) -> Any:
    return sandbox.client.crm.contacts.batch_api


def create_batch(sandbox: HubSpotSandbox, inputs: list[dict[str, Any]]) -> Any:
    body = BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)
    return batch(sandbox).create(batch_input_simple_public_object_batch_input_for_create=body)


def upsert_batch(sandbox: HubSpotSandbox, inputs: list[dict[str, Any]]) -> Any:
    body = BatchInputSimplePublicObjectBatchInputUpsert(inputs=inputs)
    return batch(sandbox).upsert(batch_input_simple_public_object_batch_input_upsert=body)


def update_batch(sandbox: HubSpotSandbox, inputs: list[dict[str, Any]]) -> Any:
    body = BatchInputSimplePublicObjectBatchInput(inputs=inputs)
    return batch(sandbox).update(batch_input_simple_public_object_batch_input=body)


def read_batch(sandbox: HubSpotSandbox, ids: list[str], **kw: Any) -> Any:
    body = BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=i) for i in ids], properties=["email", "firstname"], **kw
    )
    return batch(sandbox).read(batch_read_input_simple_public_object_id=body)


def seed(sandbox: HubSpotSandbox, count: int) -> list[str]:
    contacts = [{"email": f"p{i}@example.com", "firstname": f"P{i}"} for i in range(count)]
    ids: list[str] = sandbox.control.control("seed_contacts", contacts=contacts)
    return ids


def test_batch_read_by_id_and_email_with_207_for_unknown_ids(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    ids = seed(hubspot_sandbox, 3)
    full = read_batch(hubspot_sandbox, ids)
    assert sorted(r.id for r in full.results) == sorted(ids)
    assert hubspot_sandbox.calls().snapshot()[-1].status == 200
    partial = read_batch(hubspot_sandbox, [ids[0], "999999", "888888"])
    assert hubspot_sandbox.calls().snapshot()[-1].status == 207
    assert [r.id for r in partial.results] == [ids[0]]
    assert partial.num_errors == 1
    error = partial.errors[0]
    assert error.category == "OBJECT_NOT_FOUND"
    assert error.context == {"ids": ["999999", "888888"]}
    by_email = read_batch(hubspot_sandbox, ["P1@EXAMPLE.COM"], id_property="email")
    assert [r.id for r in by_email.results] == [ids[1]]


def test_batch_create_is_all_or_nothing_on_a_duplicate(hubspot_sandbox: HubSpotSandbox) -> None:
    (existing,) = seed(hubspot_sandbox, 1)
    inputs = [
        {"properties": {"email": "new1@example.com"}},
        {"properties": {"email": "p0@example.com"}},
        {"properties": {"email": "new2@example.com"}},
    ]
    with pytest.raises(ApiException) as exc:
        create_batch(hubspot_sandbox, inputs)
    body = json.loads(exc.value.body)
    assert exc.value.status == 409
    assert body["message"] == f"Contact already exists. Existing ID: {existing}"
    assert hubspot_sandbox.control.control("get_contact", email="new1@example.com") is None


def test_batch_create_with_trace_ids_is_multi_status(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 1)
    inputs = [
        {"properties": {"email": "new1@example.com"}, "objectWriteTraceId": "t1"},
        {"properties": {"email": "p0@example.com"}, "objectWriteTraceId": "t2"},
        {"properties": {"email": "bad@", "firstname": "X"}, "objectWriteTraceId": "t3"},
        {"properties": {"email": "new2@example.com"}, "objectWriteTraceId": "t4"},
    ]
    result = create_batch(hubspot_sandbox, inputs)
    assert hubspot_sandbox.calls().snapshot()[-1].status == 207
    assert sorted(r.object_write_trace_id for r in result.results) == ["t1", "t4"]
    assert result.num_errors == 2
    categories = {e.context["objectWriteTraceId"][0]: e.category for e in result.errors}
    assert categories == {"t2": "CONFLICT", "t3": "VALIDATION_ERROR"}


def test_batch_create_without_conflicts_answers_201(hubspot_sandbox: HubSpotSandbox) -> None:
    inputs = [{"properties": {"email": f"n{i}@example.com"}} for i in range(100)]
    result = create_batch(hubspot_sandbox, inputs)
    assert len(result.results) == 100
    assert result.status == "COMPLETE"
    call = hubspot_sandbox.calls().snapshot()[-1]
    assert (call.status, call.records_in, call.records_out) == (201, 100, 100)


def test_more_than_100_inputs_are_refused(hubspot_sandbox: HubSpotSandbox) -> None:
    inputs = [{"properties": {"email": f"n{i}@example.com"}} for i in range(101)]
    with pytest.raises(ApiException) as exc:
        create_batch(hubspot_sandbox, inputs)
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["category"] == "VALIDATION_ERROR"
    with pytest.raises(ApiException):
        read_batch(hubspot_sandbox, [str(i) for i in range(101)])


def test_upsert_by_email_says_which_records_are_new(hubspot_sandbox: HubSpotSandbox) -> None:
    (existing,) = seed(hubspot_sandbox, 1)
    result = upsert_batch(
        hubspot_sandbox,
        [
            {"id": "P0@example.com", "idProperty": "email", "properties": {"lastname": "Old"}},
            {"id": "fresh@example.com", "idProperty": "email", "properties": {"lastname": "New"}},
        ],
    )
    assert hubspot_sandbox.calls().snapshot()[-1].status == 200
    flags = {r.properties["lastname"]: (r.id, r.new) for r in result.results}
    assert flags["Old"] == (existing, False)
    assert flags["New"][1] is True
    fresh = hubspot_sandbox.control.control("get_contact", email="fresh@example.com")
    assert fresh["properties"]["email"] == "fresh@example.com"


def test_upsert_replay_changes_nothing(hubspot_sandbox: HubSpotSandbox) -> None:
    inputs = [{"id": "r@example.com", "idProperty": "email", "properties": {"firstname": "R"}}]
    first = upsert_batch(hubspot_sandbox, inputs).results[0]
    hubspot_sandbox.control.advance_clock(10)
    again = upsert_batch(hubspot_sandbox, inputs).results[0]
    assert (again.id, again.new) == (first.id, False)
    assert again.updated_at == first.updated_at


def test_upsert_keeps_the_lifecycle_rule(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control(
        "seed_contacts", contacts=[{"email": "c@example.com", "lifecyclestage": "customer"}]
    )
    result = upsert_batch(
        hubspot_sandbox,
        [{"id": "c@example.com", "idProperty": "email", "properties": {"lifecyclestage": "lead"}}],
    )
    assert result.results[0].properties["lifecyclestage"] == "customer"


def test_upsert_multi_status_reports_invalid_inputs(hubspot_sandbox: HubSpotSandbox) -> None:
    result = upsert_batch(
        hubspot_sandbox,
        [
            {"id": "a@example.com", "idProperty": "email", "properties": {},
             "objectWriteTraceId": "a"},
            {"id": "b@example.com", "idProperty": "email",
             "properties": {"lead_source": "carrier_pigeon"}, "objectWriteTraceId": "b"},
        ],
    )  # fmt: skip
    assert hubspot_sandbox.calls().snapshot()[-1].status == 207
    assert [r.id for r in result.results] != []
    assert result.errors[0].context == {"objectWriteTraceId": ["b"]}
    assert "INVALID_OPTION" in result.errors[0].message
    with pytest.raises(ApiException) as exc:
        upsert_batch(
            hubspot_sandbox,
            [{"id": "c@example.com", "idProperty": "email", "properties": {"nope": "x"}}],
        )
    assert exc.value.status == 400


def test_batch_update_by_id_with_207_for_unknown_ids(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, 2)
    result = update_batch(
        hubspot_sandbox,
        [
            {"id": ids[0], "properties": {"jobtitle": "CTO"}},
            {"id": "424242", "properties": {"jobtitle": "CEO"}},
        ],
    )
    assert hubspot_sandbox.calls().snapshot()[-1].status == 207
    assert [(r.id, r.properties["jobtitle"]) for r in result.results] == [(ids[0], "CTO")]
    assert result.errors[0].category == "OBJECT_NOT_FOUND"
    assert result.errors[0].context == {"ids": ["424242"]}


def test_batch_update_by_email_is_refused_as_hubspot_does(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 1)
    with pytest.raises(ApiException) as exc:
        update_batch(
            hubspot_sandbox,
            [{"id": "p0@example.com", "idProperty": "email", "properties": {"jobtitle": "CTO"}}],
        )
    assert exc.value.status == 400
    assert "non-unique" in json.loads(exc.value.body)["message"]


def test_batch_update_by_a_unique_custom_property(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.client.crm.properties.core_api.create(
        "contacts",
        property_create={
            "name": "crmbridge_lead_id", "label": "crmbridge lead id", "type": "string",
            "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": True,
        },
    )  # fmt: skip
    hubspot_sandbox.control.control(
        "seed_contacts", contacts=[{"email": "u@example.com", "crmbridge_lead_id": "L-1"}]
    )
    result = update_batch(
        hubspot_sandbox,
        [{"id": "L-1", "idProperty": "crmbridge_lead_id", "properties": {"firstname": "U"}}],
    )
    assert result.results[0].properties["firstname"] == "U"
    with pytest.raises(ApiException) as exc:
        create_batch(
            hubspot_sandbox,
            [{"properties": {"email": "v@example.com", "crmbridge_lead_id": "L-1"}}],
        )
    assert exc.value.status == 409


def test_partial_fault_fails_a_seeded_share_with_207(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, on_calls=(1,), path="batch/upsert", fail_share=0.3)],
        seed=5,
    )
    inputs = [
        {"id": f"f{i}@example.com", "idProperty": "email", "properties": {"firstname": "F"}}
        for i in range(20)
    ]
    result = upsert_batch(hubspot_sandbox, inputs)
    assert hubspot_sandbox.calls().snapshot()[-1].fault == "partial"
    assert 0 < result.num_errors < 20
    assert len(result.results) + result.num_errors == 20
    assert {e.category for e in result.errors} == {"INTERNAL_ERROR"}
    written = {r.properties["email"] for r in result.results}
    missing = [i for i in inputs if i["id"] not in written]
    assert hubspot_sandbox.control.control("get_contact", email=missing[0]["id"]) is None
    retried = upsert_batch(hubspot_sandbox, missing)
    assert all(r.new for r in retried.results)


def test_batch_archive_answers_204_and_ignores_unknown_ids(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    ids = seed(hubspot_sandbox, 3)
    body = BatchInputSimplePublicObjectId(inputs=[{"id": ids[0]}, {"id": "123456"}])
    batch(hubspot_sandbox).archive(batch_input_simple_public_object_id=body)
    assert hubspot_sandbox.calls().snapshot()[-1].status == 204
    remaining = hubspot_sandbox.client.crm.contacts.basic_api.get_page().results
    assert sorted(c.id for c in remaining) == sorted(ids[1:])
