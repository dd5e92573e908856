"""sObject REST resources through simple-salesforce: CRUD, upsert, validation, describe."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.sandbox.ids import canonical_id, case_safe_suffix, make_id
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_external_id

pytestmark = pytest.mark.sandbox

STAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000"


def _error(exc: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    [entry] = exc.value.content
    return dict(entry)


def test_ids_are_18_characters_with_a_case_safe_suffix() -> None:
    assert case_safe_suffix("001A0000006Vm9r") == "IAC"
    assert case_safe_suffix("00Q000000000000") == "EAA"
    assert canonical_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert canonical_id("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert canonical_id("001A0000006Vm9riac") == "001A0000006Vm9rIAC"
    assert canonical_id("001A0000006Vm9rAAA") is None
    assert canonical_id("not an id") is None
    assert make_id("00Q", 1) == "00QDn0000000001MAA"


def test_create_get_update_delete(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    created = sf.Lead.create(
        {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Engines", "Email": " ada@x.io "}
    )
    assert set(created) == {"id", "success", "errors"}
    lead_id = created["id"]
    assert lead_id.startswith("00Q")
    assert len(lead_id) == 18
    assert lead_id[15:] == case_safe_suffix(lead_id[:15])
    lead = sf.Lead.get(lead_id)
    assert lead["attributes"] == {
        "type": "Lead",
        "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}",
    }
    assert (lead["Name"], lead["Email"], lead["Status"]) == (
        "Ada Lovelace",
        "ada@x.io",
        "Open - Not Contacted",
    )
    assert lead["IsConverted"] is False
    assert lead["Title"] is None
    assert lead["CreatedDate"] == lead["SystemModstamp"]
    assert __import__("re").fullmatch(STAMP, lead["CreatedDate"])
    assert sf.Lead.get(lead_id[:15])["Id"] == lead_id
    salesforce_sandbox.control.advance_clock(60)
    assert sf.Lead.update(lead_id, {"Title": "Countess", "FirstName": None}) == 204
    updated = sf.Lead.get(lead_id)
    assert (updated["Title"], updated["FirstName"], updated["Name"]) == (
        "Countess",
        None,
        "Lovelace",
    )
    assert updated["SystemModstamp"] > lead["SystemModstamp"]
    assert updated["CreatedDate"] == lead["CreatedDate"]
    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        sf.Lead.get(lead_id)
    assert _error(gone) == {
        "message": "The requested resource does not exist",
        "errorCode": "NOT_FOUND",
    }
    with pytest.raises(SalesforceResourceNotFound) as deleted:
        sf.Lead.update(lead_id, {"Title": "x"})
    assert _error(deleted)["errorCode"] == "ENTITY_IS_DELETED"


def test_get_with_selected_fields(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    lead_id = sf.Lead.create({"LastName": "F", "Company": "C"})["id"]
    assert list(sf.Lead.get(lead_id, params={"fields": "Company,lastname"})) == [
        "attributes",
        "Id",
        "Company",
        "LastName",
    ]


def test_upsert_by_external_id(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    key = format_external_id("CrmBridge_Id__c", "lead/ä 1")
    created = sf.Lead.upsert(key, {"LastName": "Up", "Company": "Sert"}, raw_response=True)
    assert created.status_code == 201
    body = created.json()
    assert body == {"id": body["id"], "success": True, "errors": [], "created": True}
    again = sf.Lead.upsert(key, {"Title": "Second"}, raw_response=True)
    assert again.status_code == 200
    assert again.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    fetched = sf.Lead.get_by_custom_id("CrmBridge_Id__c", "lead/ä 1")
    assert (fetched["Id"], fetched["Title"], fetched["CrmBridge_Id__c"]) == (
        body["id"],
        "Second",
        "lead/ä 1",
    )
    assert sf.Lead.get_by_custom_id("CrmBridge_Id__c", "LEAD/Ä 1")["Id"] == body["id"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.upsert("CrmBridge_Id__c/missing?updateOnly=true", {"LastName": "N", "Company": "C"})
    with pytest.raises(SalesforceResourceNotFound) as not_external:
        sf.Lead.upsert("Company/Acme", {"LastName": "N"})
    assert "Provided external ID field does not exist" in _error(not_external)["message"]


def test_upsert_matching_several_records_answers_300(salesforce_sandbox: SalesforceSandbox) -> None:
    twins = [{"LastName": f"Twin{i}", "Company": "C", "CrmBridge_Id__c": "same"} for i in range(2)]
    ids = salesforce_sandbox.control.control(
        "seed_records", object="Lead", records=twins, validate=False
    )["ids"]
    sf = salesforce_sandbox.sf
    with pytest.raises(SalesforceMoreThanOneRecord) as ambiguous:
        sf.Lead.upsert("CrmBridge_Id__c/SAME", {"Title": "Which?"})
    assert ambiguous.value.status == 300
    assert ambiguous.value.content == [
        f"/services/data/v59.0/sobjects/Lead/{i}" for i in sorted(ids)
    ]
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Lead.get_by_custom_id("CrmBridge_Id__c", "same")


def test_upsert_before_api_46_answers_204(salesforce_sandbox: SalesforceSandbox) -> None:
    old = salesforce_sandbox.make_client(**salesforce_sandbox.credentials(), version="45.0")
    assert old.Lead.upsert("CrmBridge_Id__c/v45", {"LastName": "Old", "Company": "C"}) == 201
    assert old.Lead.upsert("CrmBridge_Id__c/v45", {"Title": "T"}) == 204


@pytest.mark.parametrize(
    ("data", "code", "fields", "message"),
    [
        ({"Company": "C"}, "REQUIRED_FIELD_MISSING", ["LastName"],
         "Required fields are missing: [LastName]"),
        ({"Email": "x@y.z"}, "REQUIRED_FIELD_MISSING", ["LastName", "Company"],
         "Required fields are missing: [LastName, Company]"),
        ({"LastName": "L", "Company": "C", "Status": "Nurture"},
         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Status"],
         "Status: bad value for restricted picklist field: Nurture"),
        ({"LastName": "L", "Company": "C", "Rejection_Reason__c": "Too Busy"},
         "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Rejection_Reason__c"],
         "Rejection Reason: bad value for restricted picklist field: Too Busy"),
        ({"LastName": "L", "Company": "C", "Title": "x" * 129}, "STRING_TOO_LONG", ["Title"],
         "Title: data value too large: " + "x" * 129 + " (max length=128)"),
        ({"LastName": "L", "Company": "C", "Email": "nope@"}, "INVALID_EMAIL_ADDRESS", ["Email"],
         "Email: invalid email address: nope@"),
        ({"LastName": "L", "Company": "C", "Favourite__c": 1}, "INVALID_FIELD", ["Favourite__c"],
         "No such column 'Favourite__c' on sobject of type Lead"),
        ({"LastName": "L", "Company": "C", "Name": "Full"}, "INVALID_FIELD_FOR_INSERT_UPDATE",
         ["Name"], "Unable to create/update fields: Name. Please check the security settings of "
         "this field and verify that it is read/write for your role or profile."),
        ({"LastName": "L", "Company": "C", "OwnerId": "bogus"}, "MALFORMED_ID", ["OwnerId"],
         "Owner ID: id value of incorrect type: bogus"),
        ({"LastName": "L", "Company": "C", "OwnerId": "001Dn0000000001IAA"},
         "FIELD_INTEGRITY_EXCEPTION", ["OwnerId"],
         "Owner ID: id value of incorrect type: 001Dn0000000001IAA"),
        ({"LastName": "L", "Company": "C", "OwnerId": make_id("005", 999)},
         "INVALID_CROSS_REFERENCE_KEY", ["OwnerId"], "invalid cross reference id"),
        ({"LastName": "L", "Company": "C", "Status": "Closed - Converted"},
         "FIELD_INTEGRITY_EXCEPTION", ["Status"],
         "Status: a converted lead status can only be set by converting the lead"),
        ({"LastName": "L", "Company": "C", "NumberOfEmployees": "many"}, "JSON_PARSER_ERROR",
         ["NumberOfEmployees"], "value not of required type: many"),
        ({"LastName": "L", "Company": "C", "CrmBridge_Score__c": 1e20},
         "NUMBER_OUTSIDE_VALID_RANGE", ["CrmBridge_Score__c"],
         "crmbridge Score: value outside of valid range on numeric field: 1e+20"),
    ],
)  # fmt: skip
def test_validation_errors(
    salesforce_sandbox: SalesforceSandbox,
    data: dict[str, Any],
    code: str,
    fields: list[str],
    message: str,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_sandbox.sf.Lead.create(data)
    assert _error(error) == {"message": message, "errorCode": code, "fields": fields}


def test_unique_external_id_and_duplicate_rule(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> None:
    sandbox = salesforce_sandbox_factory(duplicate_rule_on_email=True)
    sf = sandbox.sf
    first = sf.Lead.create(
        {"LastName": "A", "Company": "C", "Email": "Dup@X.com", "CrmBridge_Id__c": "k1"}
    )
    with pytest.raises(SalesforceMalformedRequest) as unique:
        sf.Lead.create({"LastName": "B", "Company": "C", "CrmBridge_Id__c": "K1"})
    assert _error(unique)["errorCode"] == "DUPLICATE_VALUE"
    assert first["id"] in _error(unique)["message"]
    with pytest.raises(SalesforceMalformedRequest) as dupe:
        sf.Lead.create({"LastName": "B", "Company": "C", "Email": " dup@x.COM"})
    entry = _error(dupe)
    assert (entry["errorCode"], entry["message"]) == (
        "DUPLICATES_DETECTED",
        "Use one of these records?",
    )
    matches = entry["duplicateResult"]["matchResults"][0]["matchRecords"]
    assert [m["record"]["Id"] for m in matches] == [first["id"]]
    allowed = sf.Lead.create(
        {"LastName": "B", "Company": "C", "Email": "dup@x.com"},
        headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"},
    )
    assert allowed["success"] is True


def test_duplicate_rule_is_off_by_default(salesforce_sandbox: SalesforceSandbox) -> None:
    for _ in range(2):
        salesforce_sandbox.sf.Lead.create({"LastName": "A", "Company": "C", "Email": "same@x.com"})
    assert len(salesforce_sandbox.control.control("find_leads", email="SAME@x.com")) == 2


def test_converted_lead_cannot_be_updated(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    lead_id = new_lead()
    salesforce_sandbox.control.control("convert_lead", lead_id=lead_id)
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_sandbox.sf.Lead.update(lead_id, {"Title": "Too late"})
    assert _error(error) == {
        "message": "cannot reference converted lead",
        "errorCode": "CANNOT_UPDATE_CONVERTED_LEAD",
        "fields": [],
    }


def test_users_and_groups_are_read_only(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest, match="INSUFFICIENT_ACCESS_OR_READONLY"):
        salesforce_sandbox.sf.User.create({"Username": "x@y.z"})
    users = salesforce_sandbox.sf.query("SELECT Id, Username, IsActive FROM User ORDER BY Username")
    assert [u["Username"] for u in users["records"]][:2] == [
        "aisha.okafor@crmbridge.sandbox",
        "integration@crmbridge.sandbox",
    ]
    group = salesforce_sandbox.sf.query("SELECT Name, DeveloperName, Type FROM Group")["records"][0]
    assert (group["Name"], group["DeveloperName"], group["Type"]) == (
        "Inbound Leads",
        "Inbound_Leads",
        "Queue",
    )


def test_updated_and_deleted_windows(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    sf = salesforce_sandbox.sf
    start = datetime.now(UTC) - timedelta(minutes=5)
    kept, dropped = new_lead(), new_lead()
    sf.Lead.delete(dropped)
    end = datetime.now(UTC) + timedelta(minutes=2)
    updated = sf.Lead.updated(start, end)
    assert updated["ids"] == [kept]
    assert __import__("re").fullmatch(STAMP, updated["latestDateCovered"])
    deleted = sf.Lead.deleted(start, end)
    assert [r["id"] for r in deleted["deletedRecords"]] == [dropped]
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    with pytest.raises(SalesforceMalformedRequest) as backwards:
        sf.Lead.updated(end, start)
    assert _error(backwards)["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest, match="30 days"):
        sf.Lead.updated(start - timedelta(days=31), end)
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_REPLICATION_DATE"):
        sf.Lead.updated(datetime(2024, 1, 1), datetime(2024, 1, 2))  # naive: malformed URL


def test_describe_fields_and_picklists(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    described = sf.Lead.describe()
    assert (described["name"], described["keyPrefix"]) == ("Lead", "00Q")
    fields = {f["name"]: f for f in described["fields"]}
    status = fields["Status"]
    assert status["restrictedPicklist"] is True
    assert [v["value"] for v in status["picklistValues"]] == [
        "Open - Not Contacted",
        "Working - Contacted",
        "Closed - Converted",
        "Closed - Not Converted",
    ]
    assert status["defaultValue"] == "Open - Not Contacted"
    key = fields["CrmBridge_Id__c"]
    assert (key["externalId"], key["unique"], key["length"], key["custom"]) == (
        True,
        True,
        64,
        True,
    )
    assert fields["LastName"]["nillable"] is False
    assert fields["Name"]["createable"] is False
    assert fields["OwnerId"]["referenceTo"] == ["Group", "User"]
    assert fields["CrmBridge_Why__c"]["filterable"] is False
    assert fields["LeadSource"]["restrictedPicklist"] is False
    stages = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}["StageName"]
    assert len(stages["picklistValues"]) == 10
    salesforce_sandbox.control.control(
        "set_picklist",
        field="Lead.Status",
        values=["Open - Not Contacted", "Nurture", "Closed - Converted"],
    )
    drifted = {f["name"]: f for f in sf.Lead.describe()["fields"]}["Status"]
    assert [v["value"] for v in drifted["picklistValues"]] == [
        "Open - Not Contacted",
        "Nurture",
        "Closed - Converted",
    ]
    assert sf.Lead.create({"LastName": "N", "Company": "C", "Status": "Nurture"})["success"]


def test_describe_global_and_object_metadata(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    listed = sf.describe()
    assert listed is not None
    assert {o["name"]: o["keyPrefix"] for o in listed["sobjects"]} == {
        "Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006", "User": "005",
        "Group": "00G",
    }  # fmt: skip
    metadata = sf.Lead.metadata()
    assert metadata["objectDescribe"]["name"] == "Lead"
    assert metadata["recentItems"] == []


def test_unknown_objects_methods_and_paths(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    with pytest.raises(SalesforceResourceNotFound):
        sf.Widget__c.describe()
    with pytest.raises(SalesforceGeneralError) as method:
        sf.restful("sobjects/Lead", method="DELETE")
    assert method.value.status == 405
    assert _error(method)["errorCode"] == "METHOD_NOT_ALLOWED"
    with pytest.raises(SalesforceResourceNotFound):
        sf.restful("no/such/resource")
    with pytest.raises(SalesforceResourceNotFound) as wrong_type:
        sf.Lead.get("001Dn0000000001IAA")
    assert "Provided external ID field does not exist" in _error(wrong_type)["message"]
    with pytest.raises(SalesforceMalformedRequest) as bad_json:
        sf.restful("sobjects/Lead", method="POST", data="{not json")
    assert _error(bad_json)["errorCode"] == "JSON_PARSER_ERROR"


def test_opportunity_fields_derive_from_the_stage(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    account = sf.Account.create({"Name": "Acme"})["id"]
    opp = sf.Opportunity.create(
        {"Name": "Deal", "StageName": "Proposal/Price Quote", "CloseDate": "2026-12-31",
         "AccountId": account, "Amount": 1234.567}
    )["id"]  # fmt: skip
    record = sf.Opportunity.get(opp)
    assert (record["IsClosed"], record["IsWon"], record["Probability"], record["Amount"]) == (
        False, False, 75.0, 1234.57,
    )  # fmt: skip
    sf.Opportunity.update(opp, {"StageName": "Closed Won"})
    record = sf.Opportunity.get(opp)
    assert (record["IsClosed"], record["IsWon"], record["Probability"]) == (True, True, 100.0)
    with pytest.raises(SalesforceMalformedRequest) as lost:
        sf.Opportunity.update(opp, {"Loss_Reason__c": "Vibes"})
    assert _error(lost)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Opportunity.create({"Name": "No stage"})
    assert _error(missing)["fields"] == ["StageName", "CloseDate"]
