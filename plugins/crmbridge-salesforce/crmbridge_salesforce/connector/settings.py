"""The Salesforce connector's settings, read from ``CRMBRIDGE_SALESFORCE__*`` in the env files.

Four ways to log in, chosen with ``AUTH`` (each needs its own variables; a missing one is named
when the settings are read, not at the first sync):

* ``client_credentials`` (the default): a connected app with the client credentials flow and a
  run-as user; ``DOMAIN`` (the org's My Domain, ``acme.my``), ``CLIENT_ID``, ``CLIENT_SECRET``.
* ``jwt``: the JWT bearer flow; ``DOMAIN`` (``login``, ``test`` or My Domain), ``CLIENT_ID``,
  ``USERNAME`` and ``PRIVATE_KEY`` (the PEM text) or ``PRIVATE_KEY_FILE``.
* ``password``: the OAuth username-password flow; ``CLIENT_ID``, ``CLIENT_SECRET``, ``USERNAME``,
  ``PASSWORD`` and, unless the org trusts the caller's IP, ``SECURITY_TOKEN``.
* ``soap``: the SOAP ``login()`` call, kept for legacy orgs (Salesforce retires it in
  Summer '27); ``USERNAME``, ``PASSWORD``, ``SECURITY_TOKEN``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from crmbridge import ConnectorSettings
from crmbridge.retry import RetryPolicy

AuthMode = Literal["client_credentials", "jwt", "password", "soap"]
_API_VERSION = re.compile(r"^\d{2,3}\.\d$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*__c$")
_NEEDS: dict[str, tuple[str, ...]] = {
    "client_credentials": ("client_id", "client_secret"),
    "jwt": ("client_id", "username"),
    "password": ("client_id", "client_secret", "username", "password"),
    "soap": ("username", "password"),
}


class SalesforceSettings(ConnectorSettings):
    """Settings of the Salesforce connector (``CRMBRIDGE_SALESFORCE__<FIELD>``)."""

    auth: AuthMode = "client_credentials"
    """How to log in: ``client_credentials``, ``jwt``, ``password`` or ``soap``."""
    domain: str = "login"
    """The org's My Domain without ``.salesforce.com`` (``acme.my``), or ``login`` / ``test``."""
    client_id: str = ""
    """The connected app's consumer key."""
    client_secret: SecretStr = SecretStr("")
    """The connected app's consumer secret."""
    username: str = ""
    """The integration user (JWT, password and SOAP logins)."""
    password: SecretStr = SecretStr("")
    """The integration user's password (password and SOAP logins)."""
    security_token: SecretStr = SecretStr("")
    """The integration user's security token (appended to the password)."""
    private_key: SecretStr | None = None
    """The PEM private key whose certificate the connected app holds (JWT)."""
    private_key_file: Path | None = None
    """A file holding that PEM key, instead of ``private_key``."""
    api_version: str = "59.0"
    """The REST API version, ``XX.X``."""
    sandbox_url: str | None = None
    """A plain-HTTP sandbox emulator every HTTPS call is sent to (``crmbridge sandbox``)."""
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    """Connect timeout of every HTTP call (``timeout_seconds`` is the read timeout)."""

    external_id_field: str = "CrmBridge_Id__c"
    """The Lead field holding crmbridge's id: an External ID, Unique text field."""
    query_page_size: int = Field(default=2000, ge=200, le=2000)
    """Records per query page (``Sforce-Query-Options: batchSize``; Salesforce allows
    200 to 2000)."""
    bulk_threshold: int = Field(default=2000, ge=1)
    """Writes and backfill reads of at least this many records go through Bulk API 2.0."""
    bulk_poll_seconds: float = Field(default=2.0, gt=0)
    """How long to wait before polling a Bulk API 2.0 job (the wait then grows half as long again
    at each poll, up to a minute)."""
    bulk_job_timeout_seconds: float = Field(default=3600.0, gt=0)
    """How long an upsert job may run before crmbridge gives up on it (and aborts it)."""
    bulk_page_size: int = Field(default=10_000, ge=1, le=50_000)
    """Rows per Bulk API 2.0 query results page."""

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

    @field_validator("domain")
    @classmethod
    def _bare_domain(cls, value: str) -> str:
        # People paste the My Domain URL; the SDK wants "acme.my" and adds ".salesforce.com".
        text = value.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        text = text.removesuffix(".salesforce.com")
        if not text or "/" in text:
            raise ValueError("must be `login`, `test` or the My Domain such as `acme.my`")
        return text

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        text = value.strip().lstrip("v")
        if not _API_VERSION.match(text):
            raise ValueError("must look like 59.0")
        return text

    @field_validator("sandbox_url")
    @classmethod
    def _sandbox_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = value.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url

    @field_validator("external_id_field")
    @classmethod
    def _custom_field(cls, value: str) -> str:
        if not _FIELD_NAME.match(value):
            raise ValueError("must be a custom field's API name such as CrmBridge_Id__c")
        return value

    @model_validator(mode="after")
    def _credentials_for_the_auth_mode(self) -> SalesforceSettings:
        missing = [name for name in _NEEDS[self.auth] if not _given(getattr(self, name))]
        if self.auth == "jwt" and self.private_key is None and self.private_key_file is None:
            missing.append("private_key (or private_key_file)")
        if self.auth == "client_credentials" and self.domain in {"login", "test"}:
            missing.append("domain (the org's My Domain, e.g. acme.my)")
        if missing:
            names = ", ".join(f"CRMBRIDGE_SALESFORCE__{m.split(' ')[0].upper()}" for m in missing)
            raise ValueError(f"auth = {self.auth!r} needs {', '.join(missing)} (set {names})")
        return self

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
        """``(connect, read)`` seconds for every HTTP call."""
        return (self.connect_timeout_seconds, self.timeout_seconds)

    def private_key_text(self) -> str | None:
        """The JWT signing key's PEM text, from ``private_key`` or ``private_key_file``."""
        if self.private_key is not None and self.private_key.get_secret_value().strip():
            return self.private_key.get_secret_value()
        if self.private_key_file is not None:
            return self.private_key_file.read_text(encoding="utf-8")
        return None


def _given(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return bool(value)
