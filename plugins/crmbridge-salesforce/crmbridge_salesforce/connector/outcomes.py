"""Sales' verdicts from Salesforce, read since a cursor (the sales side).

Two streams, each with its own position in the cursor, both read as
:mod:`~crmbridge_salesforce.connector.reading` reads (lookback, ties, restarts):

* **Leads** changed since their position: Lead Status gives accepted, rejected (the reason from
  ``Rejection_Reason__c``) or recycled; ``IsConverted`` gives converted (with the contact and
  opportunity ids). Each Lead is also an observation, so the core sees the fields sales owns;
  a Lead with a picklist value the definition does not map is a problem (quarantined), and gives
  no verdict.
* **Opportunities** changed since theirs (closing a deal does not touch its Lead): ``StageName``
  gives won (with ``Amount``) or lost (with ``Loss_Reason__c``), reported on the Lead the
  opportunity was converted from (one extra query per page finds them). An opportunity no
  crmbridge lead was converted into is none of crmbridge's business and is passed over.

Deleted Leads follow, as delete observations. Every verdict's ``native_id`` is the Lead's id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crmbridge import Change, Cursor, MappingError, Outcome, OutcomeBatch
from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.connector.reading import (
    DeletedPosition,
    DeletedReader,
    IncrementalStream,
    StreamPosition,
)
from crmbridge_salesforce.connector.records import (
    DEAL_STAGES,
    ConvertedLeads,
    LeadReader,
    Record,
    chunks,
    parse_time,
    plain,
)
from crmbridge_salesforce.connector.schema import OrgSchema
from crmbridge_salesforce.connector.session import SalesforceSession

LOOKUP_CHUNK = 200


class OutcomeReader:
    """``pull_outcomes``: Lead and Opportunity changes as verdicts and observations."""

    def __init__(
        self,
        session: SalesforceSession,
        schema: OrgSchema,
        records: LeadReader,
        converted: ConvertedLeads,
        lookback: timedelta,
        log: logging.Logger,
    ) -> None:
        self.session = session
        self.schema = schema
        self.records = records
        self.converted = converted
        self.log = log
        self.key_field = records.external_id_field
        self.leads = IncrementalStream(
            session, "Lead", lambda: records.lead_fields(schema.lead), lookback, log
        )
        self.opportunities = IncrementalStream(
            session,
            "Opportunity",
            lambda: records.opportunity_fields(schema.opportunity),
            lookback,
            log,
        )
        self.deleted = DeletedReader(session, "Lead", lookback, log)

    def pull(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        """Batches of verdicts, observations and problems, each with the cursor after it."""
        at = _Positions(
            StreamPosition.of(cursor.get("leads")),
            StreamPosition.of(cursor.get("opportunities")),
            DeletedPosition.of(cursor.get("deleted")),
        )
        for page, leads in self.leads.pages(at.leads):
            at.leads = leads
            outcomes, observations, problems = self._leads(page)
            yield OutcomeBatch(outcomes, at.cursor(), observations, problems)
        for page, deals in self.opportunities.pages(at.deals):
            at.deals = deals
            outcomes, problems = self._deals(page)
            yield OutcomeBatch(outcomes, at.cursor(), (), problems)
        deleted, at.deletes = self.deleted.read(at.deletes, _latest(at.leads, at.deals))
        observations = [self.records.deleted(rid, when) for rid, when in deleted]
        yield OutcomeBatch([], at.cursor(), observations)

    def _leads(self, page: Sequence[Record]) -> tuple[list[Outcome], list[Change], list[Change]]:
        outcomes: list[Outcome] = []
        observations: list[Change] = []
        problems: list[Change] = []
        for record in page:
            self.converted.note(record, self.key_field)
            change = self.records.change(record)
            found: list[Outcome] = []
            if not change.problems:
                try:
                    found = self.records.lead_outcomes(record, change)
                except MappingError as exc:
                    change = self.records.problem(change, exc, "Lead.Status")
            if change.problems:
                problems.append(change)
                continue
            observations.append(change)
            outcomes.extend(found)
        return outcomes, observations, problems

    def _deals(self, page: Sequence[Record]) -> tuple[list[Outcome], list[Change]]:
        leads = self._converted_from([str(o["Id"]) for o in page])
        outcomes: list[Outcome] = []
        problems: list[Change] = []
        for opportunity in page:
            lead = leads.get(str(opportunity["Id"]))
            if lead is None:
                continue
            try:
                found = self.records.deal_outcome(opportunity, lead)
            except MappingError as exc:
                problems.append(self._deal_problem(opportunity, lead, exc))
                continue
            if found is not None:
                outcomes.append(found)
        return outcomes, problems

    def _converted_from(self, opportunity_ids: Sequence[str]) -> dict[str, Record]:
        """The Leads converted into these opportunities, by opportunity id."""
        lead = self.schema.lead
        fields = lead.existing(
            ["Id", "Email", self.key_field, "IsConverted", "ConvertedAccountId",
             "ConvertedContactId", "ConvertedOpportunityId"]
        )  # fmt: skip
        found: dict[str, Record] = {}
        for part in chunks(list(opportunity_ids), LOOKUP_CHUNK):
            query = soql.select("Lead", fields, [soql.is_in("ConvertedOpportunityId", part)])
            answer = self.session.query_all("query Lead (converted into opportunities)", query)
            for record in answer.get("records") or []:
                self.converted.note(record, self.key_field)
                found[str(record.get("ConvertedOpportunityId"))] = record
        return found

    def _deal_problem(
        self, opportunity: Mapping[str, Any], lead: Mapping[str, Any], exc: MappingError
    ) -> Change:
        change = self.records.change(lead)
        raw = {**plain(lead), **{f"Opportunity.{k}": v for k, v in plain(opportunity).items()}}
        when = parse_time(opportunity.get("SystemModstamp")) or change.modified_at
        base = Change(change.system, change.native_id, change.kind, when, lead=change.lead, raw=raw)
        return self.records.problem(base, exc, DEAL_STAGES)


@dataclass
class _Positions:
    """The three positions of an outcome cursor, as a read moves them."""

    leads: StreamPosition
    deals: StreamPosition
    deletes: DeletedPosition

    def cursor(self) -> Cursor:
        return Cursor(
            {
                "leads": self.leads.to_json(),
                "opportunities": self.deals.to_json(),
                "deleted": self.deletes.to_json(),
            }
        )


def _latest(*positions: StreamPosition) -> datetime | None:
    stamps = [p.at for p in positions if p.at is not None]
    return max(stamps) if stamps else None
