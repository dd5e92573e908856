"""The HubSpot emulator's options: one JSON-able dict, checked once, with HubSpot's tier limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

TIER_LIMITS: dict[str, tuple[int, int]] = {
    "starter": (100, 250_000),
    "professional": (190, 650_000),
    "enterprise": (190, 1_000_000),
}
"""Private-app limits per account tier: (requests per ten-second window, requests per day)."""

DEFAULT_TOKEN = "pat-sandbox-crmbridge"


@dataclass(frozen=True)
class HubSpotOptions:
    """What a test or ``crmbridge sandbox`` may change about the emulated portal.

    ``tokens`` are the private-app access tokens the portal accepts. ``tier`` picks the rate limits
    of :data:`TIER_LIMITS`; ``ten_secondly_limit``, ``window_seconds``, ``daily_limit`` and
    ``search_per_second`` override them so a test can hit a limit in a few calls.
    ``search_index_lag_ms`` is how long a write stays invisible to search. ``properties`` adds or
    overrides contact property definitions (drift); ``owners`` replaces the default owners.
    """

    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    tier: str = "professional"
    rate_limits: bool = True
    retry_after_header: bool = True
    search_index_lag_ms: int = 0
    lifecycle_forward_only: bool = True
    search_cap: int = 10_000
    portal_id: int = 24_242_424
    properties: tuple[Mapping[str, Any], ...] = ()
    owners: tuple[Mapping[str, Any], ...] | None = None
    ten_secondly_limit: int | None = None
    window_seconds: float = 10.0
    daily_limit: int | None = None
    search_per_second: int = 5

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> HubSpotOptions:
        """Read the emulator's options dict; an unknown key or tier is an error naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"HubSpot sandbox options: unknown key(s) {unknown}; known: {sorted(known)}"
            )
        values = dict(options)
        for key in ("tokens", "properties"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("owners") is not None:
            values["owners"] = tuple(values["owners"])
        opts = cls(**values)
        if opts.tier not in TIER_LIMITS:
            raise ValueError(
                f"HubSpot sandbox options: tier {opts.tier!r} is not one of {sorted(TIER_LIMITS)}"
            )
        if not opts.tokens:
            raise ValueError("HubSpot sandbox options: tokens must name at least one token")
        if opts.search_cap <= 0 or opts.search_index_lag_ms < 0:
            raise ValueError("HubSpot sandbox options: search_cap > 0 and search_index_lag_ms >= 0")
        return opts

    @property
    def ten_secondly_max(self) -> int:
        """Requests allowed in one rolling window."""
        return self.ten_secondly_limit or TIER_LIMITS[self.tier][0]

    @property
    def daily_max(self) -> int:
        """Requests allowed per day (the portal's day, UTC here)."""
        return self.daily_limit or TIER_LIMITS[self.tier][1]
