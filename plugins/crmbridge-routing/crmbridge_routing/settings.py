"""The routing settings, read from ``CRMBRIDGE_ROUTING__*`` in the env files.

Maps are JSON, so one line of an env file holds a whole table::

    CRMBRIDGE_ROUTING__TERRITORIES='{"EMEA": ["GB", "DE", "FR"], "NA": ["US", "CA"]}'
    CRMBRIDGE_ROUTING__OWNERS='{"EMEA": ["anna@acme.example", "ben@acme.example"]}'
    CRMBRIDGE_ROUTING__QUEUES='{"NA": "na-inbound"}'
    CRMBRIDGE_ROUTING__DEFAULT_QUEUE=unrouted-leads
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from crmbridge import Settings
from crmbridge.settings import connector_settings

PREFIX = "routing"


def _json(value: Any) -> Any:
    """Env files hold text: a JSON object there becomes a dict (an empty text, no entries)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not JSON ({exc.msg} at character {exc.pos})") from None
    return value


def _names(value: Any) -> Any:
    """``"a, b"`` and ``["a", "b"]`` both mean the list ``["a", "b"]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class RoutingSettings(BaseModel):
    """Where each lead goes, by territory.

    :param territories: territory → the values of ``field`` (country codes or names) it covers;
        matched without regard to case or surrounding spaces.
    :param owners: territory → the sales owners (emails or user ids) who take its leads in
        turn (round robin).
    :param queues: territory → a queue for its leads when it has no owners.
    :param default_queue: the queue for leads no territory covers (unset: the sales system's own
        assignment rules decide).
    :param field: the shared field that decides the territory.
    :param state_file: where the round-robin position is saved at the end of each cycle, so a
        restart goes on where it stopped (unset: kept in memory only).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    territories: dict[str, list[str]] = {}
    owners: dict[str, list[str]] = {}
    queues: dict[str, str] = {}
    default_queue: str | None = None
    field: str = "country"
    state_file: Path | None = None

    @field_validator("territories", "owners", mode="before")
    @classmethod
    def _lists_of_names(cls, value: Any) -> Any:
        value = _json(value)
        if isinstance(value, dict):
            return {str(k): _names(v) for k, v in value.items()}
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _queue_names(cls, value: Any) -> Any:
        return _json(value)

    @field_validator("territories", "owners", mode="after")
    @classmethod
    def _lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: [v.strip() for v in values if v.strip()] for k, values in value.items()}

    @field_validator("default_queue", "state_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent(self) -> RoutingSettings:
        for key, table in (("OWNERS", self.owners), ("QUEUES", self.queues)):
            unknown = sorted(set(table) - set(self.territories))
            if unknown:
                raise ValueError(
                    f"CRMBRIDGE_ROUTING__{key} names territory {', '.join(map(repr, unknown))}, "
                    "which CRMBRIDGE_ROUTING__TERRITORIES does not list"
                )
        seen: dict[str, str] = {}
        for territory, values in self.territories.items():
            if not self.owners.get(territory) and not self.queues.get(territory):
                raise ValueError(
                    f"territory {territory!r} has no owners and no queue; add it to "
                    "CRMBRIDGE_ROUTING__OWNERS or CRMBRIDGE_ROUTING__QUEUES"
                )
            for value in values:
                key = value.casefold()
                if key in seen and seen[key] != territory:
                    raise ValueError(
                        f"{value!r} is in two territories, {seen[key]!r} and {territory!r}; "
                        "list it in one"
                    )
                seen[key] = territory
        return self

    @property
    def configured(self) -> bool:
        """Whether routing has anything to do (otherwise the plugin answers ``None``)."""
        return bool(self.territories or self.default_queue)

    def territory_of(self, value: object) -> str | None:
        """The territory covering a field value, or ``None``."""
        if not isinstance(value, str) or not value.strip():
            return None
        wanted = value.strip().casefold()
        for territory, values in self.territories.items():
            if any(v.casefold() == wanted for v in values):
                return territory
        return None


class SettingsCache:
    """The routing settings of each crmbridge :class:`Settings` object, read once.

    Several pipelines may run in one process with different settings; each keeps its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[Settings, RoutingSettings]] = {}

    def get(self, settings: Settings) -> RoutingSettings:
        with self._lock:
            found = self._cache.get(id(settings))
            if found is not None and found[0] is settings:
                return found[1]
            value = connector_settings(RoutingSettings, PREFIX, settings)
            # Holding the Settings object keeps its id from being reused by another object.
            self._cache[id(settings)] = (settings, value)
            return value
