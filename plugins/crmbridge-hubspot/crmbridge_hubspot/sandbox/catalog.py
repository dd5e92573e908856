"""The portal's contact properties: their definitions and the validation of values written to them.

HubSpot-defined properties come with realistic types and options; ``lead_source`` is the demo
portal's one custom property. The crmbridge_* properties do not exist until crmbridge's setup
creates them. Every value is stored as a string, normalised the way HubSpot normalises it (emails
lower-cased, datetimes as ISO-8601 with milliseconds, dates as ``YYYY-MM-DD``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crmbridge_hubspot.sandbox.errors import PropertyProblem

TYPES_FIELD_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "phonenumber", "file", "html"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox"}),
    "bool": frozenset({"booleancheckbox"}),
    "phone_number": frozenset({"phonenumber"}),
}
"""Each property type and the field types HubSpot accepts with it."""

LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
LEAD_STATUSES = (
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
EMPLOYEE_BANDS = ("1-5", "5-25", "25-50", "50-100", "100-500", "500-1000", "1000+")
ANALYTICS_SOURCES = (
    ("ORGANIC_SEARCH", "Organic Search"),
    ("PAID_SEARCH", "Paid Search"),
    ("EMAIL_MARKETING", "Email Marketing"),
    ("SOCIAL_MEDIA", "Organic Social"),
    ("REFERRALS", "Referrals"),
    ("OTHER_CAMPAIGNS", "Other Campaigns"),
    ("DIRECT_TRAFFIC", "Direct Traffic"),
    ("OFFLINE", "Offline Sources"),
    ("PAID_SOCIAL", "Paid Social"),
)
LEAD_SOURCES = (
    ("demo_request", "Demo request"),
    ("content_download", "Content download"),
    ("webinar", "Webinar"),
    ("trade_show", "Trade show"),
    ("organic", "Organic"),
    ("paid", "Paid"),
    ("referral", "Referral"),
)
DEFAULT_GROUPS = (
    ("contactinformation", "Contact information"),
    ("analyticsinformation", "Web analytics history"),
    ("emailinformation", "Email information"),
    ("conversioninformation", "Conversion information"),
    ("sales_properties", "Sales properties"),
)
DEFAULT_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)
"""The properties a read returns when it names none."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_STRING = 65_536


def options_of(pairs: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """HubSpot option dicts from ``(value, label)`` pairs, in display order."""
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False, "description": ""}
        for i, (value, label) in enumerate(pairs)
    ]


def iso_ms(ms: int) -> str:
    """Epoch milliseconds as HubSpot writes timestamps: ``2024-01-01T00:00:00.000Z``."""
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_ms(value: Any) -> int | None:
    """Epoch milliseconds from epoch millis (number or digits) or an ISO-8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


@dataclass
class PropertyDef:
    """One contact property, as the properties API describes it."""

    name: str
    label: str
    type: str
    field_type: str
    group_name: str = "contactinformation"
    description: str = ""
    options: list[dict[str, Any]] = field(default_factory=list)
    display_order: int = -1
    hidden: bool = False
    form_field: bool = True
    has_unique_value: bool = False
    hubspot_defined: bool = True
    read_only_value: bool = False
    calculated: bool = False
    external_options: bool = False
    referenced_object_type: str | None = None
    created_at: int = 0
    updated_at: int = 0
    archived_at: int | None = None

    @property
    def read_only_definition(self) -> bool:
        """HubSpot-defined properties cannot be redefined or archived."""
        return self.hubspot_defined

    def option_values(self) -> list[str]:
        """The values an enumeration accepts."""
        return [str(o["value"]) for o in self.options]

    def to_json(self) -> dict[str, Any]:
        """The property as the properties API returns it."""
        data: dict[str, Any] = {
            "updatedAt": iso_ms(self.updated_at),
            "createdAt": iso_ms(self.created_at),
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [dict(o) for o in self.options],
            "displayOrder": self.display_order,
            "calculated": self.calculated,
            "externalOptions": self.external_options,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.read_only_definition,
                "readOnlyValue": self.read_only_value,
                "readOnlyOptions": self.type != "enumeration" or self.external_options,
            },
            "formField": self.form_field,
            "archived": self.archived_at is not None,
        }
        if self.archived_at is not None:
            data["archivedAt"] = iso_ms(self.archived_at)
        if self.referenced_object_type:
            data["referencedObjectType"] = self.referenced_object_type
        return data

    def to_state(self) -> dict[str, Any]:
        """The definition as JSON-able data."""
        return dict(self.__dict__)

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> PropertyDef:
        """A definition written by :meth:`to_state`."""
        return cls(**data)


def default_properties(now_ms: int, owners: Iterable[Mapping[str, Any]]) -> list[PropertyDef]:
    """The demo portal's contact properties, HubSpot-defined ones first."""

    def text(name: str, label: str, **kw: Any) -> PropertyDef:
        return PropertyDef(name, label, "string", kw.pop("field_type", "text"), **kw)

    def number(name: str, label: str, group: str, read_only: bool = True) -> PropertyDef:
        return PropertyDef(
            name, label, "number", "number", group, read_only_value=read_only, calculated=read_only
        )

    def enum(name: str, label: str, pairs: Iterable[tuple[str, str]], **kw: Any) -> PropertyDef:
        return PropertyDef(
            name,
            label,
            "enumeration",
            kw.pop("field_type", "select"),
            options=options_of(pairs),
            **kw,
        )

    owner_pairs = [
        (str(o["id"]), f"{o.get('firstName', '')} {o.get('lastName', '')}".strip()) for o in owners
    ]
    props = [
        text("email", "Email"),
        text("firstname", "First Name"),
        text("lastname", "Last Name"),
        text("company", "Company Name"),
        text("jobtitle", "Job Title"),
        text("phone", "Phone Number", field_type="phonenumber"),
        text("country", "Country/Region"),
        text("city", "City"),
        text("state", "State/Region"),
        text("website", "Website URL"),
        text("industry", "Industry"),
        enum("numemployees", "Number of Employees", ((b, b) for b in EMPLOYEE_BANDS)),
        enum("lifecyclestage", "Lifecycle Stage", LIFECYCLE_STAGES, field_type="radio"),
        enum("hs_lead_status", "Lead Status", LEAD_STATUSES, field_type="radio"),
        enum(
            "hubspot_owner_id",
            "Contact owner",
            owner_pairs,
            group_name="sales_properties",
            external_options=True,
            referenced_object_type="OWNER",
        ),
        enum(
            "hs_analytics_source",
            "Original Source",
            ANALYTICS_SOURCES,
            group_name="analyticsinformation",
        ),
        number("hs_analytics_num_page_views", "Number of Pageviews", "analyticsinformation"),
        number("hs_email_open", "Marketing emails opened", "emailinformation"),
        number("hs_email_click", "Marketing emails clicked", "emailinformation"),
        number("num_conversion_events", "Number of Form Submissions", "conversioninformation"),
        text(
            "recent_conversion_event_name",
            "Recent Conversion",
            group_name="conversioninformation",
        ),
        PropertyDef(
            "recent_conversion_date",
            "Recent Conversion Date",
            "datetime",
            "date",
            "conversioninformation",
        ),
        PropertyDef("createdate", "Create Date", "datetime", "date", read_only_value=True),
        PropertyDef(
            "lastmodifieddate", "Last Modified Date", "datetime", "date", read_only_value=True
        ),
        PropertyDef(
            "hs_object_id", "Record ID", "number", "number", read_only_value=True, form_field=False
        ),
        text("hs_merged_object_ids", "Merged Record IDs", read_only_value=True, form_field=False),
        text("hs_additional_emails", "Additional email addresses", read_only_value=True),
        enum("lead_source", "Lead source", LEAD_SOURCES, hubspot_defined=False),
    ]
    for order, prop in enumerate(props):
        prop.display_order = order
        prop.created_at = prop.updated_at = now_ms
    return props


class Catalog:
    """The portal's property definitions and groups, and the validation of written values."""

    def __init__(self, properties: Iterable[PropertyDef], owner_ids: Iterable[str] = ()) -> None:
        self._props: dict[str, PropertyDef] = {p.name: p for p in properties}
        self._unique_names = self._find_unique()
        self.groups: dict[str, dict[str, Any]] = {
            name: {"name": name, "label": label, "displayOrder": i, "archived": False}
            for i, (name, label) in enumerate(DEFAULT_GROUPS)
        }
        self.owner_ids = set(owner_ids)

    # -- definitions ---------------------------------------------------------------------------

    def get(self, name: str, *, archived: bool = False) -> PropertyDef | None:
        """The live (or, with ``archived``, the archived) property named ``name``."""
        prop = self._props.get(name)
        if prop is None or (prop.archived_at is not None) != archived:
            return None
        return prop

    def exists(self, name: str) -> bool:
        """Whether the name is taken, archived or not (a new property may not reuse it)."""
        return name in self._props

    def all(self, *, archived: bool = False) -> list[PropertyDef]:
        """Every live (or archived) property, in definition order."""
        return [p for p in self._props.values() if (p.archived_at is not None) == archived]

    def put(self, prop: PropertyDef) -> None:
        """Add or replace a definition (also after archiving one in place)."""
        self._props[prop.name] = prop
        self._unique_names = self._find_unique()

    def remove(self, name: str) -> None:
        """Drop a definition entirely (drift injected by options)."""
        self._props.pop(name, None)
        self._unique_names = self._find_unique()

    def unique_names(self) -> tuple[str, ...]:
        """Live properties with ``hasUniqueValue`` (checked on every write, so kept ready)."""
        return self._unique_names

    def _find_unique(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.all() if p.has_unique_value)

    def type_of(self, name: str) -> str | None:
        """The type of a live property, or None."""
        prop = self.get(name)
        return prop.type if prop else None

    def stage_rank(self, value: str) -> int | None:
        """A lifecycle stage's place in the funnel (its option order), or None if unknown."""
        prop = self.get("lifecyclestage")
        if prop is None:
            return None
        ordered = sorted(prop.options, key=lambda o: int(o.get("displayOrder", 0)))
        for rank, option in enumerate(ordered):
            if option["value"] == value:
                return rank
        return None

    def apply_override(self, spec: Mapping[str, Any], now_ms: int) -> None:
        """Apply one entry of the ``properties`` option: add, change or drop a definition.

        ``{"name": ..., <API fields>}`` creates or updates; ``add_options`` / ``remove_options``
        list option values to add or drop; ``remove: true`` deletes the property.
        """
        name = str(spec["name"])
        if spec.get("remove"):
            self.remove(name)
            return
        current = self._props.get(name)
        updates = from_api_fields(spec)
        if current is None:
            prop = PropertyDef(
                name=name,
                label=str(spec.get("label", name)),
                type=str(spec.get("type", "string")),
                field_type=str(spec.get("fieldType", "text")),
                hubspot_defined=bool(spec.get("hubspotDefined", False)),
                created_at=now_ms,
                updated_at=now_ms,
            )
            prop = replace(prop, **updates)
        else:
            prop = replace(current, **updates, updated_at=now_ms)
        options = [dict(o) for o in prop.options]
        for value in spec.get("add_options", ()):
            option = value if isinstance(value, Mapping) else {"value": value, "label": value}
            options.append(_option(option, len(options)))
        dropped = {v if isinstance(v, str) else v["value"] for v in spec.get("remove_options", ())}
        prop.options = [o for o in options if o["value"] not in dropped]
        self.put(prop)

    # -- values --------------------------------------------------------------------------------

    def validate(
        self, values: Mapping[str, Any], *, allow_read_only: bool = False
    ) -> tuple[dict[str, str], list[PropertyProblem]]:
        """Normalise a write's values; problems list every property that is unknown or invalid."""
        clean: dict[str, str] = {}
        problems: list[PropertyProblem] = []
        for name, raw in values.items():
            prop = self.get(name)
            if prop is None:
                problems.append(
                    PropertyProblem(
                        name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'
                    )
                )
                continue
            if prop.read_only_value and not allow_read_only:
                problems.append(
                    PropertyProblem(
                        name,
                        "READ_ONLY_VALUE",
                        f"{name} is a read only property; its value cannot be set.",
                    )
                )
                continue
            result = self.normalize(prop, raw)
            if isinstance(result, PropertyProblem):
                problems.append(result)
            else:
                clean[name] = result
        return clean, problems

    def normalize(self, prop: PropertyDef, raw: Any) -> str | PropertyProblem:
        """The stored string for ``raw``, or the problem with it. ``""`` (or null) clears."""
        if raw is None:
            return ""
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, float) and raw.is_integer():
            text = str(int(raw))
        else:
            text = str(raw)
        if text == "":
            return ""
        name = prop.name
        if len(text) > MAX_STRING:
            return PropertyProblem(
                name, "INVALID_STRING", f"{name} exceeds the maximum length of {MAX_STRING}"
            )
        if name == "email":
            return _normalize_email(text)
        if name == "hubspot_owner_id":
            return self._normalize_owner(text)
        match prop.type:
            case "number":
                return _normalize_number(name, text)
            case "bool":
                if text.lower() not in {"true", "false"}:
                    return PropertyProblem(
                        name, "INVALID_BOOLEAN", f"{text} is not a valid boolean"
                    )
                return text.lower()
            case "datetime":
                ms = parse_ms(text)
                if ms is None:
                    return PropertyProblem(
                        name, "INVALID_DATE", f"{text} was not a valid datetime."
                    )
                return iso_ms(ms)
            case "date":
                return _normalize_date(name, text)
            case "enumeration":
                return _normalize_option(prop, text)
        return text

    def _normalize_owner(self, text: str) -> str | PropertyProblem:
        if not text.isdigit():
            return PropertyProblem(
                "hubspot_owner_id",
                "INVALID_INTEGER",
                f"{text} was not a valid integer (for owner ID).",
            )
        if text not in self.owner_ids:
            return PropertyProblem(
                "hubspot_owner_id", "INVALID_OWNER_ID", f"{text} is not a valid owner id"
            )
        return text

    # -- persistence ---------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Definitions, groups and owner ids as JSON-able data."""
        return {
            "properties": [p.to_state() for p in self._props.values()],
            "groups": list(self.groups.values()),
            "owner_ids": sorted(self.owner_ids),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Catalog:
        """A catalog written by :meth:`to_state`."""
        catalog = cls(
            (PropertyDef.from_state(p) for p in data["properties"]), data.get("owner_ids", ())
        )
        catalog.groups = {g["name"]: dict(g) for g in data["groups"]}
        return catalog


_API_FIELDS = {
    "label": "label",
    "type": "type",
    "fieldType": "field_type",
    "groupName": "group_name",
    "description": "description",
    "displayOrder": "display_order",
    "hidden": "hidden",
    "formField": "form_field",
    "hasUniqueValue": "has_unique_value",
    "externalOptions": "external_options",
    "referencedObjectType": "referenced_object_type",
}


def from_api_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """PropertyDef keyword arguments from a properties-API body (camelCase keys)."""
    updates = {attr: spec[key] for key, attr in _API_FIELDS.items() if key in spec}
    if "options" in spec:
        updates["options"] = [_option(o, i) for i, o in enumerate(spec["options"])]
    return updates


def _option(option: Any, order: int) -> dict[str, Any]:
    if not isinstance(option, Mapping):
        option = {"value": str(option), "label": str(option)}
    return {
        "label": str(option.get("label", option.get("value", ""))),
        "value": str(option.get("value", "")),
        "displayOrder": int(option.get("displayOrder", order)),
        "hidden": bool(option.get("hidden", False)),
        "description": str(option.get("description", "")),
    }


def _normalize_email(text: str) -> str | PropertyProblem:
    email = text.strip().lower()
    if not _EMAIL_RE.match(email) or ".." in email:
        return PropertyProblem("email", "INVALID_EMAIL", f"Email address {text} is invalid")
    return email


def _normalize_number(name: str, text: str) -> str | PropertyProblem:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return PropertyProblem(name, "INVALID_LONG", f"{text} was not a valid long.")
    if not number.is_finite():
        return PropertyProblem(name, "INVALID_LONG", f"{text} was not a valid long.")
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _normalize_date(name: str, text: str) -> str | PropertyProblem:
    if _DATE_RE.match(text):
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return PropertyProblem(name, "INVALID_DATE", f"{text} was not a valid date.")
        return text
    ms = parse_ms(text)
    if ms is None or ms % 86_400_000:
        return PropertyProblem(
            name, "INVALID_DATE", f"{text} is not a valid date; use midnight UTC in milliseconds."
        )
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _normalize_option(prop: PropertyDef, text: str) -> str | PropertyProblem:
    allowed = prop.option_values()
    chosen = text.split(";") if prop.field_type == "checkbox" else [text]
    for value in chosen:
        if value not in allowed:
            return PropertyProblem(
                prop.name,
                "INVALID_OPTION",
                f"{value} was not one of the allowed options: [{', '.join(allowed)}]",
            )
    return text
