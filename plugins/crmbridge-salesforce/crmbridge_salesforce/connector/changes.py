"""Leads as a source of leads (the marketing side): incremental reads, backfills, fetch by id.

``pull_changes`` reads as :mod:`~crmbridge_salesforce.connector.reading` describes (lookback,
ties, restarted queries, deletes from the delete log). ``pull_range`` reads every Lead modified in
a window for a backfill: with Bulk API 2.0 query jobs when the window holds at least
``bulk_threshold`` Leads, with query paging otherwise; either way in ``SystemModstamp, Id`` order
and resumable from the last record handed out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crmbridge import Change, ChangeBatch, Cursor
from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.connector.bulk import BulkQueryPages
from crmbridge_salesforce.connector.reading import (
    DeletedPosition,
    DeletedReader,
    IncrementalStream,
    KeysetQuery,
    StreamPosition,
)
from crmbridge_salesforce.connector.records import (
    ConvertedLeads,
    LeadReader,
    Record,
    chunks,
    from_csv_row,
    parse_time,
)
from crmbridge_salesforce.connector.schema import OrgSchema
from crmbridge_salesforce.connector.session import SalesforceSession
from crmbridge_salesforce.connector.settings import SalesforceSettings

LEAD = "Lead"
FETCH_CHUNK = 200


class ChangeReader:
    """Leads changed, in a window, or by id, as :class:`~crmbridge.Change` batches."""

    def __init__(
        self,
        session: SalesforceSession,
        schema: OrgSchema,
        records: LeadReader,
        converted: ConvertedLeads,
        settings: SalesforceSettings,
        log: logging.Logger,
    ) -> None:
        self.session = session
        self.schema = schema
        self.records = records
        self.converted = converted
        self.settings = settings
        self.log = log
        lookback = timedelta(seconds=settings.lookback_seconds)
        self.stream = IncrementalStream(session, LEAD, self._fields, lookback, log)
        self.deleted = DeletedReader(session, LEAD, lookback, log)
        self._counts: dict[tuple[datetime | None, datetime | None], int] = {}
        self.bulk_jobs = 0

    def _fields(self) -> list[str]:
        return self.records.lead_fields(self.schema.lead)

    def _change(self, record: Record) -> Change:
        self.converted.note(record, self.records.external_id_field)
        return self.records.change(record)

    # -- incremental ---------------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """Leads changed since ``cursor``, then the Leads deleted since."""
        at = _Positions(
            StreamPosition.of(cursor.get("leads")), DeletedPosition.of(cursor.get("deleted"))
        )
        for page, leads in self.stream.pages(at.leads):
            at.leads = leads
            yield ChangeBatch([self._change(r) for r in page], at.cursor())
        deleted, at.deletes = self.deleted.read(at.deletes, at.leads.at)
        yield ChangeBatch([self.records.deleted(rid, when) for rid, when in deleted], at.cursor())

    # -- backfill ------------------------------------------------------------------------------

    @staticmethod
    def _window(since: datetime | None, until: datetime | None) -> list[str]:
        where = [soql.modified_since(since)] if since is not None else []
        if until is not None:
            where.append(soql.modified_before(until))
        return where

    def count_range(self, since: datetime | None, until: datetime | None) -> int:
        """How many Leads were modified in ``[since, until)`` (one ``COUNT()`` query)."""
        query = soql.count(LEAD, self._window(since, until))
        answer = self.session.call("count Lead", lambda sf: sf.query(query))
        total = int(answer.get("totalSize") or 0)
        self._counts[(since, until)] = total
        return total

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every Lead modified in ``[since, until)``, resumable from ``cursor``."""
        after = cursor.get("after")
        last: tuple[datetime, str] | None = None
        if isinstance(after, Sequence) and len(after) == 2:
            stamp = parse_time(after[0])
            last = (stamp, str(after[1])) if stamp is not None else None
        total = self._counts.pop((since, until), None)
        if total is None:
            total = self.count_range(since, until)
            self._counts.pop((since, until), None)
        where = self._window(since, until)
        if total >= self.settings.bulk_threshold:
            yield from self._bulk_range(where, last)
        else:
            yield from self._query_range(where, last)

    def _query_range(
        self, where: list[str], last: tuple[datetime, str] | None
    ) -> Iterator[ChangeBatch]:
        query = KeysetQuery(self.session, LEAD, self._fields(), where, log=self.log)
        query.last = last
        for page in query.pages():
            yield ChangeBatch([self._change(r) for r in page], _after(page))

    def _bulk_range(
        self, where: list[str], last: tuple[datetime, str] | None
    ) -> Iterator[ChangeBatch]:
        mark = [last]

        def soql_for() -> str:
            conditions = list(where)
            if mark[0] is not None:
                conditions.append(soql.after(*mark[0]))
            return soql.select(LEAD, self._fields(), conditions, order_by_modstamp=True)

        pages = BulkQueryPages(self.session, LEAD, soql_for, self.log)
        lead = self.schema.lead
        for rows in pages.pages():
            records = [from_csv_row(row, lead) for row in rows]
            for part in chunks(records, self.settings.query_page_size):
                batch = _after(part)
                stamp = parse_time(part[-1].get("SystemModstamp"))
                if stamp is not None:
                    mark[0] = (stamp, str(part[-1]["Id"]))
                yield ChangeBatch([self._change(r) for r in part], batch)
        self.bulk_jobs += pages.jobs

    # -- by id ---------------------------------------------------------------------------------

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        """The Leads with these ids as they are now; deleted ones as deletes."""
        fields = [*self._fields(), "IsDeleted"]
        changes: list[Change] = []
        for part in chunks(list(dict.fromkeys(native_ids)), FETCH_CHUNK):
            query = soql.select(LEAD, fields, [soql.is_in("Id", part)])
            answer = self.session.query_all("query Lead by id", query, include_deleted=True)
            for record in answer.get("records") or []:
                if record.get("IsDeleted"):
                    when = parse_time(record.get("SystemModstamp"))
                    if when is not None:
                        changes.append(self.records.deleted(str(record["Id"]), when))
                    continue
                changes.append(self._change(record))
        return changes


@dataclass
class _Positions:
    """The two positions of a change cursor, as a read moves them."""

    leads: StreamPosition
    deletes: DeletedPosition

    def cursor(self) -> Cursor:
        return Cursor({"leads": self.leads.to_json(), "deleted": self.deletes.to_json()})


def _after(page: Sequence[Record]) -> Cursor:
    last = page[-1]
    return Cursor({"after": [str(last.get("SystemModstamp")), str(last["Id"])]})
