"""crmbridge's own contact properties in HubSpot: what they are, creating them, and checking the
portal's properties and picklists against the lead definition.

``setup`` creates a ``crmbridge`` property group and one ``crmbridge_<name>`` property per
annotation of :data:`crmbridge.ANNOTATIONS` (``crmbridge_id`` for the id itself); it reads the
portal first and creates only what is missing, so a second run creates nothing. ``check`` reads
the same definitions and reports what is missing and every picklist value with no mapping (and
every mapped value HubSpot does not have), by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hubspot.crm.properties import OptionInput, PropertyCreate, PropertyGroupCreate, PropertyUpdate

from crmbridge import ANNOTATIONS, CheckReport, OutcomeKind, SetupReport, SystemMapping
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import SYSTEM, HubSpotRequestError

OBJECT_TYPE = "contacts"
GROUP = "crmbridge"
GROUP_LABEL = "crmbridge"
SETUP_FIX = "run `crmbridge setup`"


@dataclass(frozen=True)
class PropertySpec:
    """One contact property crmbridge writes, as HubSpot's properties API defines it."""

    name: str
    label: str
    type: str
    field_type: str
    description: str
    options: tuple[tuple[str, str], ...] = ()

    def create_model(self) -> Any:
        """The SDK's ``PropertyCreate`` for this property, in the crmbridge group."""
        return PropertyCreate(
            name=self.name,
            label=self.label,
            type=self.type,
            field_type=self.field_type,
            group_name=GROUP,
            description=self.description,
            options=_options(self.options) if self.options else None,
            form_field=False,
        )


def _options(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    return [
        OptionInput(label=label, value=value, display_order=i, hidden=False)
        for i, (value, label) in enumerate(pairs)
    ]


BOOL_OPTIONS = (("true", "Yes"), ("false", "No"))

_SPECS: dict[str, tuple[str, str, str, str]] = {
    # annotation: (label, type, fieldType, description)
    "crmbridge_id": ("crmbridge id", "string", "text", "The lead's stable id in crmbridge."),
    "stage": ("crmbridge stage", "string", "text", "The lead's stage in the shared definition."),
    "score": ("crmbridge score", "number", "number", "The lead's total score."),
    "why": ("crmbridge why", "string", "textarea", "Why the lead has its stage and score."),
    "handed_off_at": ("Handed off at", "datetime", "date", "When crmbridge handed it to sales."),
    "accepted_at": ("Accepted at", "datetime", "date", "When sales accepted the lead."),
    "sla_due_at": ("SLA due at", "datetime", "date", "When sales must have answered by."),
    "sla_breached": ("SLA breached", "bool", "booleancheckbox", "Sales missed the SLA."),
    "outcome": ("Sales outcome", "enumeration", "select", "Sales' verdict on the lead."),
    "outcome_reason": ("Sales outcome reason", "string", "text", "Why sales decided so."),
    "owner": ("Sales owner", "string", "text", "Who in sales has the lead."),
    "deal_amount": ("Deal amount", "number", "number", "The amount of the won deal."),
    "definition_version": (
        "Lead definition version",
        "string",
        "text",
        "The lead definition version of crmbridge's last decision.",
    ),
}


def property_name(annotation: str) -> str:
    """The HubSpot property of an annotation: ``crmbridge_<annotation>`` (``crmbridge_id``)."""
    return annotation if annotation.startswith("crmbridge_") else f"crmbridge_{annotation}"


def _spec(annotation: str) -> PropertySpec:
    # An annotation added to the core later still gets a property: a plain string one.
    default = (f"crmbridge {annotation.replace('_', ' ')}", "string", "text", "")
    label, ptype, field_type, description = _SPECS.get(annotation, default)
    options: tuple[tuple[str, str], ...] = ()
    if ptype == "bool":
        options = BOOL_OPTIONS
    elif annotation == "outcome":
        options = tuple((str(kind), str(kind).capitalize()) for kind in OutcomeKind)
    return PropertySpec(property_name(annotation), label, ptype, field_type, description, options)


CRMBRIDGE_PROPERTIES: tuple[PropertySpec, ...] = tuple(_spec(a) for a in ANNOTATIONS)
"""Every property ``setup`` creates, one per annotation, in :data:`crmbridge.ANNOTATIONS` order."""


# -- reading the portal's properties -------------------------------------------------------------


@dataclass(frozen=True)
class PropertyInfo:
    """What HubSpot says about one contact property."""

    name: str
    type: str
    field_type: str
    options: tuple[str, ...] = ()
    group: str = ""
    labels: tuple[str, ...] = ()
    """The options' labels, in the order of ``options``."""

    @property
    def enumeration(self) -> bool:
        """Whether the property is a picklist."""
        return self.type == "enumeration"


@dataclass
class Catalog:
    """The portal's live contact properties, by name."""

    properties: dict[str, PropertyInfo] = field(default_factory=dict)

    def get(self, name: str) -> PropertyInfo | None:
        """The property named ``name``, or None."""
        return self.properties.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.properties


def read_catalog(client: HubSpotClient) -> Catalog:
    """Every live contact property with its type and options (one call)."""
    answer = client.call(
        "GET properties/contacts",
        client.properties_api.get_all_with_http_info,
        object_type=OBJECT_TYPE,
        archived=False,
    )
    catalog = Catalog()
    for prop in answer.results or []:
        options = list(prop.options or [])
        catalog.properties[prop.name] = PropertyInfo(
            name=prop.name,
            type=str(prop.type),
            field_type=str(prop.field_type),
            options=tuple(str(o.value) for o in options),
            group=str(prop.group_name or ""),
            labels=tuple(str(o.label or o.value) for o in options),
        )
    return catalog


# -- setup ---------------------------------------------------------------------------------------


def setup(client: HubSpotClient, mapping: SystemMapping, *, dry_run: bool) -> SetupReport:
    """Create the crmbridge group and properties that are missing; say what a person must add."""
    report = SetupReport(SYSTEM)
    _ensure_group(client, report, dry_run=dry_run)
    catalog = read_catalog(client)
    for spec in CRMBRIDGE_PROPERTIES:
        found = catalog.get(spec.name)
        if found is None:
            _create(client, spec, report, dry_run=dry_run)
        elif found.type != spec.type:
            report.manual.append(
                f"contact property {spec.name} is of type {found.type}, crmbridge writes "
                f"{spec.type}: delete it in HubSpot (Settings → Properties) and run `crmbridge "
                "setup` again"
            )
        else:
            _complete_options(client, spec, found, report, dry_run=dry_run)
    for native, why in _mapped_properties(mapping):
        if native not in catalog and not native.startswith("crmbridge_"):
            report.manual.append(f"contact property {native} ({why})")
    return report


def _ensure_group(client: HubSpotClient, report: SetupReport, *, dry_run: bool) -> None:
    answer = client.call(
        "GET properties/contacts/groups",
        client.groups_api.get_all_with_http_info,
        object_type=OBJECT_TYPE,
    )
    if any(g.name == GROUP for g in answer.results or []):
        report.existing.append(f"property group {GROUP}")
        return
    if not dry_run:
        try:
            client.call(
                f"POST properties/contacts/groups ({GROUP})",
                client.groups_api.create_with_http_info,
                object_type=OBJECT_TYPE,
                property_group_create=PropertyGroupCreate(
                    name=GROUP, label=GROUP_LABEL, display_order=-1
                ),
            )
        except HubSpotRequestError as exc:
            if exc.status != 409:
                raise
            report.existing.append(f"property group {GROUP}")
            return
    report.created.append(f"property group {GROUP}")


def _create(
    client: HubSpotClient, spec: PropertySpec, report: SetupReport, *, dry_run: bool
) -> None:
    label = f"contact property {spec.name} ({spec.type})"
    if dry_run:
        report.created.append(label)
        return
    try:
        client.call(
            f"POST properties/contacts ({spec.name})",
            client.properties_api.create_with_http_info,
            object_type=OBJECT_TYPE,
            property_create=spec.create_model(),
        )
    except HubSpotRequestError as exc:
        if exc.status != 409:
            raise
        # Not among the live properties, yet the name is taken: an archived property holds it.
        report.manual.append(
            f"contact property {spec.name}: a deleted (archived) property holds the name; "
            "restore it in HubSpot (Settings → Properties → Archived properties)"
        )
        return
    report.created.append(label)


def _complete_options(
    client: HubSpotClient,
    spec: PropertySpec,
    found: PropertyInfo,
    report: SetupReport,
    *,
    dry_run: bool,
) -> None:
    missing = [(v, label) for v, label in spec.options if v not in found.options]
    if not spec.options or spec.type != "enumeration" or not missing:
        report.existing.append(f"contact property {spec.name}")
        return
    names = ", ".join(v for v, _ in missing)
    if not dry_run:
        kept = list(zip(found.options, found.labels, strict=True))
        client.call(
            f"PATCH properties/contacts/{spec.name}",
            client.properties_api.update_with_http_info,
            object_type=OBJECT_TYPE,
            property_name=spec.name,
            property_update=PropertyUpdate(options=_options([*kept, *missing])),
        )
    report.created.append(f"options {names} of contact property {spec.name}")


def _mapped_properties(mapping: SystemMapping) -> list[tuple[str, str]]:
    """Every HubSpot property the definition names, with why it is needed."""
    named: dict[str, str] = {}
    for shared, native in mapping.fields.items():
        named.setdefault(native, f"mapped from field {shared}")
    for key in mapping.picklists:
        native = key.rsplit(".", 1)[-1]
        named.setdefault(native, f"picklist [systems.{mapping.name}.picklists.{key}]")
    return list(named.items())


# -- check ---------------------------------------------------------------------------------------


def check(
    client: HubSpotClient,
    mapping: SystemMapping,
    definition_types: Mapping[str, str],
) -> CheckReport:
    """Missing crmbridge properties, missing mapped properties, and picklist drift.

    :param definition_types: shared field → its type in the definition (to spot a number mapped
        to a HubSpot enumeration, which HubSpot would refuse to take as written).
    """
    report = CheckReport(SYSTEM)
    catalog = read_catalog(client)
    # Reading one contact proves the token may read contacts, not only their definitions.
    client.call(
        "GET objects/contacts (1 contact)",
        client.basic_api.get_page_with_http_info,
        limit=1,
        properties=["email"],
    )
    report.add(
        "ok",
        "connection",
        f"HubSpot answered at {client.settings.base_url}; the token reads contacts and their "
        "properties",
    )
    missing = [s.name for s in CRMBRIDGE_PROPERTIES if s.name not in catalog]
    if missing:
        report.add(
            "error",
            "crmbridge properties",
            f"{len(missing)} of crmbridge's contact properties are missing: {', '.join(missing)}",
            SETUP_FIX,
        )
    else:
        report.add("ok", "crmbridge properties", "all present")
    for spec in CRMBRIDGE_PROPERTIES:
        found = catalog.get(spec.name)
        if found is not None and found.type != spec.type:
            report.add(
                "warning",
                f"property {spec.name}",
                f"is of type {found.type}; crmbridge writes {spec.type}",
                "delete it in HubSpot and run `crmbridge setup`",
            )
    _check_fields(report, mapping, catalog, definition_types)
    _check_picklists(report, mapping, catalog)
    return report


def _check_fields(
    report: CheckReport,
    mapping: SystemMapping,
    catalog: Catalog,
    definition_types: Mapping[str, str],
) -> None:
    where = f"[systems.{mapping.name}.fields]"
    for shared, native in mapping.fields.items():
        found = catalog.get(native)
        if found is None:
            report.add(
                "error",
                f"property {native}",
                f"{where} maps field {shared} to {native}, which HubSpot contacts do not have",
                f"create {native} in HubSpot or change the mapping",
            )
            continue
        if (
            found.enumeration
            and mapping.picklist_for_field(native) is None
            and definition_types.get(shared) in ("integer", "number")
        ):
            report.add(
                "warning",
                f"property {native}",
                f"is an enumeration ({', '.join(found.options[:8])}) while field {shared} is "
                f"a number: crmbridge reads the first number of an option, and HubSpot refuses "
                "numbers written to it that are not an option",
                f"map {shared} to a number property, or map the options under "
                f"[systems.{mapping.name}.picklists.{native}]",
            )


def _check_picklists(report: CheckReport, mapping: SystemMapping, catalog: Catalog) -> None:
    for picklist in mapping.picklists.values():
        native = picklist.field
        found = catalog.get(native)
        if found is None:
            report.add(
                "error",
                f"picklist {native}",
                f"{picklist.where} maps the values of {native}, which HubSpot contacts do not have",
                f"create {native} in HubSpot or remove the picklist",
            )
            continue
        if not found.enumeration:
            report.add(
                "warning",
                f"picklist {native}",
                f"{native} is a {found.type} property, not an enumeration: its values cannot be "
                "checked against the definition",
            )
            continue
        drift = picklist.drift(found.options)
        report.drift.extend(drift)
        if not drift:
            report.add("ok", f"picklist {native}", f"{len(found.options)} values, all mapped")


def annotation_properties(annotations: Mapping[str, Any]) -> dict[str, Any]:
    """Annotation name → value, as crmbridge property name → value (unknown names left out)."""
    return {property_name(k): v for k, v in annotations.items() if k in ANNOTATIONS}


def unknown_annotations(annotations: Iterable[str]) -> list[str]:
    """Annotation names crmbridge has no property for."""
    return [a for a in annotations if a not in ANNOTATIONS]
