"""The sales side's reads: verdicts given in HubSpot's ``hs_lead_status``, read as outcomes.

When HubSpot plays the sales role, a rep's verdict is the contact's lead status. Contacts
crmbridge handed off (they carry ``crmbridge_id``) are searched by modification time from the
cursor minus the lookback, exactly as marketing changes are; each one's status is read through
the ``hs_lead_status`` picklist of the definition: a status meaning an outcome becomes an
:class:`~crmbridge.Outcome`, an ignored status nothing, an unmapped one a problem. The reason
comes from a picklist of the definition whose values carry reasons, when there is one (for
example ``[systems.hubspot.picklists.rejection_reason]``); HubSpot has no standard property for it.

The same verdict read again has the same key (system, record, kind, status), so the core records
it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from crmbridge import Change, Cursor, MappingError, Outcome, OutcomeBatch, Problem, SystemMapping
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import SYSTEM
from crmbridge_hubspot.connector.native import to_ms
from crmbridge_hubspot.connector.owners import OwnerDirectory
from crmbridge_hubspot.connector.pages import Keyset, search_window
from crmbridge_hubspot.connector.records import (
    OWNER,
    ContactMapper,
    modified_at,
    properties_to_read,
)
from crmbridge_hubspot.connector.settings import HubSpotSettings

HANDED_OFF = {"propertyName": "crmbridge_id", "operator": "HAS_PROPERTY"}


def reason_picklist(mapping: SystemMapping) -> str | None:
    """The key of the first picklist whose values mean reasons, if the definition has one."""
    for key, picklist in mapping.picklists.items():
        if any(v.reason for v in picklist.values.values()):
            return key
    return None


class OutcomeReader:
    """``pull_outcomes`` of the HubSpot connector."""

    def __init__(
        self,
        client: HubSpotClient,
        mapper: ContactMapper,
        owners: OwnerDirectory,
        settings: HubSpotSettings,
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.mapping = mapper.mapping
        self.owners = owners
        self.lookback_ms = int(settings.lookback_seconds * 1000)
        self.reasons = reason_picklist(self.mapping)
        self.properties = properties_to_read(self.mapping, OWNER)

    def pull(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        """Verdicts given since ``cursor``, one batch per page, with the records observed."""
        since = int(cursor.get("since_ms", 0))
        start = Keyset(max(0, since - self.lookback_ms) if since else 0)
        high = since
        for page, _next in search_window(
            self.client, self.properties, start, extra_filters=[HANDED_OFF]
        ):
            if not page:
                continue
            outcomes: list[Outcome] = []
            observations: list[Change] = []
            problems: list[Change] = []
            for contact in page:
                change = self.mapper.upsert(contact)
                found, problem = self._verdict(contact, change)
                if problem is not None:
                    change = Change(
                        change.system,
                        change.native_id,
                        change.kind,
                        change.modified_at,
                        change.lead,
                        change.raw,
                        (*change.problems, problem),
                    )
                (problems if change.problems else observations).append(change)
                outcomes.extend(found)
                high = max(high, to_ms(change.modified_at))
            yield OutcomeBatch(outcomes, Cursor({"since_ms": high}), observations, problems)

    def _verdict(self, contact: Any, change: Change) -> tuple[list[Outcome], Problem | None]:
        props = contact.properties or {}
        field = self.mapping.outcome_field
        status = props.get(field) if field else None
        if not status:
            return [], None
        try:
            kind = self.mapping.outcome_from_native(str(status))
            if kind is None:
                return [], None
            reason = None
            if self.reasons is not None:
                native = self.mapping.picklist(self.reasons).field
                reason = self.mapping.reason_from_native(self.reasons, props.get(native))
        except MappingError as exc:
            return [], Problem(
                exc.field or field or "status", exc.rule or "picklist_mapping", exc.message
            )
        outcome = Outcome(
            kind,
            SYSTEM,
            change.native_id,
            modified_at(contact),
            email=change.lead.email if change.lead else "",
            reason=reason,
            native_value=str(status),
            owner=self.owners.email_of(props.get(OWNER)),
            crmbridge_id=props.get("crmbridge_id") or None,
        )
        return [outcome], None
