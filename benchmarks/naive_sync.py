#!/usr/bin/env python3
"""The script people write instead of crmbridge: a cron job calling the same SDKs record by record.

For every HubSpot contact changed since the last run (HubSpot search, 100 per page), it looks the
person up in Salesforce by email, then creates or updates the lead — one call each. It is short,
readable and correct on a happy day; it has no batching, no lead definition, no closed loop.

    python benchmarks/naive_sync.py --hubspot-url URL --salesforce-url URL [--since ISO]

The benchmark in ``benchmarks/backfill.py --naive`` runs it on the same sandboxes and data as
crmbridge and prints both side by side.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

import hubspot
from crmbridge_salesforce.transport import sandbox_session
from hubspot.crm.contacts import ApiException, Filter, FilterGroup, PublicObjectSearchRequest
from simple_salesforce import Salesforce
from simple_salesforce.format import format_soql
from urllib3.util import Retry

FIELDS = {  # HubSpot property -> Salesforce Lead field
    "email": "Email",
    "firstname": "FirstName",
    "lastname": "LastName",
    "company": "Company",
    "jobtitle": "Title",
    "phone": "Phone",
    "country": "Country",
    "industry": "Industry",
}


def run(
    hubspot_url: str, token: str, salesforce_url: str, credentials: dict[str, str], since: datetime
) -> dict[str, Any]:
    hs = hubspot.Client.create(
        access_token=token,
        host=hubspot_url,
        retry=Retry(
            total=5, status_forcelist=(429, 500, 502, 503), allowed_methods=None, backoff_factor=0.5
        ),
    )
    sf = Salesforce(session=sandbox_session(salesforce_url), **credentials)
    created = updated = failed = 0
    capped = False
    after: str | None = None
    started = time.perf_counter()
    while True:
        request = PublicObjectSearchRequest(
            filter_groups=[
                FilterGroup(
                    filters=[
                        Filter(
                            property_name="lastmodifieddate",
                            operator="GTE",
                            value=str(int(since.timestamp() * 1000)),
                        )
                    ]
                )
            ],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=list(FIELDS),
            limit=100,
            after=after,
        )
        try:
            page = hs.crm.contacts.search_api.do_search(public_object_search_request=request)
        except ApiException as exc:
            if exc.status == 400 and "10000" in str(exc.body or "").replace(",", ""):
                capped = True  # HubSpot's search stops at 10,000 results: the rest is not read
                break
            raise
        for contact in page.results:
            props = contact.properties
            lead = {
                sf_field: props.get(hs_field)
                for hs_field, sf_field in FIELDS.items()
                if props.get(hs_field)
            }
            lead.setdefault("LastName", "Unknown")
            lead.setdefault("Company", "Unknown")
            try:
                found = sf.query(
                    format_soql("SELECT Id FROM Lead WHERE Email = {}", props.get("email"))
                )
                if found["records"]:
                    sf.Lead.update(found["records"][0]["Id"], lead)
                    updated += 1
                else:
                    sf.Lead.create(lead)
                    created += 1
            except Exception:  # noqa: BLE001 - a naive script logs and moves on
                failed += 1
        if page.paging is None or page.paging.next is None:
            break
        after = page.paging.next.after
    return {
        "created": created,
        "updated": updated,
        "failed": failed,
        "stopped_at_search_cap": capped,
        "seconds": round(time.perf_counter() - started, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubspot-url", required=True)
    parser.add_argument("--hubspot-token", default="pat-sandbox-crmbridge")
    parser.add_argument("--salesforce-url", required=True)
    parser.add_argument("--client-id", default="crmbridge-sandbox-key")
    parser.add_argument("--client-secret", default="crmbridge-sandbox-secret")
    parser.add_argument("--domain", default="crmbridge-sandbox.my")
    parser.add_argument("--since", default="2000-01-01T00:00:00+00:00")
    args = parser.parse_args()
    credentials = {
        "consumer_key": args.client_id,
        "consumer_secret": args.client_secret,
        "domain": args.domain,
    }
    result = run(
        args.hubspot_url,
        args.hubspot_token,
        args.salesforce_url,
        credentials,
        datetime.fromisoformat(args.since).astimezone(UTC),
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
