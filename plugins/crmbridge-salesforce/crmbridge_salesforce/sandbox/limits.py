"""The org's daily API budget, the ``Sforce-Limit-Info`` header, and ``GET limits/``.

Salesforce counts every REST and Bulk API call against the org's rolling 24-hour allowance, tells
the client how much is used in ``Sforce-Limit-Info: api-usage=used/max`` on every response, and,
once it is spent, refuses calls with 403 ``REQUEST_LIMIT_EXCEEDED``. The budget here restarts 24
hours (on the sandbox clock) after its first counted call, a simplification of the rolling window.
"""

from __future__ import annotations

from typing import Any

from crmbridge.testing.sandbox.clock import SandboxClock
from crmbridge.testing.sandbox.ratelimit import DailyBudget
from crmbridge_salesforce.sandbox.errors import ApiError

DAY_SECONDS = 24 * 3600

# The other limits an org reports, with the values of a small org, as ``GET limits/`` answers.
STATIC_LIMITS: dict[str, tuple[int, int]] = {
    "ConcurrentAsyncGetReportInstances": (200, 200),
    "ConcurrentSyncReportRuns": (20, 20),
    "DailyAsyncApexExecutions": (250000, 250000),
    "DailyDurableGenericStreamingApiEvents": (10000, 10000),
    "DailyDurableStreamingApiEvents": (10000, 10000),
    "DailyGenericStreamingApiEvents": (10000, 10000),
    "DailyStreamingApiEvents": (10000, 10000),
    "DailyWorkflowEmails": (390, 390),
    "DataStorageMB": (5, 5),
    "DurableStreamingApiConcurrentClients": (20, 20),
    "FileStorageMB": (20, 20),
    "HourlyAsyncReportRuns": (1200, 1200),
    "HourlyDashboardRefreshes": (200, 200),
    "HourlyDashboardResults": (5000, 5000),
    "HourlyDashboardStatuses": (999999999, 999999999),
    "HourlyODataCallout": (10000, 10000),
    "HourlySyncReportRuns": (500, 500),
    "HourlyTimeBasedWorkflow": (50, 50),
    "MassEmail": (10, 10),
    "SingleEmail": (15, 15),
    "StreamingApiConcurrentClients": (20, 20),
}
DAILY_BULK_JOBS = 15000


class ApiBudget:
    """Daily API requests (and Bulk API jobs) used and allowed."""

    def __init__(self, clock: SandboxClock, limit: int) -> None:
        self.clock = clock
        self.requests = DailyBudget(limit)
        self.bulk_jobs = DailyBudget(DAILY_BULK_JOBS)
        self.window_start: float | None = None

    def _roll(self) -> None:
        now = self.clock.now().timestamp()
        if self.window_start is None:
            self.window_start = now
        elif now - self.window_start >= DAY_SECONDS:
            self.window_start = now
            self.requests.used = 0
            self.bulk_jobs.used = 0

    def spend(self) -> None:
        """Count one API call, or raise 403 ``REQUEST_LIMIT_EXCEEDED`` once the day's are spent."""
        self._roll()
        if not self.requests.acquire():
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def spend_bulk_job(self) -> None:
        """Count one Bulk API job against the day's allowance."""
        self._roll()
        if not self.bulk_jobs.acquire():
            raise ApiError(403, "REQUEST_LIMIT_EXCEEDED", "DailyBulkApiRequests Limit exceeded.")

    def header(self) -> str:
        """The ``Sforce-Limit-Info`` value."""
        return f"api-usage={self.requests.used}/{self.requests.limit}"

    def set_used(self, used: int) -> None:
        """Set today's used API requests (a test's shortcut to the limit)."""
        if used < 0:
            raise ValueError("API usage cannot be negative")
        self._roll()
        self.requests.used = used

    def limits(self) -> dict[str, dict[str, int]]:
        """``GET limits/``: every limit as ``{"Max", "Remaining"}``, in Salesforce's key order."""
        body = {name: {"Max": m, "Remaining": r} for name, (m, r) in STATIC_LIMITS.items()}
        body["DailyApiRequests"] = {
            "Max": self.requests.limit,
            "Remaining": self.requests.remaining,
        }
        body["DailyBulkApiRequests"] = {
            "Max": self.bulk_jobs.limit,
            "Remaining": self.bulk_jobs.remaining,
        }
        return dict(sorted(body.items()))

    def snapshot(self) -> dict[str, Any]:
        """Usage and window, for the state file."""
        return {
            "used": self.requests.used,
            "bulk_jobs": self.bulk_jobs.used,
            "window_start": self.window_start,
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Load usage written by :meth:`snapshot`."""
        self.requests.used = int(data.get("used", 0))
        self.bulk_jobs.used = int(data.get("bulk_jobs", 0))
        self.window_start = data.get("window_start")
