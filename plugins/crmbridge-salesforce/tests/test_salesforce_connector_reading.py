"""Leads as a source (the marketing side): backfills by query paging and by Bulk API 2.0 query
jobs, resumable and restartable; fetch by id; and SOQL built by format_soql that reads exactly
the record a hostile value names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import connector_for

from crmbridge import ChangeKind, Cursor, LeadWrite
from crmbridge.store.store import crmbridge_id_for

pytestmark = pytest.mark.sandbox

HOSTILE = [
    "' OR Name != '",
    "back\\slash\\",
    "naïve Ünïcödé 日本語 😀",
    "50%_off",
    'O\'Brien "quoted"',
    "tab\tand\nnewline",
]


def _at(offset_minutes: int) -> str:
    when = datetime(2026, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=offset_minutes)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _seed(sandbox: SalesforceSandbox, count: int, **values: Any) -> list[str]:
    records = [
        {"LastName": f"Source{i}", "Company": "Acme", "Email": f"source{i}@example.com", **values}
        for i in range(count)
    ]
    answer = sandbox.control.control("seed_records", object="Lead", records=records, validate=False)
    return list(answer["ids"])


def test_pull_changes_maps_leads_and_their_stage(salesforce_sandbox: SalesforceSandbox) -> None:
    [good] = _seed(salesforce_sandbox, 1, Status="Working - Contacted", LeadSource="Webinar")
    [odd] = salesforce_sandbox.control.control(
        "seed_records",
        object="Lead",
        records=[{"LastName": "X", "Company": "Y", "Email": "odd@x.com", "LeadSource": "Fax"}],
        validate=False,
    )["ids"]
    connector = connector_for(salesforce_sandbox)
    changes = {c.native_id: c for b in connector.pull_changes(Cursor()) for c in b.changes}
    lead = changes[good].lead
    assert lead is not None
    assert lead.stage == "sal"
    assert lead.fields["lead_source"] == "webinar"
    assert lead.email == "source0@example.com"
    assert changes[odd].problems[0].rule == "picklist_mapping"
    assert "'Fax'" in changes[odd].problems[0].message


def test_a_small_window_is_read_by_query_paging_and_resumes(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    inside = _seed(salesforce_sandbox, 250, SystemModstamp=_at(10), LastModifiedDate=_at(10))
    _seed(salesforce_sandbox, 5, SystemModstamp=_at(-10), LastModifiedDate=_at(-10))
    _seed(salesforce_sandbox, 5, SystemModstamp=_at(60), LastModifiedDate=_at(60))
    connector = connector_for(salesforce_sandbox, query_page_size=200)
    since = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    until = since + timedelta(minutes=30)
    assert connector.count_range(since, until) == 250
    batches = connector.pull_range(since, until, Cursor())
    first = next(iter(batches))
    assert len(first.changes) == 200
    rest = [c for b in connector.pull_range(since, until, first.cursor) for c in b.changes]
    read = [c.native_id for c in [*first.changes, *rest]]
    assert sorted(read) == sorted(inside)
    assert "POST jobs/query" not in salesforce_sandbox.calls().by_endpoint()
    everything = [c for b in connector.pull_range(None, None, Cursor()) for c in b.changes]
    assert len(everything) == 260


def test_a_large_window_is_read_with_bulk_query_jobs_and_survives_a_new_session(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ids = _seed(salesforce_sandbox, 450, SystemModstamp=_at(5), LastModifiedDate=_at(5))
    connector = connector_for(
        salesforce_sandbox, bulk_threshold=100, bulk_page_size=150, query_page_size=200
    )
    since = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    read: list[str] = []
    for n, batch in enumerate(connector.pull_range(since, None, Cursor())):
        read += [c.native_id for c in batch.changes]
        assert batch.changes[0].lead is not None
        if n == 0:
            salesforce_sandbox.control.control("expire_sessions")
    assert sorted(read) == sorted(ids)
    assert len(read) == len(set(read))
    calls = salesforce_sandbox.calls().by_endpoint()
    assert calls["POST jobs/query"] == 2  # the second job starts after the last lead read
    assert connector.changes.bulk_jobs == 2
    assert connector.session.logins == 2


def test_fetch_reads_leads_by_id_and_reports_the_deleted(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    kept, gone = _seed(salesforce_sandbox, 2)
    salesforce_sandbox.control.control("delete_record", object="Lead", id=gone)
    connector = connector_for(salesforce_sandbox)
    changes = {c.native_id: c for c in connector.fetch([kept, gone, kept])}
    assert changes[kept].kind is ChangeKind.UPSERT
    assert changes[gone].kind is ChangeKind.DELETE
    assert len(changes) == 2


def test_hostile_values_read_exactly_the_matching_record(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    records = [
        {"LastName": f"H{i}", "Company": value, "Email": f"h{i}@example.com"}
        for i, value in enumerate(HOSTILE)
    ]
    ids = salesforce_sandbox.control.control("seed_records", object="Lead", records=records)["ids"]
    connector = connector_for(salesforce_sandbox)
    for record_id, value in zip(ids, HOSTILE, strict=True):
        query = soql.select("Lead", ["Id", "Company"], [soql.equals("Company", value)])
        found = connector.session.query_all("query Lead", query)["records"]
        assert [(r["Id"], r["Company"]) for r in found] == [(record_id, value)], query
    everyone = soql.select("Lead", ["Id"], [soql.is_in("Company", HOSTILE[:2])])
    assert sorted(r["Id"] for r in connector.session.query_all("q", everyone)["records"]) == sorted(
        ids[:2]
    )
    with pytest.raises(ValueError, match="not a Salesforce API name"):
        soql.select("Lead", ["Id FROM User --"])
    with pytest.raises(ValueError, match="timezone-aware"):
        soql.modified_since(datetime(2026, 1, 1))


@pytest.mark.salesforce_sandbox(
    users={
        "integration@crmbridge.sandbox": {},
        "obrien@crmbridge.sandbox": {"name": "Seán O'Brien \\ 50%_"},
        "other@crmbridge.sandbox": {"name": "Other Rep"},
    }
)
def test_an_owner_named_with_quotes_and_backslashes_is_found_exactly(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    email = "owned@example.com"
    write = LeadWrite(
        email=email,
        crmbridge_id=crmbridge_id_for(email),
        fields={"email": email, "last_name": "L", "company": "C"},
        owner="Seán O'Brien \\ 50%_",
    )
    [result] = connector.push_leads([write])
    assert result.ok, result.error
    record = salesforce_sandbox.emulator.org.get("Lead", str(result.native_id))
    assert record is not None
    assert record["OwnerId"] == salesforce_sandbox.emulator.org.user_ids["obrien@crmbridge.sandbox"]
