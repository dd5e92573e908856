"""The HubSpot connector's settings, read from ``CRMBRIDGE_HUBSPOT__*`` in the env files.

Only the access token is required. The rate limits default to HubSpot's Professional and
Enterprise tiers (190 requests per ten seconds, 5 searches per second, shared by every app of the
portal); the connector paces itself to stay under them and tightens further when HubSpot's
``X-HubSpot-RateLimit-*`` headers say the portal has less left.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from crmbridge import ConnectorSettings
from crmbridge.retry import RetryPolicy

DEFAULT_BASE_URL = "https://api.hubapi.com"


class HubSpotSettings(ConnectorSettings):
    """Settings of the HubSpot connector (``CRMBRIDGE_HUBSPOT__<FIELD>``)."""

    access_token: SecretStr
    """A private app's access token (``pat-...``), with the scopes the README lists."""
    base_url: str = DEFAULT_BASE_URL
    """Where HubSpot's API is: the real one, or a sandbox emulator."""
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """Connect timeout of every HTTP call (``timeout_seconds`` is the read timeout)."""

    page_size: int = Field(default=100, ge=1, le=100)
    """Contacts per list page (HubSpot's maximum is 100)."""
    search_page_size: int = Field(default=200, ge=1, le=200)
    """Contacts per search page (HubSpot's maximum is 200)."""

    requests_per_10s: int = Field(default=190, ge=1)
    """Requests per rolling ten seconds, search excluded (Free/Starter portals: 100)."""
    search_per_second: int = Field(default=5, ge=1)
    """Search requests per second."""
    write_concurrency: int = Field(default=3, ge=1, le=8)
    """Batch writes in flight at once (the rate limit still paces them): with 100 ms or more of
    latency per call, one at a time cannot reach the limit."""

    archived_scan_seconds: float = Field(default=0.0, ge=0)
    """How often the list of deleted contacts is read for deletes and merges (0: every pull).
    The list has no filter, so a portal with many deletes may want it less often."""

    retry_attempts: int = Field(default=6, ge=1)
    """The most attempts of one call, the first included."""
    retry_max_seconds: float = Field(default=120.0, gt=0)
    """The most time spent on one call, waits included."""
    retry_base_seconds: float = Field(default=0.5, ge=0)
    """The first backoff without a ``Retry-After`` (doubled each attempt, with jitter)."""
    retry_cap_seconds: float = Field(default=30.0, ge=0)
    """The longest backoff."""
    max_retry_after_seconds: float = Field(default=120.0, ge=0)
    """The longest ``Retry-After`` honoured."""

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    def retry_policy(self) -> RetryPolicy:
        """The retry policy of every call, from the ``retry_*`` settings."""
        return RetryPolicy(
            attempts=self.retry_attempts,
            max_seconds=self.retry_max_seconds,
            base=self.retry_base_seconds,
            cap=self.retry_cap_seconds,
            max_retry_after=self.max_retry_after_seconds,
        )

    def request_timeout(self) -> tuple[float, float]:
        """``(connect, read)`` seconds, as the SDK's ``_request_timeout`` takes them."""
        return (self.connect_timeout_seconds, self.timeout_seconds)
