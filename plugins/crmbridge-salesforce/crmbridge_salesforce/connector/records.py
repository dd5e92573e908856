"""Native Lead and Opportunity records, read through the lead definition.

A record as the REST API answers it (parents nested: ``{"Owner": {"Email": ...}}``) or as a Bulk
API 2.0 CSV row (``Owner.Email`` columns, everything text) becomes the same plain record here, and
then a :class:`~crmbridge.Change` (a shared lead with the problems found) and sales' verdicts
(:class:`~crmbridge.Outcome`). A picklist value the definition does not map is a problem of the
record, never passed through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crmbridge import (
    Change,
    ChangeKind,
    Lead,
    MappingError,
    Outcome,
    OutcomeKind,
    Problem,
    SystemMapping,
    normalize_email,
)
from crmbridge_salesforce.connector.schema import ObjectInfo

Record = dict[str, Any]
REJECTION_REASONS = "Lead.Rejection_Reason__c"
LOSS_REASONS = "Opportunity.Loss_Reason__c"
DEAL_STAGES = "Opportunity.StageName"
LEAD_SYSTEM_FIELDS = (
    "Id", "Email", "Status", "IsConverted", "ConvertedAccountId", "ConvertedContactId",
    "ConvertedOpportunityId", "Rejection_Reason__c", "OwnerId", "Owner.Name", "Owner.Email",
    "LastModifiedDate", "SystemModstamp",
)  # fmt: skip
OPPORTUNITY_FIELDS = (
    "Id", "StageName", "Amount", "Loss_Reason__c", "IsClosed", "IsWon", "OwnerId", "Owner.Name",
    "Owner.Email", "LastModifiedDate", "SystemModstamp",
)  # fmt: skip


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from Salesforce's ``2024-01-02T03:04:05.000+0000``."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def value(record: Mapping[str, Any], path: str) -> Any:
    """A field of a record, following dotted parent paths (``Owner.Email``)."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def plain(record: Mapping[str, Any]) -> Record:
    """The record without ``attributes``, parents flattened to dotted keys (JSON for ``raw``)."""
    out: Record = {}
    for key, item in record.items():
        if key == "attributes":
            continue
        if isinstance(item, Mapping):
            out.update({f"{key}.{k}": v for k, v in plain(item).items()})
        else:
            out[key] = item
    return out


def from_csv_row(row: Mapping[str, str], obj: ObjectInfo) -> Record:
    """A Bulk API 2.0 CSV row as a REST-shaped record: typed values, parents nested."""
    record: Record = {}
    for column, text in row.items():
        typed = _typed(obj, column, text)
        head, _, tail = column.partition(".")
        if tail:
            record.setdefault(head, {})[tail] = typed
        else:
            record[column] = typed
    return record


def _typed(obj: ObjectInfo, column: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    info = obj.get(column) if "." not in column else None
    kind = info.type if info is not None else "string"
    if kind == "boolean":
        return text.strip().lower() == "true"
    if kind == "int":
        return int(float(text))
    if kind in {"double", "currency", "percent"}:
        return float(text)
    return text


def owner_of(record: Mapping[str, Any]) -> str | None:
    """Who owns a record: the owner's email, else its name (a queue may have no email)."""
    found = value(record, "Owner.Email") or value(record, "Owner.Name")
    return str(found) if found else None


@dataclass(frozen=True)
class Conversion:
    """What a converted lead became."""

    lead_id: str
    contact_id: str | None
    opportunity_id: str | None
    account_id: str | None = None

    def describe(self) -> str:
        """``converted to contact 003… / opportunity 006…`` for a skipped write."""
        parts = [f"contact {self.contact_id}" if self.contact_id else "a contact"]
        if self.opportunity_id:
            parts.append(f"opportunity {self.opportunity_id}")
        return f"converted to {' / '.join(parts)}; crmbridge follows those, not lead {self.lead_id}"


def conversion_of(record: Mapping[str, Any]) -> Conversion | None:
    """The lead's conversion, if it was converted."""
    if not value(record, "IsConverted"):
        return None
    return Conversion(
        lead_id=str(record["Id"]),
        contact_id=value(record, "ConvertedContactId"),
        opportunity_id=value(record, "ConvertedOpportunityId"),
        account_id=value(record, "ConvertedAccountId"),
    )


class LeadReader:
    """Lead and Opportunity records as changes and outcomes, through ``[systems.salesforce]``."""

    def __init__(self, mapping: SystemMapping, external_id_field: str) -> None:
        self.mapping = mapping
        self.system = mapping.name
        self.external_id_field = external_id_field

    def lead_fields(self, lead: ObjectInfo) -> list[str]:
        """What to select of a Lead: the mapped fields and what outcomes need, if the org has
        them (a missing one is :meth:`check`'s to report, not a reason to fail every query)."""
        wanted = [*LEAD_SYSTEM_FIELDS, self.external_id_field, *self.mapping.fields.values()]
        return lead.existing(dict.fromkeys(wanted))

    @staticmethod
    def opportunity_fields(opportunity: ObjectInfo) -> list[str]:
        """What to select of an Opportunity."""
        return opportunity.existing(OPPORTUNITY_FIELDS)

    # -- changes -------------------------------------------------------------------------------

    def change(self, record: Mapping[str, Any]) -> Change:
        """A Lead as a change: the shared lead (with the stage its Status shows) and problems."""
        fields, problems = self.mapping.from_native(record)
        stage = None
        status = record.get("Status")
        if status and self.mapping.stage_field:
            try:
                stage = self.mapping.stage_from_native(str(status))
            except MappingError as exc:
                problems.append(_problem(self.mapping.stage_field, exc))
        modified = parse_time(record.get("SystemModstamp")) or datetime.now(UTC)
        if "email" not in fields and record.get("Email") is not None:
            fields["email"] = record["Email"]
        lead = Lead.from_fields(
            fields, source=self.system, system_id=str(record["Id"]), stage=stage,
            modified_at=modified,
        )  # fmt: skip
        return Change(
            self.system,
            str(record["Id"]),
            ChangeKind.UPSERT,
            modified,
            lead=lead,
            raw=plain(record),
            problems=tuple(problems),
        )

    def deleted(self, lead_id: str, deleted_at: datetime) -> Change:
        """A Lead deleted in Salesforce."""
        return Change(self.system, lead_id, ChangeKind.DELETE, deleted_at, raw={"Id": lead_id})

    # -- outcomes ------------------------------------------------------------------------------

    def lead_outcomes(self, record: Mapping[str, Any], change: Change) -> list[Outcome]:
        """The verdict a Lead's Status (and conversion) gives; a mapping failure raises."""
        status = record.get("Status")
        conversion = conversion_of(record)
        if conversion is not None:
            kind: OutcomeKind | None = OutcomeKind.CONVERTED
        elif status:
            kind = self.mapping.outcome_from_native(str(status))
        else:
            kind = None
        if kind is None:
            return []
        reason = None
        if kind in (OutcomeKind.REJECTED, OutcomeKind.RECYCLED, OutcomeKind.LOST):
            reason = self._reason(REJECTION_REASONS, record.get("Rejection_Reason__c"))
        details: dict[str, Any] = {}
        if conversion is not None:
            details = {
                k: v
                for k, v in (
                    ("opportunity_id", conversion.opportunity_id),
                    ("contact_id", conversion.contact_id),
                    ("account_id", conversion.account_id),
                )
                if v
            }
        return [
            Outcome(
                kind,
                self.system,
                str(record["Id"]),
                self._when(record),
                email=change.lead.email if change.lead else "",
                reason=reason,
                native_value=str(status) if status else str(kind),
                owner=owner_of(record),
                crmbridge_id=value(record, self.external_id_field),
                details=details,
            )
        ]

    def deal_outcome(
        self, opportunity: Mapping[str, Any], lead: Mapping[str, Any]
    ) -> Outcome | None:
        """Won or lost, from the Opportunity a lead was converted into; a mapping failure
        raises."""
        stage = opportunity.get("StageName")
        if not stage:
            return None
        kind = self.mapping.outcome_from_native(str(stage), DEAL_STAGES)
        if kind is None:
            return None
        reason = None
        if kind is OutcomeKind.LOST:
            reason = self._reason(LOSS_REASONS, opportunity.get("Loss_Reason__c"))
        amount = opportunity.get("Amount")
        details = {
            k: v
            for k, v in (
                ("opportunity_id", opportunity.get("Id")),
                ("contact_id", lead.get("ConvertedContactId")),
                ("account_id", lead.get("ConvertedAccountId")),
            )
            if v
        }
        return Outcome(
            kind,
            self.system,
            str(lead["Id"]),
            self._when(opportunity),
            email=normalize_email(lead.get("Email")),
            reason=reason,
            native_value=str(stage),
            amount=float(amount) if amount is not None else None,
            owner=owner_of(opportunity),
            crmbridge_id=value(lead, self.external_id_field),
            details=details,
        )

    def _reason(self, picklist: str, native: Any) -> str | None:
        if picklist not in self.mapping.picklists:
            return None
        return self.mapping.reason_from_native(picklist, native)

    @staticmethod
    def _when(record: Mapping[str, Any]) -> datetime:
        # LastModifiedDate is when a person last changed it; SystemModstamp also moves for
        # Salesforce's own background work.
        return (
            parse_time(record.get("LastModifiedDate"))
            or parse_time(record.get("SystemModstamp"))
            or datetime.now(UTC)
        )

    def problem(self, change: Change, exc: MappingError, default_field: str) -> Change:
        """``change`` with the mapping failure added to its problems."""
        found = _problem(exc.field or default_field, exc)
        return Change(
            change.system,
            change.native_id,
            change.kind,
            change.modified_at,
            lead=change.lead,
            raw=change.raw,
            problems=(*change.problems, found),
        )


def _problem(field_name: str, exc: MappingError) -> Problem:
    return Problem(field_name, exc.rule or "picklist_mapping", exc.message)


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ConvertedLeads:
    """The converted leads seen so far, by lead id and by crmbridge id.

    A converted lead cannot be updated (``CANNOT_UPDATE_CONVERTED_LEAD``): its contact and
    opportunity are the records to follow. Reads fill this, so writes skip such leads without
    asking Salesforce.
    """

    def __init__(self) -> None:
        self._by_lead: dict[str, Conversion] = {}
        self._by_crmbridge_id: dict[str, Conversion] = {}

    def add(self, conversion: Conversion, crmbridge_id: str | None = None) -> None:
        self._by_lead[conversion.lead_id] = conversion
        if crmbridge_id:
            self._by_crmbridge_id[crmbridge_id] = conversion

    def note(self, record: Mapping[str, Any], external_id_field: str) -> None:
        """Remember ``record`` if it is a converted lead."""
        conversion = conversion_of(record)
        if conversion is not None:
            self.add(conversion, value(record, external_id_field))

    def find(self, native_id: str | None, crmbridge_id: str | None) -> Conversion | None:
        return self._by_lead.get(native_id or "") or self._by_crmbridge_id.get(crmbridge_id or "")

    def __len__(self) -> int:
        return len(self._by_lead)
