"""A dry run's plan: what each system would have had created or changed, and nothing written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One write a dry run did not make."""

    system: str
    action: str  # "create", "update" or "write back"
    email: str
    native_id: str | None
    changes: Mapping[str, Any]


@dataclass
class Plan:
    """Every write a dry run would have made, by system."""

    writes: list[PlannedWrite] = field(default_factory=list)

    def add(
        self,
        system: str,
        action: str,
        email: str,
        native_id: str | None,
        changes: Mapping[str, Any],
    ) -> None:
        self.writes.append(PlannedWrite(system, action, email, native_id, dict(changes)))

    def by_system(self) -> dict[str, list[PlannedWrite]]:
        out: dict[str, list[PlannedWrite]] = {}
        for write in self.writes:
            out.setdefault(write.system, []).append(write)
        return out

    def summary(self) -> dict[str, dict[str, int]]:
        """system → action → count."""
        out: dict[str, dict[str, int]] = {}
        for write in self.writes:
            actions = out.setdefault(write.system, {})
            actions[write.action] = actions.get(write.action, 0) + 1
        return out
