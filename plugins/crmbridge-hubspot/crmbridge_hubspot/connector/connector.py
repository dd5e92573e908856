"""The HubSpot connector: contacts in a HubSpot portal, spoken in the shared lead definition.

HubSpot is usually the marketing system (a source of leads that receives sales' verdicts), but it
can play sales too (receive handoffs, give verdicts in ``hs_lead_status``); which one is set by
the pipeline's configuration. Everything goes through the SDK ``hubspot-api-client`` with the
client of :mod:`~crmbridge_hubspot.connector.client` (paced, timed out, counted, retried).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import ClassVar

from crmbridge import (
    ApiUsage,
    AuthenticationError,
    Change,
    ChangeBatch,
    CheckReport,
    Connector,
    ConnectorSettings,
    CrmBridgeError,
    Cursor,
    FatalError,
    LeadDefinition,
    LeadWrite,
    OutcomeBatch,
    QuotaExhausted,
    SetupReport,
    WriteResult,
)
from crmbridge_hubspot.connector import schema
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import SYSTEM
from crmbridge_hubspot.connector.outcomes import OutcomeReader
from crmbridge_hubspot.connector.owners import OwnerDirectory
from crmbridge_hubspot.connector.reading import ChangeReader
from crmbridge_hubspot.connector.records import ContactMapper
from crmbridge_hubspot.connector.settings import HubSpotSettings
from crmbridge_hubspot.connector.writing import ContactWriter


class HubSpotConnector(Connector):
    """HubSpot contacts, through the definition's ``[systems.hubspot]`` mapping.

    :param settings: a :class:`HubSpotSettings`.
    :param definition: the lead definition.
    :param log: the connector's logger.
    :param sleep: how retries wait (tests pass a fast or recording one).
    """

    name = "hubspot"
    system = "hubspot"
    label = "HubSpot"
    roles: ClassVar[frozenset[str]] = frozenset({"marketing", "sales"})
    settings_class: ClassVar[type[ConnectorSettings]] = HubSpotSettings
    batch_size: ClassVar[int] = 100

    def __init__(
        self,
        settings: ConnectorSettings,
        definition: LeadDefinition,
        *,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not isinstance(settings, HubSpotSettings):
            raise TypeError(
                f"HubSpotConnector needs HubSpotSettings, got {type(settings).__name__}"
            )
        super().__init__(settings, definition, log=log)
        self.hubspot_settings = settings
        self.client = HubSpotClient(settings, log=self.log, sleep=sleep)
        self.mapper = ContactMapper(self.mapping)
        self.owners = OwnerDirectory(self.client)
        self.reader = ChangeReader(self.client, self.mapper, settings)
        self.outcome_reader = OutcomeReader(self.client, self.mapper, self.owners, settings)
        self.writer = ContactWriter(
            self.client,
            self.mapping,
            self.owners,
            self.batch_size,
            concurrency=settings.write_concurrency,
        )

    # -- marketing side --------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """Contacts changed since ``cursor`` (see :mod:`~crmbridge_hubspot.connector.reading`)."""
        return self.reader.pull_changes(cursor)

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every contact modified in ``[since, until)``; ``since=None`` reads every contact."""
        return self.reader.pull_range(since, until, cursor)

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        """These contacts as they are now (to retry quarantined records), by batch read."""
        return self.reader.fetch(native_ids)

    def write_outcomes(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Stage, lead status and crmbridge's properties, by batch update of existing contacts."""
        return self.writer.update(writes)

    # -- sales side ------------------------------------------------------------------------

    def push_leads(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Handoffs as batch upserts by email, with the handoff stage and the owner."""
        return self.writer.upsert(writes)

    def pull_outcomes(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        """Verdicts given in ``hs_lead_status`` since ``cursor``."""
        return self.outcome_reader.pull(cursor)

    # -- both ------------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """The token, crmbridge's properties, the mapped properties and picklist drift.

        A refused token, missing scopes or an unreachable portal are reported as errors in the
        report rather than raised, so ``crmbridge check`` shows them next to everything else.
        """
        types = {name: spec.type for name, spec in self.definition.fields.items()}
        try:
            report = schema.check(self.client, self.mapping, types)
        except CrmBridgeError as exc:
            report = CheckReport(SYSTEM)
            report.add("error", _subject(exc), exc.message, exc.hint or "")
            return report
        usage = self.client.api_usage()
        if usage.limit is not None and usage.used is not None:
            report.add(
                "ok", "API usage", f"{usage.used:,} of {usage.limit:,} calls of today's quota used"
            )
        return report

    def setup(self, *, dry_run: bool = False) -> SetupReport:
        """Create the ``crmbridge`` property group and crmbridge's contact properties."""
        return schema.setup(self.client, self.mapping, dry_run=dry_run)

    def api_usage(self) -> ApiUsage:
        """The daily quota as HubSpot's last answer said it, and the calls made."""
        return self.client.api_usage()

    def close(self) -> None:
        """Close the connection pools."""
        self.client.close()


def _subject(exc: CrmBridgeError) -> str:
    """What a failed check is about, for the report's line."""
    if isinstance(exc, AuthenticationError):
        return "token"
    if isinstance(exc, QuotaExhausted):
        return "API quota"
    if isinstance(exc, FatalError):
        return "permissions"
    return "connection"
