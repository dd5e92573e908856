"""SOQL through simple-salesforce: paging, deleted records, parents, filters, errors, indexes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from simple_salesforce.exceptions import SalesforceMalformedRequest
from simple_salesforce.format import format_soql

pytestmark = pytest.mark.sandbox


def _seed(sandbox: SalesforceSandbox, records: list[dict[str, Any]], **kw: Any) -> list[str]:
    result = sandbox.control.control("seed_records", object="Lead", records=records, **kw)
    return list(result["ids"])


def _leads(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"LastName": f"Lead{i:05d}", "Company": "Acme", "Email": f"l{i}@acme.example", **extra}
        for i in range(n)
    ]


def test_query_all_follows_next_records_url_past_one_batch(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ids = _seed(salesforce_sandbox, _leads(2500))
    sf = salesforce_sandbox.sf
    first = sf.query("SELECT Id FROM Lead")
    assert (first["totalSize"], first["done"], len(first["records"])) == (2500, False, 2000)
    url = first["nextRecordsUrl"]
    assert url.startswith("/services/data/v59.0/query/01g")
    assert url.endswith("-2000")
    everything = sf.query_all("SELECT Id, LastName FROM Lead ORDER BY LastName")
    assert everything["totalSize"] == 2500
    assert [r["Id"] for r in everything["records"]] == ids
    lazily = list(sf.query_all_iter("SELECT Id FROM Lead"))
    assert len(lazily) == 2500
    endpoints = salesforce_sandbox.calls().by_endpoint()
    assert endpoints["GET query"] == 3
    assert endpoints["GET query/{locator}"] == 2


def test_batch_size_header_is_honoured_and_bounded(salesforce_sandbox: SalesforceSandbox) -> None:
    _seed(salesforce_sandbox, _leads(450))
    sf = salesforce_sandbox.sf
    small = {"Sforce-Query-Options": "batchSize=200"}
    page = sf.query("SELECT Id FROM Lead", headers=small)
    assert len(page["records"]) == 200
    assert len(list(sf.query_all_iter("SELECT Id FROM Lead", headers=small))) == 450
    pages = [c for c in salesforce_sandbox.calls() if c.endpoint == "GET query/{locator}"]
    assert [c.records_out for c in pages] == [200, 50]
    tiny = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=5"})
    assert len(tiny["records"]) == 200  # Salesforce's minimum batch


def test_query_all_sees_deleted_records(salesforce_sandbox: SalesforceSandbox) -> None:
    keep, gone, *more = _seed(salesforce_sandbox, _leads(250))
    sf = salesforce_sandbox.sf
    for lead_id in more:
        sf.Lead.delete(lead_id)
    small = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id FROM Lead", include_deleted=True, headers=small)
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert (
        len(sf.query_all("SELECT Id FROM Lead", include_deleted=True, headers=small)["records"])
        == 250
    )
    sf.bulk2.Lead.hard_delete(records=[{"Id": i} for i in more], wait=0.1)
    assert sf.Lead.delete(gone) == 204
    live = sf.query_all("SELECT Id FROM Lead")["records"]
    assert [r["Id"] for r in live] == [keep]
    every = sf.query_all("SELECT Id, IsDeleted FROM Lead ORDER BY Id", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in every["records"]] == [(keep, False), (gone, True)]
    assert salesforce_sandbox.calls().count("GET queryAll") == 3


def test_parent_fields_of_users_queues_and_conversions(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    org = salesforce_sandbox.emulator.org
    maria = org.user_ids["maria.garcia@crmbridge.sandbox"]
    queue = org.queue_ids["Inbound Leads"]
    owned, queued = _seed(salesforce_sandbox, _leads(2))
    control = salesforce_sandbox.control
    control.control("edit_record", object="Lead", id=owned, fields={"OwnerId": maria})
    control.control("edit_record", object="Lead", id=queued, fields={"OwnerId": queue})
    converted = control.control(
        "convert_lead", lead_id=owned, as_user="maria.garcia@crmbridge.sandbox"
    )
    soql = (
        "SELECT Id, Owner.Name, Owner.Email, ConvertedContact.Email, ConvertedContact.Account.Name "
        "FROM Lead ORDER BY LastName"
    )
    first, second = salesforce_sandbox.sf.query(soql)["records"]
    assert first["Owner"]["attributes"]["type"] == "User"
    assert (first["Owner"]["Name"], first["Owner"]["Email"]) == (
        "Maria Garcia",
        "maria.garcia@crmbridge.sandbox",
    )
    contact = first["ConvertedContact"]
    assert contact["attributes"]["url"].endswith(converted["contact_id"])
    assert contact["Email"] == "l0@acme.example"
    assert contact["Account"]["Name"] == "Acme"
    assert second["Owner"]["attributes"]["type"] == "Group"
    assert (second["Owner"]["Name"], second["Owner"]["Email"]) == ("Inbound Leads", None)
    assert second["ConvertedContact"] is None
    by_owner = salesforce_sandbox.sf.query("SELECT Id FROM Lead WHERE Owner.Name = 'inbound leads'")
    assert [r["Id"] for r in by_owner["records"]] == [queued]


@pytest.mark.parametrize(
    "company",
    ["o'brien & sons", "' OR Name != '", "back\\slash", 'double " quote', "tab\tand\nline"],
)
def test_format_soql_hostile_values_match_literally(
    salesforce_sandbox: SalesforceSandbox, company: str
) -> None:
    target, _decoy = _seed(
        salesforce_sandbox,
        [{"LastName": "Target", "Company": company}, {"LastName": "Decoy", "Company": "x"}],
    )
    sf = salesforce_sandbox.sf
    found = sf.query(format_soql("SELECT Id, Company FROM Lead WHERE Company = {}", company))
    assert [(r["Id"], r["Company"]) for r in found["records"]] == [(target, company)]
    liked = sf.query(format_soql("SELECT Id FROM Lead WHERE Company LIKE '{:like}%'", company))
    assert [r["Id"] for r in liked["records"]] == [target]


def test_like_escapes_percent_and_underscore(salesforce_sandbox: SalesforceSandbox) -> None:
    exact, _other = _seed(
        salesforce_sandbox,
        [{"LastName": "A", "Company": "50%_off"}, {"LastName": "B", "Company": "50xxoff"}],
    )
    soql = format_soql("SELECT Id FROM Lead WHERE Company LIKE '{:like}'", "50%_off")
    assert [r["Id"] for r in salesforce_sandbox.sf.query(soql)["records"]] == [exact]
    loose = salesforce_sandbox.sf.query("SELECT Id FROM Lead WHERE Company LIKE '50%off'")
    assert loose["totalSize"] == 2


def test_filters_on_each_type(salesforce_sandbox: SalesforceSandbox) -> None:
    records = [
        {"LastName": "Small", "Company": "A", "Email": "Ann@X.com", "NumberOfEmployees": 5,
         "CreatedDate": "2024-01-01T00:00:00Z", "Rating": "Hot"},
        {"LastName": "Big", "Company": "B", "Email": "bob@x.com", "NumberOfEmployees": 5000,
         "CreatedDate": "2024-06-01T12:00:00+02:00", "IsConverted": True,
         "ConvertedDate": "2024-06-02"},
        {"LastName": "None", "Company": "C", "CreatedDate": "2025-01-01T00:00:00Z"},
    ]  # fmt: skip
    small, big, none = _seed(salesforce_sandbox, records, validate=False)

    def ids(where: str) -> list[str]:
        soql = f"SELECT Id FROM Lead WHERE {where} ORDER BY LastName DESC"
        return [r["Id"] for r in salesforce_sandbox.sf.query(soql)["records"]]

    assert ids("Email = 'ANN@x.COM'") == [small]
    assert ids("Email != 'ann@x.com'") == [none, big]
    assert ids("Email = null") == [none]
    assert ids("NumberOfEmployees > 100") == [big]
    assert ids("NumberOfEmployees <= 5.0") == [small]
    assert ids("IsConverted = true") == [big]
    assert ids("ConvertedDate = 2024-06-02") == [big]
    assert ids("CreatedDate = 2024-06-01T10:00:00Z") == [big]
    assert ids(
        "CreatedDate >= 2024-06-01T10:00:00.000+0000 AND CreatedDate < 2025-01-01T00:00:00Z"
    ) == [big]
    assert ids("LastName IN ('small', 'NONE')") == [small, none]
    assert ids("LastName NOT IN ('Small')") == [none, big]
    assert ids("NOT (Rating = 'Hot' OR Email = null)") == [big]
    assert ids("Rating = 'Hot' OR (NumberOfEmployees > 1 AND IsConverted = true)") == [small, big]
    assert ids("Id = '" + big[:15] + "'") == [big]


def test_order_by_several_fields_with_nulls_limit_offset_and_count(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ratings = ["Hot", None, "Cold", "Hot", None]
    ids = _seed(
        salesforce_sandbox,
        [{"LastName": f"L{i}", "Company": "A", **({"Rating": r} if r else {})}
         for i, r in enumerate(ratings)],
    )  # fmt: skip
    sf = salesforce_sandbox.sf

    def order(clause: str) -> list[int]:
        rows = sf.query(f"SELECT Id FROM Lead ORDER BY {clause}")["records"]
        return [ids.index(r["Id"]) for r in rows]

    assert order("Rating, LastName") == [1, 4, 2, 0, 3]
    assert order("Rating NULLS LAST, LastName DESC") == [2, 3, 0, 4, 1]
    assert order("Rating DESC, LastName") == [0, 3, 2, 1, 4]
    assert order("Rating DESC NULLS FIRST, LastName DESC") == [4, 1, 3, 0, 2]
    assert order("LastName LIMIT 2 OFFSET 1") == [1, 2]
    counted = sf.query("SELECT COUNT() FROM Lead WHERE Rating = 'Hot'")
    assert (counted["totalSize"], counted["records"]) == (2, [])


@pytest.mark.parametrize(
    ("soql", "code", "text"),
    [
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
        ("SELECT Id, Nope__c FROM Lead", "INVALID_FIELD", "No such column 'Nope__c' on entity"),
        ("SELECT Id FROM Leed", "INVALID_TYPE", "sObject type 'Leed' is not supported"),
        ("SELECT Boss.Name FROM Lead", "INVALID_FIELD", "Didn't understand relationship 'Boss'"),
        ("SELECT Owner.Nope FROM Lead", "INVALID_FIELD", "No such column 'Nope' on entity 'Group'"),
        ("SELECT Id FROM Lead WHERE CreatedDate > '2024-01-01'", "INVALID_FIELD",
         "must be of type dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Lead WHERE Email = 5", "INVALID_FIELD",
         "must be of type string and should be enclosed in quotes"),
        ("SELECT Id FROM Lead WHERE CreatedDate > 2024-01-01", "INVALID_FIELD", "type dateTime"),
        ("SELECT Id FROM Lead WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
        ("SELECT Id FROM Lead ORDER BY Description", "INVALID_FIELD", "can not be sorted"),
        ("SELECT Id FROM Lead WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR",
         "invalid ID field: not-an-id"),
        ("SELECT Id FROM Lead WHERE IsConverted > true", "INVALID_QUERY_FILTER_OPERATOR", ""),
        ("SELECT Id FROM Lead WHERE NumberOfEmployees LIKE '1%'",
         "INVALID_QUERY_FILTER_OPERATOR", "LIKE"),
        ("SELECT Id, id FROM Lead", "MALFORMED_QUERY", "duplicate field selected"),
        ("SELECT Id FROM Lead OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "2000"),
    ],
)  # fmt: skip
def test_invalid_soql_answers_salesforce_errors(
    salesforce_sandbox: SalesforceSandbox, soql: str, code: str, text: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_sandbox.sf.query(soql)
    assert error.value.status == 400
    [entry] = error.value.content
    assert entry["errorCode"] == code
    assert text in entry["message"]


def test_unknown_field_message_has_salesforce_layout(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        salesforce_sandbox.sf.query("SELECT Id, Foo FROM Lead")
    assert error.value.content[0]["message"] == (
        "\nSELECT Id, Foo FROM Lead\n           ^\nERROR at Row:1:Column:12\n"
        "No such column 'Foo' on entity 'Lead'. If you are attempting to use a custom field, be "
        "sure to append the '__c' after the custom field name. Please reference your WSDL or the "
        "describe call for the appropriate names."
    )


def test_query_locators_belong_to_their_session(salesforce_sandbox: SalesforceSandbox) -> None:
    _seed(salesforce_sandbox, _leads(300))
    sf = salesforce_sandbox.sf
    header = {"Sforce-Query-Options": "batchSize=200"}
    url = sf.query("SELECT Id FROM Lead", headers=header)["nextRecordsUrl"]
    other = salesforce_sandbox.make_client()
    with pytest.raises(SalesforceMalformedRequest) as stolen:
        other.query_more(url, identifier_is_url=True)
    assert stolen.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_QUERY_LOCATOR"):
        sf.query_more("01gDn0000000099AAA-200")
    salesforce_sandbox.control.control("expire_sessions")
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_QUERY_LOCATOR"):
        sf.query_more(url, identifier_is_url=True)  # re-logged in: a new session
    assert len(sf.query_more(sf.query("SELECT Id FROM Lead", headers=header)["nextRecordsUrl"],
                             identifier_is_url=True)["records"]) == 100  # fmt: skip


def test_query_locators_expire_when_idle(salesforce_sandbox: SalesforceSandbox) -> None:
    _seed(salesforce_sandbox, _leads(250))
    sf = salesforce_sandbox.sf
    url = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})[
        "nextRecordsUrl"
    ]
    salesforce_sandbox.emulator.sessions.ttl = 10**9
    salesforce_sandbox.control.advance_clock(16 * 60)
    with pytest.raises(SalesforceMalformedRequest, match="INVALID_QUERY_LOCATOR"):
        sf.query_more(url, identifier_is_url=True)


def test_cursor_queries_use_the_indexes_at_scale(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    n = 50_000
    records = [
        {
            "LastName": f"L{i}",
            "Company": "Scale",
            "Email": f"person{i}@scale.example",
            "CrmBridge_Id__c": f"cb-{i}",
            "SystemModstamp": f"2026-{1 + i % 9:02d}-{1 + i % 27:02d}T{i % 24:02d}:00:00Z",
        }
        for i in range(n)
    ]
    _seed(salesforce_sandbox, records, validate=False)
    sf = salesforce_sandbox.sf
    queries = salesforce_sandbox.emulator.queries
    cursor = (
        "SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > 2026-05-01T00:00:00Z "
        "ORDER BY SystemModstamp, Id LIMIT 2000"
    )
    page = sf.query(cursor)["records"]
    assert len(page) == 2000
    stamps = [(r["SystemModstamp"], r["Id"]) for r in page]
    assert stamps == sorted(stamps)
    assert stamps[0][0] > "2026-05-01T00:00:00.000+0000"
    assert queries.last_plan is not None
    assert queries.last_plan.access == "index:SystemModstamp"
    assert queries.last_plan.examined == 2000  # the plan, not a clock: no timed assertions
    last = page[-1]
    follow = format_soql(
        "SELECT Id FROM Lead WHERE SystemModstamp >= {:literal} AND Id > {} "
        "ORDER BY SystemModstamp, Id LIMIT 10",
        last["SystemModstamp"],
        last["Id"],
    )
    assert len(sf.query(follow)["records"]) == 10
    assert queries.last_plan.access == "index:SystemModstamp"
    by_email = sf.query("SELECT Id FROM Lead WHERE Email = 'PERSON37777@scale.example'")
    assert by_email["totalSize"] == 1
    assert (queries.last_plan.access, queries.last_plan.examined) == ("index:Email", 1)
    by_key = sf.query("SELECT Id FROM Lead WHERE CrmBridge_Id__c IN ('cb-5', 'cb-6', 'nope')")
    assert by_key["totalSize"] == 2
    assert queries.last_plan.access == "index:CrmBridge_Id__c"
    newest = sf.query("SELECT Id FROM Lead ORDER BY SystemModstamp DESC, Id DESC LIMIT 3")
    assert len(newest["records"]) == 3
    assert queries.last_plan.examined == 3
    assert sf.Lead.get_by_custom_id("CrmBridge_Id__c", "cb-49999")["LastName"] == "L49999"


def test_updates_move_records_along_the_modstamp_index(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    first, second = new_lead(), new_lead()
    salesforce_sandbox.control.advance_clock(5)
    salesforce_sandbox.sf.Lead.update(first, {"Title": "Moved"})
    rows = salesforce_sandbox.sf.query("SELECT Id FROM Lead ORDER BY SystemModstamp, Id")["records"]
    assert [r["Id"] for r in rows] == [second, first]
    latest = salesforce_sandbox.sf.Lead.get(first)["SystemModstamp"]
    since = salesforce_sandbox.sf.query(
        f"SELECT Id FROM Lead WHERE SystemModstamp >= {latest} ORDER BY SystemModstamp"
    )
    assert [r["Id"] for r in since["records"]] == [first]
