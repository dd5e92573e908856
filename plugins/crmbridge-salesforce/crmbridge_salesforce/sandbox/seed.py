"""Demo data for the org, from crmbridge's vendor-neutral demo leads.

Leads that are already in sales become Lead records as a real org would hold them after years of
web forms and list imports: owned by a rep or waiting in the "Inbound Leads" queue, rejected ones
with a reason, converted ones with their Account, Contact and sometimes an Opportunity. Values the
org would have refused are cleaned the way integrations clean them (``[not provided]`` for a
missing company, an invalid email dropped, an over-long title cut).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from crmbridge.testing.demodata import DemoLead, generate
from crmbridge_salesforce.sandbox.describe import REJECTION_REASONS
from crmbridge_salesforce.sandbox.state import SEEDING, Org, paused_gc, valid_email
from crmbridge_salesforce.sandbox.values import stamp

LEAD_SOURCES = {
    "demo_request": "Demo Request",
    "content_download": "Content Download",
    "webinar": "Webinar",
    "trade_show": "Trade Show",
    "organic": "Organic Search",
    "paid": "Paid Search",
    "referral": "Partner Referral",
}
MISSING_COMPANY = "[not provided]"


class DemoSeeder:
    """Turns demo leads into the org's records, owned by the configured reps and queue."""

    def __init__(self, org: Org) -> None:
        self.org = org
        integration = org.config.integration_user
        self.integration_id = org.user_ids[integration]
        self.rep_ids = [uid for name, uid in org.user_ids.items() if name != integration]
        self.rep_ids = self.rep_ids or [self.integration_id]
        self.queue_id = next(iter(org.queue_ids.values()), None)

    def seed(self, count: int, seed: int = 42) -> dict[str, int]:
        """Add the in-sales leads among ``count`` demo leads; returns what was created."""
        created: Counter[str] = Counter()
        with paused_gc():
            for demo in generate(count, seed):
                if demo.in_sales:
                    created.update(self._lead(demo, random.Random(seed * 1_000_003 + demo.key)))
        return {name: created[name] for name in ("Lead", "Account", "Contact", "Opportunity")}

    def _owner(self, demo: DemoLead, rng: random.Random) -> str:
        if demo.sales_status == "Open - Not Contacted" and self.queue_id and rng.random() < 0.5:
            return self.queue_id
        return self.rep_ids[demo.key % len(self.rep_ids)]

    def _lead(self, demo: DemoLead, rng: random.Random) -> Counter[str]:
        org = self.org
        lead_def = org.schema.objects["Lead"]
        owner = self._owner(demo, rng)
        created, modified = stamp(demo.created_at), stamp(demo.updated_at)
        editor = owner if owner.startswith("005") and demo.sales_status != "Open - Not Contacted" \
            else self.integration_id  # fmt: skip
        email = demo.email.strip()
        values: dict[str, Any] = {
            "FirstName": demo.first_name[:40],
            "LastName": demo.last_name[:80],
            "Company": (demo.company or MISSING_COMPANY)[:255],
            "Email": email if valid_email(email) and len(email) <= 80 else None,
            "Title": demo.job_title[:128] if demo.job_title else None,
            "Phone": demo.phone[:40] if demo.phone else None,
            "Country": demo.country,
            "City": demo.city[:40],
            "NumberOfEmployees": demo.employees,
            "Industry": demo.industry,
            "Website": demo.website,
            "LeadSource": LEAD_SOURCES.get(demo.lead_source, "Other"),
            "Status": demo.sales_status or "Open - Not Contacted",
            "OwnerId": owner,
            "CreatedDate": created, "CreatedById": self.integration_id,
            "LastModifiedDate": modified, "LastModifiedById": editor, "SystemModstamp": modified,
        }  # fmt: skip
        if (
            values["Status"] == "Closed - Not Converted"
            and "Rejection_Reason__c" in lead_def.fields
        ):
            values["Rejection_Reason__c"] = rng.choice(REJECTION_REASONS)
        made: Counter[str] = Counter(Lead=1)
        if demo.converted and owner.startswith("005"):
            values.update(self._conversion(demo, values, owner, made))
        values = {k: v for k, v in values.items() if v is not None}
        org.insert("Lead", values, user_id=self.integration_id, options=SEEDING)
        return made

    def _conversion(
        self, demo: DemoLead, lead: dict[str, Any], owner: str, made: Counter[str]
    ) -> dict[str, Any]:
        org = self.org
        audit = {k: lead[k] for k in ("CreatedDate", "LastModifiedDate", "SystemModstamp")}
        audit.update(CreatedById=owner, LastModifiedById=owner)
        account = org.insert("Account", {
            "Name": lead["Company"], "OwnerId": owner, "Industry": lead["Industry"],
            "NumberOfEmployees": lead["NumberOfEmployees"], "Website": lead["Website"], **audit,
        }, user_id=owner, options=SEEDING)  # fmt: skip
        person = {k: lead[k] for k in ("FirstName", "LastName", "Email", "Title", "Phone")}
        contact = org.insert("Contact", {
            **person, "AccountId": account["Id"], "OwnerId": owner,
            "LeadSource": lead["LeadSource"], **audit,
        }, user_id=owner, options=SEEDING)  # fmt: skip
        made.update(Account=1, Contact=1)
        conversion: dict[str, Any] = {
            "IsConverted": True,
            "ConvertedDate": demo.updated_at.date().isoformat(),
            "ConvertedAccountId": account["Id"],
            "ConvertedContactId": contact["Id"],
            "Status": "Closed - Converted",
        }
        if demo.opportunity is not None:
            opp = demo.opportunity
            opportunity = org.insert("Opportunity", {
                "Name": opp.name[:120], "StageName": opp.stage_name, "Amount": opp.amount,
                "CloseDate": opp.close_date, "AccountId": account["Id"], "OwnerId": owner,
                "LeadSource": lead["LeadSource"], **audit,
            }, user_id=owner, options=SEEDING)  # fmt: skip
            conversion["ConvertedOpportunityId"] = opportunity["Id"]
            made.update(Opportunity=1)
        return conversion
