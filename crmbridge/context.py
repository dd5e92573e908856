"""The context every lifecycle hook receives, and the small shapes hooks return."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmbridge.definition import LeadDefinition
    from crmbridge.settings import Settings
    from crmbridge.store import Store


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class HookContext:
    """What a hook may need, passed to every lifecycle hook as ``ctx``.

    :param settings: the effective :class:`crmbridge.Settings`.
    :param definition: the lead definition in force for this run.
    :param store: the state store (known leads, handoffs, the journey), or ``None`` outside a run.
    :param log: a logger for the plugin to use; crmbridge redacts secrets and emails at INFO.
    :param run_id: the id of the sync cycle or backfill, or ``None``.
    :param pipeline: the pipeline's name, or ``None``.
    :param dry_run: ``True`` when nothing may be written anywhere.
    :param now: the clock; use ``ctx.now()`` rather than ``datetime.now()`` so tests can move time.
    """

    settings: Settings
    definition: LeadDefinition
    store: Store | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("crmbridge.plugins"))
    run_id: str | None = None
    pipeline: str | None = None
    dry_run: bool = False
    now: Callable[[], datetime] = utcnow


@dataclass(frozen=True, slots=True)
class Route:
    """Where a lead goes in sales: an ``owner`` (a user's email or id) or a ``queue``, and why."""

    owner: str | None = None
    queue: str | None = None
    reason: str = ""

    @property
    def target(self) -> str | None:
        return self.owner or self.queue


@dataclass(frozen=True, slots=True)
class Hold:
    """Keeps a lead from being handed off this cycle, with the reason recorded in its journey."""

    reason: str
    plugin: str = ""


@dataclass
class RunCounts:
    """The counts of one sync cycle or backfill, recorded so a run can be reconciled.

    ``pulled == valid + quarantined`` for the leads of a run; ``api_calls`` maps a system to the
    calls this run made to it.
    """

    pulled: int = 0
    valid: int = 0
    quarantined: int = 0
    deleted: int = 0
    matched: int = 0
    created: int = 0
    stage_changes: int = 0
    refused: int = 0
    conflicts: int = 0
    handed_off: int = 0
    held: int = 0
    outcomes: int = 0
    written_back: int = 0
    sla_breaches: int = 0
    errors: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: RunCounts) -> None:
        """Add ``other``'s counts to these (for a backfill made of chunks)."""
        for name, value in asdict(other).items():
            if name == "api_calls":
                for system, calls in value.items():
                    self.api_calls[system] = self.api_calls.get(system, 0) + calls
            else:
                setattr(self, name, getattr(self, name) + value)
