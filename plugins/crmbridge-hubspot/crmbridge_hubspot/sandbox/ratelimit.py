"""HubSpot's API limits for private apps: a ten-second rolling window, a daily budget, and search.

All apps of an account share the limits. Search is exempt from the ten-second window but allows
only a few requests per second; every request counts against the day, which resets at midnight in
the portal's time zone (UTC here, on the emulator's clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from crmbridge.testing.sandbox import DailyBudget, RollingWindow
from crmbridge_hubspot.sandbox.catalog import iso_ms
from crmbridge_hubspot.sandbox.config import HubSpotOptions
from crmbridge_hubspot.sandbox.errors import RateLimited


class AccountLimits:
    """Counts requests against the account's limits and answers the refusal when one is spent."""

    def __init__(
        self,
        options: HubSpotOptions,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self._now = now
        self.window = RollingWindow(options.ten_secondly_max, options.window_seconds, monotonic)
        self.search = RollingWindow(options.search_per_second, 1.0, monotonic)
        self.daily = DailyBudget(options.daily_max)
        self._day: date = now().date()
        self.group = f"private-app:{options.portal_id}"

    def _roll_day(self) -> None:
        today = self._now().date()
        if today != self._day:
            self._day = today
            self.daily.used = 0

    def _resets_at(self) -> datetime:
        today = self._now()
        return datetime(today.year, today.month, today.day, tzinfo=today.tzinfo) + timedelta(days=1)

    def acquire(self, *, search: bool) -> RateLimited | None:
        """Count one request; the refusal if a limit is spent (the request is then not counted)."""
        self._roll_day()
        if self.daily.remaining <= 0:
            wait = (self._resets_at() - self._now()).total_seconds()
            return self._refusal("DAILY", wait)
        bucket, policy = (
            (self.search, "SECONDLY") if search else (self.window, "TEN_SECONDLY_ROLLING")
        )
        wait_or_none = bucket.acquire()
        if wait_or_none is not None:
            return self._refusal(policy, wait_or_none)
        self.daily.acquire()
        return None

    def _refusal(self, policy: str, wait: float) -> RateLimited:
        return RateLimited(policy, self.group, wait if self.options.retry_after_header else None)

    def headers(self) -> dict[str, str]:
        """The ``X-HubSpot-RateLimit-*`` headers HubSpot adds to every non-search response."""
        return {
            "X-HubSpot-RateLimit-Daily": str(self.daily.limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(self.daily.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window.seconds * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window.limit),
            "X-HubSpot-RateLimit-Remaining": str(self.window.remaining()),
        }

    def usage(self) -> dict[str, Any]:
        """The body of ``GET /account-info/v3/api-usage/daily/private-apps``."""
        self._roll_day()
        now = self._now()
        return {
            "results": [
                {
                    "name": "private-apps-api-calls-daily",
                    "usageLimit": self.daily.limit,
                    "currentUsage": self.daily.used,
                    "collectedAt": iso_ms(int(now.timestamp() * 1000)),
                    "fetchStatus": "SUCCESS",
                    "resetsAt": iso_ms(int(self._resets_at().timestamp() * 1000)),
                }
            ]
        }

    def to_state(self) -> dict[str, Any]:
        """Today's usage, kept across restarts."""
        return {"day": self._day.isoformat(), "used": self.daily.used}

    def restore(self, data: dict[str, Any]) -> None:
        """Load the usage written by :meth:`to_state`."""
        self._day = date.fromisoformat(data["day"])
        self.daily.used = int(data["used"])
