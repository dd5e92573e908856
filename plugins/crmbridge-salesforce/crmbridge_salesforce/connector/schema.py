"""crmbridge's Lead fields and the org's schema: what an admin adds, and checking the org.

The Metadata API (which could create fields) is out of the connector's scope, so ``setup`` reads
the org and lists every missing field under ``manual`` with exactly what to add and where;
``check`` reads the same describes and reports missing fields, fields crmbridge may not edit, and
every picklist value with no mapping (and every mapped value the org lacks), by name.

The describes of Lead and Opportunity are read once per connector and kept: writes need the field
lengths (to cut ``CrmBridge_Why__c``) and which optional fields exist, reads need which fields to
select. ``check`` and ``setup`` read them afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmbridge import (
    AuthenticationError,
    CheckReport,
    CrmBridgeError,
    QuotaExhausted,
    SetupReport,
    SystemMapping,
)
from crmbridge_salesforce.connector.errors import SYSTEM
from crmbridge_salesforce.connector.session import SalesforceSession

LEAD = "Lead"
OPPORTUNITY = "Opportunity"
NEW_FIELD = "Setup → Object Manager → {object} → Fields & Relationships → New"
TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "url", "picklist"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int"})
ID_LENGTH = 27
"""The length of a crmbridge id (``cb-`` and 24 hex digits)."""


@dataclass(frozen=True)
class FieldSpec:
    """A custom field crmbridge writes on Lead: its API name, type and why it is there.

    :param annotation: the annotation of :data:`crmbridge.ANNOTATIONS` it holds.
    :param kind: the field type as an admin picks it in Setup (``Text(64)``).
    :param types: describe ``type`` values that fit.
    :param flags: what else to tick (``External ID, Unique``).
    :param marketing: only needed when Salesforce is the marketing side (receives outcomes).
    """

    name: str
    annotation: str
    kind: str
    types: frozenset[str]
    length: int = 0
    flags: str = ""
    marketing: bool = False

    def instruction(self, object_name: str = LEAD) -> str:
        """What an admin adds, and where."""
        flags = f", {self.flags}" if self.flags else ""
        where = NEW_FIELD.format(object=object_name)
        return f"{object_name}.{self.name}: {self.kind}{flags} — {where}"


def crmbridge_fields(external_id_field: str) -> tuple[FieldSpec, ...]:
    """Every crmbridge Lead field, the external id one named as configured."""
    text = frozenset({"string"})
    when = frozenset({"datetime"})
    return (
        FieldSpec(
            external_id_field, "crmbridge_id", "Text(64)", text, 64,
            "External ID, Unique (case-insensitive)",
        ),
        FieldSpec("CrmBridge_Score__c", "score", "Number(16, 2)", NUMBER_TYPES),
        FieldSpec("CrmBridge_Stage__c", "stage", "Text(40)", text, 40),
        FieldSpec(
            "CrmBridge_Why__c", "why", "Long Text Area(32768)", frozenset({"textarea", "string"}),
            32768,
        ),
        FieldSpec("CrmBridge_Handoff_At__c", "handed_off_at", "Date/Time", when),
        FieldSpec("CrmBridge_SLA_Due__c", "sla_due_at", "Date/Time", when),
        FieldSpec(
            "CrmBridge_SLA_Breached__c", "sla_breached", "Checkbox", frozenset({"boolean"}),
            flags="default unchecked",
        ),
        FieldSpec(
            "CrmBridge_Definition_Version__c", "definition_version", "Text(40)", text, 40
        ),
        FieldSpec(
            "CrmBridge_Accepted_At__c", "accepted_at", "Date/Time", when, marketing=True
        ),
        FieldSpec("CrmBridge_Owner__c", "owner", "Text(121)", text, 121, marketing=True),
        FieldSpec("CrmBridge_Outcome__c", "outcome", "Text(20)", text, 20, marketing=True),
        FieldSpec(
            "CrmBridge_Outcome_Reason__c", "outcome_reason", "Text(255)", text, 255,
            marketing=True,
        ),
        FieldSpec(
            "CrmBridge_Deal_Amount__c", "deal_amount", "Currency(16, 2)", NUMBER_TYPES,
            marketing=True,
        ),
    )  # fmt: skip


# -- the org's describes ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    """What a describe says about one field."""

    name: str
    type: str
    length: int
    createable: bool
    updateable: bool
    external_id: bool
    unique: bool
    picklist: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> FieldInfo:
        return cls(
            name=str(data["name"]),
            type=str(data.get("type", "")),
            length=int(data.get("length") or 0),
            createable=bool(data.get("createable")),
            updateable=bool(data.get("updateable")),
            external_id=bool(data.get("externalId")),
            unique=bool(data.get("unique")),
            picklist=tuple(
                str(v["value"]) for v in data.get("picklistValues") or () if v.get("active", True)
            ),
        )


@dataclass
class ObjectInfo:
    """One object's fields, looked up case-insensitively as Salesforce does."""

    name: str
    fields: dict[str, FieldInfo] = field(default_factory=dict)

    def get(self, name: str) -> FieldInfo | None:
        found = self.fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((f for n, f in self.fields.items() if n.lower() == lowered), None)

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def existing(self, names: Iterable[str]) -> list[str]:
        """The names (dotted paths are kept: their parent is checked) that this object has."""
        out = []
        for name in names:
            head = name.split(".", 1)[0]
            if "." in name:
                if self.has(head + "Id") or self.has(head):
                    out.append(name)
            elif self.has(name):
                out.append(name)
        return out


class OrgSchema:
    """The describes of Lead and Opportunity, read once and kept."""

    def __init__(self, session: SalesforceSession) -> None:
        self.session = session
        self._objects: dict[str, ObjectInfo] = {}

    def object(self, name: str) -> ObjectInfo:
        """The object's fields (described on first use)."""
        if name not in self._objects:
            self._objects[name] = self._describe(name)
        return self._objects[name]

    def refresh(self) -> None:
        """Forget the describes: the next use reads them again."""
        self._objects.clear()

    @property
    def lead(self) -> ObjectInfo:
        return self.object(LEAD)

    @property
    def opportunity(self) -> ObjectInfo:
        return self.object(OPPORTUNITY)

    def _describe(self, name: str) -> ObjectInfo:
        data = self.session.call(f"describe {name}", lambda sf: getattr(sf, name).describe())
        return ObjectInfo(name, {f.name: f for f in map(FieldInfo.of, data.get("fields", []))})


# -- check ---------------------------------------------------------------------------------------


class SchemaCheck:
    """Compares the org with crmbridge's fields and the definition's ``[systems.salesforce]``."""

    def __init__(
        self, schema: OrgSchema, mapping: SystemMapping, specs: Sequence[FieldSpec]
    ) -> None:
        self.schema = schema
        self.mapping = mapping
        self.specs = specs

    def needed(self) -> list[FieldSpec]:
        """The crmbridge fields this org needs: the marketing ones only for a marketing role."""
        marketing = self.mapping.role == "marketing"
        return [s for s in self.specs if marketing or not s.marketing]

    def run(self, report: CheckReport) -> None:
        """Add every finding to ``report``."""
        lead = self.schema.lead
        self._crmbridge_fields(report, lead)
        self._mapped_fields(report, lead)
        self._picklists(report)
        self._opportunity(report)

    def _crmbridge_fields(self, report: CheckReport, lead: ObjectInfo) -> None:
        present = 0
        for spec in self.needed():
            info = lead.get(spec.name)
            subject = f"Lead.{spec.name}"
            if info is None:
                report.add("error", subject, "is missing", spec.instruction())
                continue
            if info.type not in spec.types:
                report.add(
                    "error",
                    subject,
                    f"is of type {info.type}; crmbridge writes {spec.kind}",
                    f"delete it and add {spec.instruction()}",
                )
                continue
            if spec.annotation == "crmbridge_id" and not (info.external_id and info.unique):
                report.add(
                    "error",
                    subject,
                    "must be an External ID and Unique, or upserts cannot find their leads",
                    f"edit the field and tick External ID and Unique ({spec.instruction()})",
                )
                continue
            if spec.length and 0 < info.length < spec.length:
                # crmbridge cuts its text to the field's length; an id cut short is another id.
                short_id = spec.annotation == "crmbridge_id" and info.length < ID_LENGTH
                report.add(
                    "error" if short_id else "warning",
                    subject,
                    f"holds {info.length} characters; crmbridge writes up to {spec.length}"
                    + ("" if short_id else " (longer text is cut)"),
                    f"make it {spec.kind}",
                )
                if short_id:
                    continue
            if not (info.createable and info.updateable):
                report.add("error", subject, "cannot be edited by the integration user", _FLS)
                continue
            present += 1
        if present == len(self.needed()):
            report.add("ok", "crmbridge fields", f"all {present} crmbridge Lead fields are there")

    def _mapped_fields(self, report: CheckReport, lead: ObjectInfo) -> None:
        writes = set(self.mapping.writable_fields(creating=True))
        for shared, native in self.mapping.fields.items():
            info = lead.get(native)
            subject = f"Lead.{native}"
            if info is None:
                report.add(
                    "error",
                    subject,
                    f"is mapped to {shared!r} in [systems.{self.mapping.name}.fields] but the "
                    "org has no such Lead field",
                    f"add the field in Salesforce ({NEW_FIELD.format(object=LEAD)}) or fix the "
                    "mapping",
                )
            elif shared in writes and not (info.createable and info.updateable):
                report.add("error", subject, "cannot be edited by the integration user", _FLS)
        for native in ("Status", "OwnerId"):
            info = lead.get(native)
            if info is not None and not (info.createable and info.updateable):
                report.add(
                    "error", f"Lead.{native}", "cannot be edited by the integration user", _FLS
                )

    def _picklists(self, report: CheckReport) -> None:
        for key, picklist in self.mapping.picklists.items():
            object_name, _, field_name = key.rpartition(".")
            obj = self.schema.object(object_name or LEAD)
            info = obj.get(field_name)
            if info is None:
                values = ", ".join(picklist.values)
                report.add(
                    "error",
                    key,
                    f"is mapped in {picklist.where} but the org has no such field",
                    f"{key}: Picklist with the values {values} — "
                    f"{NEW_FIELD.format(object=obj.name)}",
                )
                continue
            if info.type not in {"picklist", "multipicklist"}:
                report.add("error", key, f"is of type {info.type}, not a picklist", "")
                continue
            report.drift.extend(picklist.drift(info.picklist))

    def _opportunity(self, report: CheckReport) -> None:
        opportunity = self.schema.opportunity
        for native in ("StageName", "Amount"):
            if not opportunity.has(native):
                report.add(
                    "error",
                    f"Opportunity.{native}",
                    "cannot be read by the integration user",
                    "give it read access to Opportunities",
                )


_FLS = (
    "give the integration user's permission set Edit access to the field (Setup → Object "
    "Manager → Lead → Fields & Relationships → the field → Set Field-Level Security)"
)


def check(
    session: SalesforceSession,
    schema: OrgSchema,
    mapping: SystemMapping,
    specs: Sequence[FieldSpec],
) -> CheckReport:
    """Log in, describe Lead and Opportunity, and compare them with crmbridge's needs."""
    report = CheckReport(SYSTEM)
    schema.refresh()
    try:
        session.sf  # noqa: B018 - logs in
        report.add(
            "ok",
            "connection",
            f"logged in with {session.settings.auth} to {session.instance} (API "
            f"v{session.settings.api_version})",
        )
        SchemaCheck(schema, mapping, specs).run(report)
    except CrmBridgeError as exc:
        report.add("error", _subject(exc), exc.message, exc.hint or "")
        return report
    usage = session.api_usage()
    if usage.used is not None and usage.limit is not None:
        report.add(
            "ok",
            "API usage",
            f"{usage.used:,} of {usage.limit:,} API requests of the rolling 24 hours used",
        )
    return report


def _subject(exc: CrmBridgeError) -> str:
    if isinstance(exc, AuthenticationError):
        return "login"
    if isinstance(exc, QuotaExhausted):
        return "API quota"
    return "connection"


# -- setup ---------------------------------------------------------------------------------------


def setup(
    schema: OrgSchema, mapping: SystemMapping, specs: Sequence[FieldSpec], *, dry_run: bool
) -> SetupReport:
    """List the crmbridge fields that exist and, under ``manual``, the ones an admin must add.

    Nothing is created (fields come with the Metadata API, which crmbridge does not use), so a
    second run reports the same and changes nothing; ``dry_run`` makes no difference.
    """
    del dry_run  # nothing is ever created
    report = SetupReport(SYSTEM)
    schema.refresh()
    lead = schema.lead
    for spec in SchemaCheck(schema, mapping, specs).needed():
        if lead.has(spec.name):
            report.existing.append(f"Lead.{spec.name}")
        else:
            report.manual.append(spec.instruction())
    for key, picklist in mapping.picklists.items():
        object_name, _, field_name = key.rpartition(".")
        if not field_name.endswith("__c"):
            continue
        obj = schema.object(object_name or LEAD)
        if obj.has(field_name):
            report.existing.append(key)
        else:
            values = ", ".join(picklist.values)
            report.manual.append(
                f"{key}: Picklist with the values {values} — {NEW_FIELD.format(object=obj.name)}"
            )
    return report
