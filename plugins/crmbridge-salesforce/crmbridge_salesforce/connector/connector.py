"""The Salesforce connector: Leads (and the Opportunities they become), in the shared language.

Salesforce is usually the sales system: it receives handoffs as Leads and gives verdicts through
Lead Status, conversion and the converted Opportunity's stage. It can also be the marketing side
(Leads as the source of leads, verdicts written back onto them), since roles come from the
pipeline's configuration. Everything goes through simple-salesforce with the session of
:mod:`~crmbridge_salesforce.connector.session` (timed out, counted, refreshed, retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from crmbridge import (
    ApiUsage,
    Change,
    ChangeBatch,
    CheckReport,
    Connector,
    ConnectorSettings,
    Cursor,
    LeadDefinition,
    LeadWrite,
    OutcomeBatch,
    SetupReport,
    WriteResult,
)
from crmbridge_salesforce.connector import schema
from crmbridge_salesforce.connector.changes import ChangeReader
from crmbridge_salesforce.connector.outcomes import OutcomeReader
from crmbridge_salesforce.connector.owners import OwnerDirectory
from crmbridge_salesforce.connector.records import ConvertedLeads, LeadReader
from crmbridge_salesforce.connector.session import SalesforceSession
from crmbridge_salesforce.connector.settings import SalesforceSettings
from crmbridge_salesforce.connector.writing import LeadWriter


class SalesforceConnector(Connector):
    """Salesforce Leads, through the definition's ``[systems.salesforce]`` mapping.

    :param settings: a :class:`SalesforceSettings`.
    :param definition: the lead definition.
    :param log: the connector's logger.
    :param sleep: how retries wait (tests pass a fast or recording one).
    """

    name = "salesforce"
    system = "salesforce"
    label = "Salesforce"
    roles: ClassVar[frozenset[str]] = frozenset({"marketing", "sales"})
    settings_class: ClassVar[type[ConnectorSettings]] = SalesforceSettings
    batch_size: ClassVar[int] = 200

    def __init__(
        self,
        settings: ConnectorSettings,
        definition: LeadDefinition,
        *,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not isinstance(settings, SalesforceSettings):
            raise TypeError(
                f"SalesforceConnector needs SalesforceSettings, got {type(settings).__name__}"
            )
        super().__init__(settings, definition, log=log)
        self.salesforce_settings = settings
        self.session = SalesforceSession(settings, log=self.log, sleep=sleep)
        self.schema = schema.OrgSchema(self.session)
        self.fields = schema.crmbridge_fields(settings.external_id_field)
        self.converted = ConvertedLeads()
        self.records = LeadReader(self.mapping, settings.external_id_field)
        self.owners = OwnerDirectory(self.session)
        lookback = timedelta(seconds=settings.lookback_seconds)
        self.changes = ChangeReader(
            self.session, self.schema, self.records, self.converted, settings, self.log
        )
        self.outcomes = OutcomeReader(
            self.session, self.schema, self.records, self.converted, lookback, self.log
        )
        self.writer = LeadWriter(
            self.session,
            self.schema,
            definition,
            self.mapping,
            settings,
            self.owners,
            self.converted,
            self.fields,
            self.log,
        )

    # -- marketing side --------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """Leads changed since ``cursor`` (lookback, ties, deletes), page by page."""
        return self.changes.pull_changes(cursor)

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every Lead modified in ``[since, until)`` (``since=None``: from the first); Bulk API
        2.0 from ``bulk_threshold`` Leads on."""
        return self.changes.pull_range(since, until, cursor)

    def count_range(self, since: datetime | None, until: datetime | None) -> int | None:
        """How many Leads were modified in ``[since, until)`` (one ``COUNT()`` query)."""
        return self.changes.count_range(since, until)

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        """The Leads with these ids, read now (deleted ones as deletes)."""
        return self.changes.fetch(native_ids)

    def write_outcomes(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Verdicts onto existing Leads (Status, rejection reason, crmbridge's fields), by Id."""
        return self.writer.update(writes)

    # -- sales side ------------------------------------------------------------------------

    def push_leads(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Handoffs as upserts on the external id; duplicates adopted, converted leads
        skipped; Bulk API 2.0 from ``bulk_threshold`` records on."""
        return self.writer.push(writes)

    def pull_outcomes(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        """Verdicts from Lead Status, conversions and closed Opportunities since ``cursor``."""
        return self.outcomes.pull(cursor)

    # -- both ------------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """Login, crmbridge's Lead fields, the mapped fields, permissions and picklist drift.

        A refused login or an unreachable org is an error in the report rather than raised, so
        ``crmbridge check`` shows it next to everything else.
        """
        return schema.check(self.session, self.schema, self.mapping, self.fields)

    def setup(self, *, dry_run: bool = False) -> SetupReport:
        """The crmbridge fields that exist, and (under ``manual``) those an admin must add."""
        return schema.setup(self.schema, self.mapping, self.fields, dry_run=dry_run)

    def api_usage(self) -> ApiUsage:
        """The org's rolling 24-hour quota as the last answer said it, and the calls made."""
        return self.session.api_usage()

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()
