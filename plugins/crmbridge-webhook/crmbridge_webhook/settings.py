"""The webhook settings, read from ``CRMBRIDGE_WEBHOOK__*`` in the env files."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from crmbridge import Settings
from crmbridge.settings import connector_settings

PREFIX = "webhook"


class WebhookSettings(BaseModel):
    """Where to post, how to sign, how long to wait.

    :param url: the endpoint (``http://`` or ``https://``); unset, the plugin does nothing.
    :param secret: the shared secret; when set, every post carries
        ``X-Crmbridge-Signature: sha256=<HMAC-SHA256 of the body, hex>``.
    :param timeout_seconds: how long one post may take.
    :param attempts: the most attempts of one post (429, 5xx, timeouts and dropped connections
        are retried with backoff; other answers are not).
    :param backoff_seconds: the first wait between attempts (doubled each time, with jitter).
    :param digest_limit: the most leads listed in one rejected-lead digest (the count is exact).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    url: str | None = None
    secret: SecretStr | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0)
    digest_limit: int = Field(default=200, ge=1)

    @field_validator("url", "secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an http:// or https:// address, such as https://hooks.example/crm"
            )
        return value.strip()

    @property
    def configured(self) -> bool:
        """Whether there is anywhere to post (otherwise the plugin does nothing)."""
        return self.url is not None

    @property
    def url_for_logs(self) -> str:
        """The endpoint without its path and query, which often carry a token."""
        if self.url is None:
            return ""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/…"


class SettingsCache:
    """The webhook settings of each crmbridge :class:`Settings` object, read once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[Settings, WebhookSettings]] = {}

    def get(self, settings: Settings) -> WebhookSettings:
        with self._lock:
            found = self._cache.get(id(settings))
            if found is not None and found[0] is settings:
                return found[1]
            value = connector_settings(WebhookSettings, PREFIX, settings)
            # Holding the Settings object keeps its id from being reused by another object.
            self._cache[id(settings)] = (settings, value)
            return value
