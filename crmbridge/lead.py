"""The value types of the lead lifecycle: Lead, Stage, Outcome, Handoff.

A :class:`Lead` speaks the shared language of the lead definition: its ``fields`` use the
definition's field names, its ``stage`` is one of the definition's stages. Connectors translate
native records into leads and back; the core never sees a vendor's field name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

_INVISIBLE = re.compile(r"[\u200b-\u200f\u2028-\u202f\u2060\ufeff]+")


def normalize_email(value: object) -> str:
    """The identity form of an email: NFC, trimmed, invisible characters removed, lower-cased.

    ``"  Jane.Doe@Example.COM\\u200b "`` and ``"jane.doe@example.com"`` are the same person.
    A blank *inside* the address is kept: ``"john doe@example.com"`` is no address (and is
    quarantined as one), not ``johndoe@example.com``, who may be someone else.
    Returns ``""`` for a missing value; whether the result is a valid address is the lead
    definition's question, not this function's.
    """
    if value is None:
        return ""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", str(value))).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if text.lower().startswith("mailto:"):
        text = text[7:].strip()
    return text.lower()


class OutcomeKind(StrEnum):
    """Sales' verdict on a handed-off lead."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RECYCLED = "recycled"
    CONVERTED = "converted"
    WON = "won"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage of the lead definition.

    ``position`` orders the funnel stages (0 = first); side states (recycled, disqualified) have
    ``position is None`` and ``side`` set.
    """

    name: str
    position: int | None
    label: str = ""

    @property
    def side(self) -> bool:
        return self.position is None

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class Lead:
    """One person, in the lead definition's language.

    :param email: the normalized email, the lead's identity across systems.
    :param fields: shared field name → value (``company``, ``job_title``, ``page_views`` …).
    :param stage: the stage the lead is at, or ``None`` before qualification.
    :param system_ids: system name → that system's id for this lead.
    :param source: the system this version of the lead was read from.
    :param modified_at: when the source system last changed the record.
    :param raw_email: the email exactly as the source system holds it.
    :param score: the last total score crmbridge computed.
    :param id: crmbridge's own id (the store's), once the lead is known.
    """

    email: str
    fields: dict[str, Any] = field(default_factory=dict)
    stage: str | None = None
    system_ids: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    modified_at: datetime | None = None
    raw_email: str | None = None
    score: int | None = None
    id: int | None = None

    @classmethod
    def from_fields(
        cls,
        fields: Mapping[str, Any],
        *,
        source: str | None = None,
        system_id: str | None = None,
        stage: str | None = None,
        modified_at: datetime | None = None,
    ) -> Lead:
        """A lead from shared fields, its identity taken from the ``email`` field."""
        raw = fields.get("email")
        return cls(
            email=normalize_email(raw),
            fields=dict(fields),
            stage=stage,
            system_ids={source: system_id} if source and system_id else {},
            source=source,
            modified_at=modified_at,
            raw_email=None if raw is None else str(raw),
        )

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def copy(self, **changes: Any) -> Lead:
        """A copy with ``changes``; ``fields`` and ``system_ids`` are copied, not shared."""
        base = replace(self, fields=dict(self.fields), system_ids=dict(self.system_ids))
        return replace(base, **changes) if changes else base


@dataclass(frozen=True, slots=True)
class Outcome:
    """Sales' verdict on a handed-off lead, as read from the sales system.

    :param kind: accepted, rejected, recycled, converted, won or lost.
    :param system: the sales system that gave it.
    :param native_id: the sales system's id of the lead (not of the opportunity).
    :param occurred_at: when sales gave it (the record's modification time).
    :param email: the lead's normalized email, when the sales record carries it.
    :param reason: the shared reason code (``no_budget``) for rejections and losses.
    :param native_value: the native value it was read from (``"Closed - Not Converted"``).
    :param amount: the deal amount, for won (and lost) deals.
    :param owner: who in sales gave it (a user's email or name).
    :param crmbridge_id: the lead's crmbridge id as the sales record carries it.
    :param details: related native ids and anything else worth keeping (contact, opportunity).
    """

    kind: OutcomeKind
    system: str
    native_id: str
    occurred_at: datetime
    email: str = ""
    reason: str | None = None
    native_value: str | None = None
    amount: float | None = None
    owner: str | None = None
    crmbridge_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identifies this verdict: the same verdict read twice has the same key."""
        return f"{self.system}:{self.native_id}:{self.kind}:{self.native_value or ''}"


@dataclass(frozen=True, slots=True)
class Handoff:
    """Marketing handing a lead to sales, and what became of it.

    :param lead_email: the lead handed off.
    :param sales_system: the system it was handed to.
    :param native_id: the sales system's id of the lead.
    :param handed_off_at: when crmbridge wrote it to sales.
    :param sla_due_at: when sales must have answered by.
    :param owner: the owner or queue it was routed to.
    :param outcome: the verdict, once sales gave one.
    :param outcome_reason: the shared reason code for a rejection or loss.
    :param outcome_at: when sales gave the verdict.
    :param sla_breached_at: when crmbridge found the SLA breached, if it was.
    :param id: the store's id of this handoff.
    """

    lead_email: str
    sales_system: str
    native_id: str | None
    handed_off_at: datetime
    sla_due_at: datetime
    owner: str | None = None
    outcome: OutcomeKind | None = None
    outcome_reason: str | None = None
    outcome_at: datetime | None = None
    sla_breached_at: datetime | None = None
    id: int | None = None

    @property
    def answered(self) -> bool:
        return self.outcome is not None

    def is_breached(self, now: datetime) -> bool:
        """Unanswered past its due time (whether or not the breach was recorded yet)."""
        return self.outcome is None and now >= self.sla_due_at
