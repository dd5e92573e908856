"""sObject Collections through ``sf.restful``: per-record results, allOrNone, limits, faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
    "fields": [],
}


def _lead(**fields: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Lead"}, **fields}


def _post(sandbox: SalesforceSandbox, records: list[dict[str, Any]], **kw: Any) -> Any:
    body = {"allOrNone": kw.pop("all_or_none", False), "records": records}
    return sandbox.sf.restful("composite/sobjects", method="POST", json=body, **kw)


def test_create_mixed_types_with_a_failing_record(salesforce_sandbox: SalesforceSandbox) -> None:
    results = _post(
        salesforce_sandbox,
        [
            _lead(LastName="One", Company="C"),
            _lead(Company="No last name"),
            {"attributes": {"type": "Account"}, "Name": "Acme"},
        ],
    )
    assert results[0]["success"] is True
    assert results[0]["id"].startswith("00Q")
    assert results[1] == {
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert results[2]["id"].startswith("001")
    log = salesforce_sandbox.calls()
    assert log.count("POST composite/sobjects") == 1
    assert log.records_in("POST composite/sobjects") == 3


def test_all_or_none_rolls_everything_back(salesforce_sandbox: SalesforceSandbox) -> None:
    results = _post(
        salesforce_sandbox,
        [
            _lead(LastName="A", Company="C", CrmBridge_Id__c="a"),
            _lead(LastName="B", Status="Bogus"),
        ],
        all_or_none=True,
    )
    assert results[0] == {"success": False, "errors": [ROLLED_BACK]}
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert salesforce_sandbox.sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    assert (
        salesforce_sandbox.emulator.org.stores["Lead"].key_indexes["CrmBridge_Id__c"].get("a")
        == set()
    )


def test_update_with_per_record_errors_and_all_or_none(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    first, second = new_lead(), new_lead()
    sf = salesforce_sandbox.sf
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                _lead(Id=first, Title="Updated"),
                _lead(Id=second, Status="Nope"),
                _lead(Title="No id"),
                _lead(Id="003Dn0000000001IAA", Title="Wrong type"),
            ]
        },
    )
    assert results[0] == {"id": first, "success": True, "errors": []}
    assert results[1]["id"] == second
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[2]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert results[3]["errors"][0]["statusCode"] == "MALFORMED_ID"
    assert sf.Lead.get(first)["Title"] == "Updated"
    rolled = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": True,
            "records": [_lead(Id=first, Title="Again"), _lead(Id=second, LastName=None)],
        },
    )
    assert rolled[0] == {"id": first, "success": False, "errors": [ROLLED_BACK]}
    assert rolled[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sf.Lead.get(first)["Title"] == "Updated"


def test_upsert_collection_by_external_id(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    sf.Lead.upsert("CrmBridge_Id__c/existing", {"LastName": "E", "Company": "C"})
    results = sf.restful(
        "composite/sobjects/Lead/CrmBridge_Id__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                _lead(CrmBridge_Id__c="EXISTING", Title="Matched case-insensitively"),
                _lead(CrmBridge_Id__c="new-1", LastName="N", Company="C"),
                _lead(CrmBridge_Id__c="dup", LastName="D", Company="C"),
                _lead(CrmBridge_Id__c="dup", LastName="D", Company="C"),
                _lead(LastName="No key", Company="C"),
            ],
        },
    )
    assert [r.get("created") for r in results[:2]] == [False, True]
    assert all(r["success"] for r in results[:2])
    assert [r["errors"][0]["statusCode"] for r in results[2:]] == [
        "DUPLICATE_VALUE",
        "DUPLICATE_VALUE",
        "MISSING_ARGUMENT",
    ]
    assert sf.Lead.get_by_custom_id("CrmBridge_Id__c", "existing")["Title"] == (
        "Matched case-insensitively"
    )
    with pytest.raises(SalesforceMalformedRequest) as not_external:
        sf.restful("composite/sobjects/Lead/Email", method="PATCH", json={"records": []})
    assert not_external.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_retrieve_and_delete(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    first, second, third = new_lead(Title="T1"), new_lead(), new_lead()
    sf = salesforce_sandbox.sf
    sf.Lead.delete(third)
    rows = sf.restful(
        "composite/sobjects/Lead",
        params={"ids": f"{first},{second[:15]},{third}", "fields": "Id,Title,email"},
    )
    assert rows[0] == {
        "attributes": {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{first}"},
        "Id": first,
        "Title": "T1",
        "Email": rows[0]["Email"],
    }
    assert rows[1]["Id"] == second
    assert rows[2] is None
    posted = sf.restful(
        "composite/sobjects/Lead", method="POST", json={"ids": [first], "fields": ["Title"]}
    )
    assert posted[0]["Title"] == "T1"
    results = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": f"{first},{third},garbage", "allOrNone": "false"},
    )
    assert results[0] == {"id": first, "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    assert results[2]["errors"][0]["statusCode"] == "MALFORMED_ID"
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_FIELD"):
        sf.restful("composite/sobjects/Lead", params={"ids": second, "fields": "Nope"})


def test_more_than_200_records_is_refused(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        _post(salesforce_sandbox, [_lead(LastName=str(i), Company="C") for i in range(201)])
    assert error.value.content == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    assert (
        len(_post(salesforce_sandbox, [_lead(LastName=str(i), Company="C") for i in range(200)]))
        == 200
    )


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([{"LastName": "No type"}], "INVALID_TYPE"),
        ([{"attributes": {"type": "Widget__c"}, "Name": "x"}], "INVALID_TYPE"),
        ([_lead(LastName="L", Company="C", Nope__c=1)], "INVALID_FIELD"),
        ([_lead(LastName="L", Company="C", NumberOfEmployees=[1])], "JSON_PARSER_ERROR"),
    ],
)
def test_malformed_collections_fail_as_a_whole(
    salesforce_sandbox: SalesforceSandbox, records: list[dict[str, Any]], code: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        _post(salesforce_sandbox, records)
    assert error.value.content[0]["errorCode"] == code
    assert salesforce_sandbox.sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_partial_fault_locks_some_records(salesforce_sandbox: SalesforceSandbox) -> None:
    salesforce_sandbox.control.set_faults(
        [FaultRule(kind=FaultKind.PARTIAL, probability=1.0, fail_share=0.3, path="composite")],
        seed=11,
    )
    results = _post(salesforce_sandbox, [_lead(LastName=str(i), Company="C") for i in range(20)])
    failed = [r for r in results if not r["success"]]
    assert 0 < len(failed) < 20
    assert {r["errors"][0]["statusCode"] for r in failed} == {"UNABLE_TO_LOCK_ROW"}
    salesforce_sandbox.control.clear_faults()
    count = salesforce_sandbox.sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    assert count == 20 - len(failed)
