"""The emulator's options: a JSON-able dict, checked once, with defaults that make a demo org.

Every key is optional. An unknown key is an error that names it, so a typo in a test or in
``crmbridge sandbox --options`` does not silently start a default org.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CLIENT_KEY = "crmbridge-sandbox-key"
DEFAULT_CLIENT_SECRET = "crmbridge-sandbox-secret"
INTEGRATION_USERNAME = "integration@crmbridge.sandbox"
DEFAULT_PASSWORD = "sandbox-password"
DEFAULT_TOKEN = "SANDBOXTOKEN"
DEFAULT_INSTANCE_URL = "https://crmbridge-sandbox.my.salesforce.com"

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    INTEGRATION_USERNAME: {
        "password": DEFAULT_PASSWORD,
        "security_token": DEFAULT_TOKEN,
        "name": "crmbridge Integration",
        "email": INTEGRATION_USERNAME,
    },
    "maria.garcia@crmbridge.sandbox": {"name": "Maria Garcia"},
    "james.chen@crmbridge.sandbox": {"name": "James Chen"},
    "aisha.okafor@crmbridge.sandbox": {"name": "Aisha Okafor"},
    "lukas.weber@crmbridge.sandbox": {"name": "Lukas Weber"},
}
DEFAULT_QUEUES = ("Inbound Leads",)
_VERSION = re.compile(r"^\d{2,3}\.\d$")


class SandboxConfigError(ValueError):
    """An option the Salesforce sandbox cannot use; the message names the option."""


@dataclass(frozen=True)
class UserSpec:
    """A user of the org: how they log in and how they appear on records."""

    username: str
    password: str
    security_token: str
    name: str
    email: str
    active: bool = True


@dataclass(frozen=True)
class SandboxConfig:
    """The Salesforce emulator's options.

    - ``api_version``: the version logins answer with (``"59.0"``); paths accept any ``vXX.X``.
    - ``clients``: connected apps, consumer key → consumer secret.
    - ``users``: username → ``{password, security_token, name, email, active}``; by default an
      integration user and four sales reps (password ``sandbox-password``, token
      ``SANDBOXTOKEN``). ``integration_user`` is who client-credentials logins run as.
    - ``queues``: lead queues (Groups of Type Queue) leads may be owned by.
    - ``jwt_public_key``: the PEM key that JWT bearer assertions must be signed for.
    - ``daily_api_limit``: API requests per 24 hours before 403 ``REQUEST_LIMIT_EXCEEDED``.
    - ``duplicate_rule_on_email``: refuse a second live Lead with the same email.
    - ``picklists``: ``{"Lead.Status": [...]}`` to start with other picklist values (drift).
    - ``lead_custom_fields``: whether crmbridge's Lead fields exist (``True``/``False``, or a
      list of the ones that do).
    - ``session_ttl_seconds``: idle time after which a session expires (sandbox clock).
    - ``query_batch_size``: records per query page unless ``Sforce-Query-Options`` says.
    - ``bulk_job_delay_seconds``: how long a Bulk API 2.0 job runs before it completes.
    - ``instance_url``: the My Domain URL logins hand out (any host; the transport rewrites it).
    """

    api_version: str = "59.0"
    clients: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_CLIENT_KEY: DEFAULT_CLIENT_SECRET}
    )
    users: tuple[UserSpec, ...] = ()
    integration_user: str = INTEGRATION_USERNAME
    queues: tuple[str, ...] = DEFAULT_QUEUES
    jwt_public_key: str | None = None
    daily_api_limit: int = 100_000
    duplicate_rule_on_email: bool = False
    picklists: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    lead_custom_fields: bool | tuple[str, ...] = True
    session_ttl_seconds: float = 7200.0
    query_batch_size: int = 2000
    bulk_job_delay_seconds: float = 0.2
    instance_url: str = DEFAULT_INSTANCE_URL

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SandboxConfig:
        """Check ``options`` and fill in the defaults."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise SandboxConfigError(
                f"unknown Salesforce sandbox option(s) {unknown}; known: {sorted(known)}"
            )
        version = str(options.get("api_version", "59.0")).lstrip("v")
        if not _VERSION.match(version):
            raise SandboxConfigError(f"api_version must look like '59.0', got {version!r}")
        users = _users(options.get("users", DEFAULT_USERS))
        integration = options.get("integration_user")
        if integration is None:
            names = [u.username for u in users]
            integration = INTEGRATION_USERNAME if INTEGRATION_USERNAME in names else names[0]
        elif integration not in {u.username for u in users}:
            raise SandboxConfigError(f"integration_user {integration!r} is not one of the users")
        custom = options.get("lead_custom_fields", True)
        if not isinstance(custom, bool):
            custom = tuple(str(name) for name in custom)
        return cls(
            api_version=version,
            clients=dict(options.get("clients", {DEFAULT_CLIENT_KEY: DEFAULT_CLIENT_SECRET})),
            users=users,
            integration_user=str(integration),
            queues=tuple(options.get("queues", DEFAULT_QUEUES)),
            jwt_public_key=options.get("jwt_public_key"),
            daily_api_limit=_positive_int(options, "daily_api_limit", 100_000),
            duplicate_rule_on_email=bool(options.get("duplicate_rule_on_email", False)),
            picklists={k: tuple(v) for k, v in dict(options.get("picklists", {})).items()},
            lead_custom_fields=custom,
            session_ttl_seconds=float(options.get("session_ttl_seconds", 7200.0)),
            query_batch_size=_positive_int(options, "query_batch_size", 2000),
            bulk_job_delay_seconds=float(options.get("bulk_job_delay_seconds", 0.2)),
            instance_url=str(options.get("instance_url", DEFAULT_INSTANCE_URL)).rstrip("/"),
        )


def _positive_int(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SandboxConfigError(f"{key} must be a positive integer, got {value!r}")
    return value


def _users(spec: Mapping[str, Any]) -> tuple[UserSpec, ...]:
    if not spec:
        raise SandboxConfigError("users must name at least one user")
    users = []
    for username, info in spec.items():
        info = dict(info or {})
        unknown = set(info) - {"password", "security_token", "name", "email", "active"}
        if unknown:
            raise SandboxConfigError(f"users[{username!r}] has unknown keys {sorted(unknown)}")
        users.append(
            UserSpec(
                username=username,
                password=str(info.get("password", DEFAULT_PASSWORD)),
                security_token=str(info.get("security_token", DEFAULT_TOKEN)),
                name=str(info.get("name", username.split("@")[0])),
                email=str(info.get("email", username)),
                active=bool(info.get("active", True)),
            )
        )
    return tuple(users)
