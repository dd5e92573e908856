"""Queries with long ``IN`` lists: a query is a GET whose URL servers cap (Salesforce at 16 KB,
proxies and the sandbox at 8 KB), so lists of emails or ids are split by size, not only by count.

Found by the crash test: a backfill resumed after a kill handed off thousands of leads in one Bulk
API job, many of them already in Salesforce; looking up 200 duplicates by email at once made a
10 KB URL the server refused, and the backfill failed.
"""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import connector_for

from crmbridge import LeadWrite
from crmbridge.store.store import crmbridge_id_for


def long_email(i: int) -> str:
    return f"firstname.middle-name.lastname.{i:04d}@subsidiary.long-company-name.example.com"


def test_in_lists_are_split_by_size_and_count() -> None:
    emails = [long_email(i) for i in range(500)]
    parts = list(soql.in_chunks(emails, most=200))
    assert [e for part in parts for e in part] == emails
    for part in parts:
        query = soql.select("Lead", ["Id", "Email"], [soql.is_in("Email", part)])
        assert len(quote_plus(query)) < 8000
    assert max(len(p) for p in parts) < 200, "split by size before the count"
    ids = [f"00QDn{i:013d}" for i in range(450)]
    assert [len(p) for p in soql.in_chunks(ids, most=200)] == [200, 200, 50]


@pytest.mark.sandbox
@pytest.mark.salesforce_sandbox(duplicate_rule_on_email=True)
def test_a_bulk_handoff_adopts_hundreds_of_duplicates_with_long_emails(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    count = 300
    salesforce_sandbox.control.control(
        "seed_records",
        object="Lead",
        records=[
            {"LastName": f"L{i}", "Company": "Old", "Email": long_email(i)} for i in range(count)
        ],
    )
    connector = connector_for(salesforce_sandbox, bulk_threshold=10)
    writes = [
        LeadWrite(
            email=long_email(i),
            crmbridge_id=crmbridge_id_for(long_email(i)),
            fields={"email": long_email(i), "last_name": f"L{i}", "company": "New"},
            stage="mql",
        )
        for i in range(count)
    ]
    results = connector.push_leads(writes)
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    assert {r.created for r in results} == {False}, "adopted, none created"
    lookups = [c for c in salesforce_sandbox.calls() if c.endpoint == "GET query"]
    assert len(lookups) >= 2
    assert all(c.status == 200 for c in lookups)
