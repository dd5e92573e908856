"""The org's schema: objects, fields and picklists, and the describe documents the REST API returns.

The schema is configurable the way a real org is: an admin adds crmbridge's custom fields to Lead
(or has not yet), sales edits the Lead Status picklist (drift the connector's ``check()`` must
report), a field is deleted. Field and object names are looked up case-insensitively, as SOQL and
the REST API do, and always answered in their canonical spelling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmbridge_salesforce.sandbox.config import SandboxConfig
from crmbridge_salesforce.sandbox.ids import KEY_PREFIXES
from crmbridge_salesforce.sandbox.values import DECIMAL_TYPES, INTEGER_TYPES

SYSTEM_FIELDS = (
    "Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
    "SystemModstamp",
)  # fmt: skip
LONG_TEXT = 255
"""Text areas longer than this are Long Text Areas: not filterable, not sortable in SOQL."""


@dataclass(frozen=True)
class PicklistValue:
    """One picklist entry, with the flags Salesforce keeps beside some picklists.

    ``converted`` marks a Lead Status that means "converted"; ``closed``/``won``/``probability``
    describe an Opportunity stage.
    """

    value: str
    label: str = ""
    active: bool = True
    default: bool = False
    converted: bool = False
    closed: bool = False
    won: bool = False
    probability: float | None = None

    def describe(self) -> dict[str, Any]:
        """This entry in a describe's ``picklistValues``."""
        return {
            "active": self.active,
            "defaultValue": self.default,
            "label": self.label or self.value,
            "validFor": None,
            "value": self.value,
        }


@dataclass(frozen=True)
class FieldDef:
    """One field of an object, with the describe attributes the emulator enforces."""

    name: str
    label: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    external_id: bool = False
    unique: bool = False
    id_lookup: bool = False
    custom: bool = False
    calculated: bool = False
    picklist: tuple[PicklistValue, ...] | None = None
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    precision: int = 0
    scale: int = 0

    @property
    def required(self) -> bool:
        """Required on create: not nillable, writable and not filled in by Salesforce."""
        return not self.nillable and self.createable and not self.defaulted_on_create

    @property
    def filterable(self) -> bool:
        """Whether SOQL may filter on it (Long Text Areas may not)."""
        return not (self.type == "textarea" and self.length > LONG_TEXT)

    @property
    def sortable(self) -> bool:
        """Whether SOQL may order by it."""
        return self.filterable

    @property
    def default_value(self) -> str | None:
        """The picklist's default value, if it has one."""
        for entry in self.picklist or ():
            if entry.default and entry.active:
                return entry.value
        return None

    def picklist_entry(self, value: str) -> PicklistValue | None:
        """The active entry equal to ``value`` (case-sensitive, as restricted picklists check)."""
        for entry in self.picklist or ():
            if entry.active and entry.value == value:
                return entry
        return None

    def describe(self) -> dict[str, Any]:
        """This field's entry in ``sobjects/{Object}/describe``."""
        numeric = self.type in INTEGER_TYPES or self.type in DECIMAL_TYPES
        return {
            "aggregatable": self.filterable,
            "autoNumber": False,
            "byteLength": self.length * 3,
            "calculated": self.calculated,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": self.precision if self.type in INTEGER_TYPES else 0,
            "externalId": self.external_id,
            "filterable": self.filterable,
            "groupable": self.filterable and self.type not in DECIMAL_TYPES,
            "idLookup": self.id_lookup,
            "label": self.label,
            "length": self.length,
            "name": self.name,
            "nameField": self.name == "Name",
            "nillable": self.nillable,
            "picklistValues": [v.describe() for v in self.picklist or ()],
            "polymorphicForeignKey": len(self.reference_to) > 1,
            "precision": self.precision if numeric and self.type not in INTEGER_TYPES else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": self.scale,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
        }


_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
    "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime",
}  # fmt: skip


@dataclass
class ObjectDef:
    """An sObject type: its fields in describe order and what the API may do with it."""

    name: str
    label: str
    label_plural: str
    fields: dict[str, FieldDef]
    createable: bool = True
    custom: bool = False
    _lower: dict[str, str] = field(default_factory=dict, repr=False)
    _relationships: dict[str, str] = field(default_factory=dict, repr=False)
    not_nillable: tuple[str, ...] = field(default=(), repr=False)
    """Fields that may never be null, except checkboxes (which default to false)."""
    defaults: dict[str, Any] = field(default_factory=dict, repr=False)
    """Values a new record starts with: checkboxes false, defaulted picklists' default."""

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the case-insensitive lookups after fields changed."""
        self._lower = {name.lower(): name for name in self.fields}
        self._relationships = {
            f.relationship_name.lower(): f.name for f in self.fields.values() if f.relationship_name
        }
        self.not_nillable = tuple(
            f.name for f in self.fields.values() if not f.nillable and f.type != "boolean"
        )
        self.defaults = {}
        for f in self.fields.values():
            if f.type == "boolean" and not f.nillable and f.name != "IsDeleted":
                self.defaults[f.name] = False
            elif f.picklist is not None and f.defaulted_on_create and f.default_value is not None:
                self.defaults[f.name] = f.default_value

    @property
    def key_prefix(self) -> str:
        """The 3-character prefix of this object's ids."""
        return KEY_PREFIXES[self.name]

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` in any case."""
        found = self.fields.get(name)
        if found is not None:
            return found
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind relationship ``name`` (``Owner`` → ``OwnerId``)."""
        canonical = self._relationships.get(name.lower())
        return self.fields[canonical] if canonical else None

    def summary(self, version: str) -> dict[str, Any]:
        """This object's entry in the ``sobjects/`` list (and ``objectDescribe``)."""
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "activateable": False,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": False,
            "deletable": self.createable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.name in {"Lead", "Contact", "Account"},
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.createable,
            "updateable": self.createable,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def describe(self, version: str) -> dict[str, Any]:
        """``GET sobjects/{Object}/describe``."""
        body = self.summary(version)
        body.update(
            actionOverrides=[],
            childRelationships=[],
            fields=[f.describe() for f in self.fields.values()],
            recordTypeInfos=[],
        )
        return body


# -- the standard org ---------------------------------------------------------------------------

LEAD_STATUSES = (
    PicklistValue("Open - Not Contacted", default=True),
    PicklistValue("Working - Contacted"),
    PicklistValue("Closed - Converted", converted=True),
    PicklistValue("Closed - Not Converted"),
)
OPPORTUNITY_STAGES = (
    PicklistValue("Prospecting", default=True, probability=10),
    PicklistValue("Qualification", probability=10),
    PicklistValue("Needs Analysis", probability=20),
    PicklistValue("Value Proposition", probability=50),
    PicklistValue("Id. Decision Makers", probability=60),
    PicklistValue("Perception Analysis", probability=70),
    PicklistValue("Proposal/Price Quote", probability=75),
    PicklistValue("Negotiation/Review", probability=90),
    PicklistValue("Closed Won", closed=True, won=True, probability=100),
    PicklistValue("Closed Lost", closed=True, probability=0),
)
LEAD_SOURCES = (
    "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", "Demo Request",
    "Content Download", "Webinar", "Trade Show", "Organic Search", "Paid Search",
)  # fmt: skip
INDUSTRIES = (
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications",
    "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
    "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare",
    "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit", "Other",
    "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation",
    "Utilities",
)  # fmt: skip
REJECTION_REASONS = (
    "No Budget", "Bad Timing", "Not Decision Maker", "No Response", "Not a Fit", "Duplicate",
    "Competitor", "Student or Job Seeker", "Spam",
)  # fmt: skip
LOSS_REASONS = ("Price", "Competitor", "No Decision", "Timing", "Product Fit", "Lost Contact")
RATINGS = ("Hot", "Warm", "Cold")

CRMBRIDGE_LEAD_FIELDS = (
    "CrmBridge_Id__c", "CrmBridge_Score__c", "CrmBridge_Stage__c", "CrmBridge_Why__c",
    "CrmBridge_Handoff_At__c", "CrmBridge_SLA_Due__c", "CrmBridge_SLA_Breached__c",
    "CrmBridge_Definition_Version__c",
)  # fmt: skip


def _id() -> FieldDef:
    return FieldDef(
        "Id", "Record ID", "id", 18, nillable=False, createable=False, updateable=False,
        defaulted_on_create=True, id_lookup=True,
    )  # fmt: skip


def _text(name: str, label: str, length: int, type_: str = "string", **kw: Any) -> FieldDef:
    return FieldDef(name, label, type_, length, **kw)


def _readonly(name: str, label: str, type_: str, length: int = 0, **kw: Any) -> FieldDef:
    return FieldDef(
        name, label, type_, length, createable=False, updateable=False,
        defaulted_on_create=True, **kw,
    )  # fmt: skip


def _ref(
    name: str, label: str, to: Sequence[str], relationship: str, *, writable: bool = True, **kw: Any
) -> FieldDef:
    return FieldDef(
        name, label, "reference", 18, createable=writable, updateable=writable,
        reference_to=tuple(to), relationship_name=relationship, **kw,
    )  # fmt: skip


def _pick(
    name: str, label: str, values: Iterable[str | PicklistValue], *, restricted: bool = False,
    **kw: Any,
) -> FieldDef:  # fmt: skip
    entries = tuple(v if isinstance(v, PicklistValue) else PicklistValue(v) for v in values)
    return FieldDef(name, label, "picklist", 255, picklist=entries, restricted=restricted, **kw)


def _audit() -> list[FieldDef]:
    return [
        _readonly("IsDeleted", "Deleted", "boolean", nillable=False),
        _readonly("CreatedDate", "Created Date", "datetime", nillable=False),
        _ref("CreatedById", "Created By ID", ["User"], "CreatedBy", writable=False,
             nillable=False, defaulted_on_create=True),
        _readonly("LastModifiedDate", "Last Modified Date", "datetime", nillable=False),
        _ref("LastModifiedById", "Last Modified By ID", ["User"], "LastModifiedBy",
             writable=False, nillable=False, defaulted_on_create=True),
        _readonly("SystemModstamp", "System Modstamp", "datetime", nillable=False),
    ]  # fmt: skip


def _name() -> FieldDef:
    return _readonly("Name", "Full Name", "string", 121, calculated=False, nillable=False)


def _owner(to: Sequence[str]) -> FieldDef:
    return _ref("OwnerId", "Owner ID", to, "Owner", nillable=False, defaulted_on_create=True)


def _crmbridge_fields() -> list[FieldDef]:
    return [
        _text("CrmBridge_Id__c", "crmbridge ID", 64, external_id=True, unique=True,
              id_lookup=True, custom=True),
        FieldDef("CrmBridge_Score__c", "crmbridge Score", "double", precision=18, scale=2,
                 custom=True),
        _text("CrmBridge_Stage__c", "crmbridge Stage", 40, custom=True),
        _text("CrmBridge_Why__c", "crmbridge Why", 32768, "textarea", custom=True),
        FieldDef("CrmBridge_Handoff_At__c", "crmbridge Handoff At", "datetime", custom=True),
        FieldDef("CrmBridge_SLA_Due__c", "crmbridge SLA Due", "datetime", custom=True),
        FieldDef("CrmBridge_SLA_Breached__c", "crmbridge SLA Breached", "boolean",
                 nillable=False, defaulted_on_create=True, custom=True),
        _text("CrmBridge_Definition_Version__c", "crmbridge Definition Version", 40,
              custom=True),
    ]  # fmt: skip


def _lead(custom: bool | tuple[str, ...]) -> list[FieldDef]:
    fields = [
        _id(),
        _text("LastName", "Last Name", 80, nillable=False),
        _text("FirstName", "First Name", 40),
        _name(),
        _text("Title", "Title", 128),
        _text("Company", "Company", 255, nillable=False),
        _text("City", "City", 40),
        _text("State", "State/Province", 80),
        _text("Country", "Country", 80),
        _text("Phone", "Phone", 40, "phone"),
        _text("Email", "Email", 80, "email", id_lookup=True),
        _text("Website", "Website", 255, "url"),
        _text("Description", "Description", 32000, "textarea"),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES),
        _pick("Status", "Status", LEAD_STATUSES, restricted=True, nillable=False,
              defaulted_on_create=True),
        _pick("Industry", "Industry", INDUSTRIES),
        _pick("Rating", "Rating", RATINGS),
        FieldDef("NumberOfEmployees", "Employees", "int", precision=8),
        _owner(["Group", "User"]),
        _readonly("IsConverted", "Converted", "boolean", nillable=False),
        _readonly("ConvertedDate", "Converted Date", "date"),
        _ref("ConvertedAccountId", "Converted Account ID", ["Account"], "ConvertedAccount",
             writable=False),
        _ref("ConvertedContactId", "Converted Contact ID", ["Contact"], "ConvertedContact",
             writable=False),
        _ref("ConvertedOpportunityId", "Converted Opportunity ID", ["Opportunity"],
             "ConvertedOpportunity", writable=False),
        *_audit(),
        _pick("Rejection_Reason__c", "Rejection Reason", REJECTION_REASONS, restricted=True,
              custom=True),
    ]  # fmt: skip
    wanted = CRMBRIDGE_LEAD_FIELDS if custom is True else () if custom is False else custom
    fields += [f for f in _crmbridge_fields() if f.name in wanted]
    return fields


def _contact() -> list[FieldDef]:
    return [
        _id(),
        _ref("AccountId", "Account ID", ["Account"], "Account"),
        _text("LastName", "Last Name", 80, nillable=False),
        _text("FirstName", "First Name", 40),
        _name(),
        _text("Title", "Title", 128),
        _text("Phone", "Business Phone", 40, "phone"),
        _text("Email", "Email", 80, "email", id_lookup=True),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES),
        _owner(["User"]),
        *_audit(),
    ]


def _account() -> list[FieldDef]:
    return [
        _id(),
        _text("Name", "Account Name", 255, nillable=False),
        _pick("Industry", "Industry", INDUSTRIES),
        FieldDef("NumberOfEmployees", "Employees", "int", precision=8),
        _text("Website", "Website", 255, "url"),
        _owner(["User"]),
        *_audit(),
    ]


def _opportunity() -> list[FieldDef]:
    return [
        _id(),
        _ref("AccountId", "Account ID", ["Account"], "Account"),
        _text("Name", "Name", 120, nillable=False),
        _pick("StageName", "Stage", OPPORTUNITY_STAGES, restricted=True, nillable=False),
        FieldDef("Amount", "Amount", "currency", precision=18, scale=2),
        FieldDef("Probability", "Probability (%)", "percent", precision=3, scale=0,
                 defaulted_on_create=True),
        FieldDef("CloseDate", "Close Date", "date", nillable=False),
        _readonly("IsClosed", "Closed", "boolean", nillable=False),
        _readonly("IsWon", "Won", "boolean", nillable=False),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES),
        _owner(["User"]),
        *_audit(),
        _pick("Loss_Reason__c", "Loss Reason", LOSS_REASONS, restricted=True, custom=True),
    ]  # fmt: skip


def _user() -> list[FieldDef]:
    return [
        _id(),
        _text("Username", "Username", 80, nillable=False),
        _text("Name", "Full Name", 121, nillable=False),
        _text("Email", "Email", 128, "email", nillable=False),
        FieldDef("IsActive", "Active", "boolean", nillable=False),
        *[f for f in _audit() if f.name != "IsDeleted"],
    ]


def _group() -> list[FieldDef]:
    return [
        _id(),
        _text("Name", "Name", 40, nillable=False),
        _text("DeveloperName", "Developer Name", 80, nillable=False),
        _pick("Type", "Type", ("Queue", "Regular"), restricted=True, nillable=False),
        _text("Email", "Email", 255, "email"),
        *[f for f in _audit() if f.name != "IsDeleted"],
    ]


class Schema:
    """Every object of the org, plus the changes made to it at run time (kept in snapshots)."""

    def __init__(self, config: SandboxConfig) -> None:
        specs: list[tuple[str, str, str, list[FieldDef], bool]] = [
            ("Lead", "Lead", "Leads", _lead(config.lead_custom_fields), True),
            ("Contact", "Contact", "Contacts", _contact(), True),
            ("Account", "Account", "Accounts", _account(), True),
            ("Opportunity", "Opportunity", "Opportunities", _opportunity(), True),
            ("User", "User", "Users", _user(), False),
            ("Group", "Group", "Groups", _group(), False),
        ]
        self.objects: dict[str, ObjectDef] = {
            name: ObjectDef(name, label, plural, {f.name: f for f in fields}, createable=writable)
            for name, label, plural, fields, writable in specs
        }
        self._lower = {name.lower(): name for name in self.objects}
        self.picklist_changes: dict[str, list[dict[str, Any]]] = {}
        self.removed_fields: list[tuple[str, str]] = []
        for qualified, values in config.picklists.items():
            self.set_picklist(qualified, values)

    def object(self, name: str) -> ObjectDef | None:
        """The object called ``name`` in any case."""
        canonical = self._lower.get(name.lower())
        return self.objects[canonical] if canonical else None

    def field_of(self, qualified: str) -> tuple[ObjectDef, FieldDef]:
        """``"Lead.Status"`` → the object and field; ``KeyError`` naming what is unknown."""
        obj_name, _, field_name = qualified.partition(".")
        obj = self.object(obj_name)
        if obj is None:
            raise KeyError(f"no object {obj_name!r} (known: {sorted(self.objects)})")
        found = obj.field(field_name)
        if found is None:
            raise KeyError(f"{obj.name} has no field {field_name!r}")
        return obj, found

    def set_picklist(self, qualified: str, values: Iterable[str | Mapping[str, Any]]) -> FieldDef:
        """Replace a picklist's values; plain strings keep the flags their old entry had."""
        obj, old = self.field_of(qualified)
        if old.picklist is None:
            raise KeyError(f"{obj.name}.{old.name} is not a picklist")
        previous = {v.value: v for v in old.picklist}
        entries = []
        for value in values:
            if isinstance(value, Mapping):
                entries.append(PicklistValue(**value))
            else:
                kept = previous.get(str(value))
                entries.append(kept if kept is not None else PicklistValue(str(value)))
        if entries and not any(e.default for e in entries) and old.default_value is not None:
            entries[0] = dataclasses.replace(entries[0], default=True)
        new = dataclasses.replace(old, picklist=tuple(entries))
        obj.fields[old.name] = new
        obj.reindex()
        self.picklist_changes[f"{obj.name}.{old.name}"] = [dataclasses.asdict(e) for e in entries]
        return new

    def remove_field(self, object_name: str, field_name: str) -> FieldDef:
        """Delete a field, as an admin would; system and required fields cannot go."""
        obj, old = self.field_of(f"{object_name}.{field_name}")
        if old.name in SYSTEM_FIELDS or old.name == "Name" or old.required:
            raise KeyError(f"{obj.name}.{old.name} is a standard required field and cannot go")
        del obj.fields[old.name]
        obj.reindex()
        self.removed_fields.append((obj.name, old.name))
        return old

    def changes(self) -> dict[str, Any]:
        """The run-time schema changes, to replay after a restart."""
        return {"picklists": self.picklist_changes, "removed": self.removed_fields}

    def replay(self, changes: Mapping[str, Any]) -> None:
        """Apply the schema changes of a snapshot."""
        for qualified, values in changes.get("picklists", {}).items():
            self.set_picklist(qualified, values)
        for object_name, field_name in changes.get("removed", []):
            obj = self.object(object_name)
            if obj is not None and obj.field(field_name) is not None:
                self.remove_field(object_name, field_name)

    def describe_global(self, version: str) -> dict[str, Any]:
        """``GET sobjects/``."""
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [obj.summary(version) for obj in self.objects.values()],
        }
