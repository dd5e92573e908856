"""What the store hands back: plain records, not database rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """A record held back because it broke the lead definition or a system refused it.

    :param id: the quarantine entry's id (``crmbridge quarantine show ID``).
    :param pipeline: the pipeline that met it.
    :param system: the system the record lives in.
    :param native_id: the system's id of the record.
    :param stage: where it failed: ``read`` (from marketing), ``write`` (to a system),
        ``outcome`` (a sales verdict that could not be read).
    :param email: the lead's email, when known.
    :param field: the field at fault (shared or native name).
    :param rule: the rule it broke (``email_format``, ``picklist_mapping``, a system's error code).
    :param error: the full message.
    :param raw: the record as read, so nothing is lost.
    :param attempts: how many times it was tried.
    :param status: ``open``, ``retry`` (asked to be tried again), ``dropped`` or ``resolved``.
    """

    id: int
    pipeline: str
    system: str
    native_id: str
    stage: str
    email: str | None
    field: str | None
    rule: str | None
    error: str
    raw: Mapping[str, Any]
    attempts: int
    status: str
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class JourneyEvent:
    """One step of a lead's journey: what happened, who did it, why, under which definition."""

    id: int
    lead_id: int
    at: datetime
    kind: str
    summary: str
    system: str | None = None
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    definition_version: str | None = None
    definition_hash: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One sync cycle or backfill and its counts."""

    id: str
    pipeline: str
    kind: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: Mapping[str, Any]
    error: str | None


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """Who holds a pipeline, until when, under which fence."""

    pipeline: str
    owner: str
    acquired_at: datetime
    expires_at: datetime
    fence: int
