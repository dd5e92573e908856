"""HubSpot contacts as crmbridge records: a contact read from any endpoint becomes a
:class:`~crmbridge.Change` in the shared language, through the lead definition.

Values go through :meth:`SystemMapping.from_native`; the lifecycle stage through the
``lifecyclestage`` picklist. A value with no mapping is never passed through: it becomes one of the
change's ``problems``, and the core quarantines the record with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmbridge import Change, ChangeKind, Lead, MappingError, Problem, SystemMapping
from crmbridge_hubspot.connector.errors import SYSTEM
from crmbridge_hubspot.connector.native import parse_time, utc_now
from crmbridge_hubspot.connector.schema import CRMBRIDGE_PROPERTIES

SYSTEM_PROPERTIES = ("email", "lifecyclestage", "hs_lead_status", "lastmodifieddate", "createdate")
MERGED_IDS = "hs_merged_object_ids"
OWNER = "hubspot_owner_id"


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact as a read answers it (the JSON of HubSpot's ``SimplePublicObject``)."""

    id: str
    properties: dict[str, Any] = field(default_factory=dict)
    updated_at: str | None = None
    archived_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contact:
        """A contact from one entry of ``results``."""
        return cls(
            id=str(data.get("id")),
            properties=dict(data.get("properties") or {}),
            updated_at=data.get("updatedAt"),
            archived_at=data.get("archivedAt"),
        )


def contacts_of(answer: Mapping[str, Any]) -> list[Contact]:
    """The contacts of a list, search or batch answer."""
    return [Contact.from_json(r) for r in answer.get("results") or [] if isinstance(r, Mapping)]


def next_after(answer: Mapping[str, Any]) -> str | None:
    """``paging.next.after`` of an answer, or None on its last page."""
    paging = answer.get("paging") or {}
    after = (paging.get("next") or {}).get("after") if isinstance(paging, Mapping) else None
    return None if after in (None, "") else str(after)


def properties_to_read(mapping: SystemMapping, *extra: str) -> list[str]:
    """The contact properties a read asks for: what the mapping needs, HubSpot's stage, status
    and timestamps, crmbridge's own properties, and ``extra``."""
    names = [
        *mapping.fields.values(),
        *(key.rsplit(".", 1)[-1] for key in mapping.picklists),
        *SYSTEM_PROPERTIES,
        *(spec.name for spec in CRMBRIDGE_PROPERTIES),
        *extra,
    ]
    return list(dict.fromkeys(names))


def modified_at(contact: Any) -> datetime:
    """When the contact last changed: ``lastmodifieddate``, else ``updatedAt``."""
    props = contact.properties or {}
    return (
        parse_time(props.get("lastmodifieddate"))
        or parse_time(getattr(contact, "updated_at", None))
        or utc_now()
    )


def archived_at(contact: Any) -> datetime:
    """When an archived contact was archived (``archivedAt``, else its last change)."""
    return parse_time(getattr(contact, "archived_at", None)) or modified_at(contact)


class ContactMapper:
    """Reads HubSpot contacts into changes, through one system mapping of the definition."""

    def __init__(self, mapping: SystemMapping) -> None:
        self.mapping = mapping

    def upsert(self, contact: Any) -> Change:
        """A live contact as an upsert change, its stage read from ``lifecyclestage``."""
        props: dict[str, Any] = dict(contact.properties or {})
        fields, problems = self.mapping.from_native(props)
        stage = self._stage(props, problems)
        when = modified_at(contact)
        lead = Lead.from_fields(
            fields, source=SYSTEM, system_id=str(contact.id), stage=stage, modified_at=when
        )
        return Change(
            SYSTEM,
            str(contact.id),
            ChangeKind.UPSERT,
            when,
            lead=lead,
            raw=_raw(contact.id, props),
            problems=tuple(problems),
        )

    def _stage(self, props: Mapping[str, Any], problems: list[Problem]) -> str | None:
        field = self.mapping.stage_field
        native = props.get(field) if field else None
        if not field or not native:
            return None
        try:
            return self.mapping.stage_from_native(str(native))
        except MappingError as exc:
            problems.append(Problem(field, exc.rule or "picklist_mapping", exc.message))
            return None

    @staticmethod
    def gone(contact: Any, merged_into: str | None) -> Change:
        """An archived contact: deleted, or merged into ``merged_into``."""
        props = dict(contact.properties or {})
        return Change(
            SYSTEM,
            str(contact.id),
            ChangeKind.MERGE if merged_into else ChangeKind.DELETE,
            archived_at(contact),
            raw=_raw(contact.id, props),
            merged_into=merged_into,
        )


def merged_ids(contact: Any) -> list[str]:
    """The ids merged into this contact (``hs_merged_object_ids``, ``;``-separated)."""
    raw = (contact.properties or {}).get(MERGED_IDS) or ""
    return [part.strip() for part in str(raw).split(";") if part.strip()]


def _raw(contact_id: Any, props: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(contact_id), **{k: v for k, v in props.items() if v is not None}}


def ids_of(contacts: Iterable[Any]) -> list[str]:
    """The ids of contacts, as strings."""
    return [str(c.id) for c in contacts]
