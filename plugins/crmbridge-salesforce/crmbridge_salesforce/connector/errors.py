"""What simple-salesforce and requests raise, translated into crmbridge's errors by recovery.

* 401 ``INVALID_SESSION_ID`` → :class:`~crmbridge.SessionExpired` (the session logs in again);
* 403 ``REQUEST_LIMIT_EXCEEDED`` → :class:`~crmbridge.QuotaExhausted`: the org's rolling 24-hour
  API quota is spent; retrying soon only spends what others need, so the pipeline pauses;
* 429 → :class:`~crmbridge.RateLimited`; 5xx, ``UNABLE_TO_LOCK_ROW``, dropped connections and
  timeouts → :class:`~crmbridge.TransientError`; all retried with backoff;
* a failed login → :class:`~crmbridge.AuthenticationError` naming the auth mode and what to check;
* any other refusal → :class:`~crmbridge.FatalError` with the request, Salesforce's code and
  message, and a hint (usually: run ``crmbridge check``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from crmbridge import (
    AuthenticationError,
    CrmBridgeError,
    FatalError,
    QuotaExhausted,
    RateLimited,
    SessionExpired,
    TransientError,
)

SYSTEM = "salesforce"
PLUGIN = "crmbridge-salesforce"
CHECK_HINT = "run `crmbridge check` to compare the org with the lead definition"
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION"})
AUTH_CHECKS: Mapping[str, str] = {
    "client_credentials": (
        "check CRMBRIDGE_SALESFORCE__DOMAIN (the org's My Domain, e.g. acme.my), CLIENT_ID and "
        "CLIENT_SECRET, that the connected app enables the client credentials flow and names a "
        "run-as user, and that the user is active"
    ),
    "jwt": (
        "check CRMBRIDGE_SALESFORCE__DOMAIN, CLIENT_ID, USERNAME and PRIVATE_KEY(_FILE), that the "
        "connected app holds the key's certificate, and that the user is pre-authorized for the "
        "app (Admin approved users are pre-authorized, with a profile or permission set)"
    ),
    "password": (
        "check CRMBRIDGE_SALESFORCE__CLIENT_ID, CLIENT_SECRET, USERNAME, PASSWORD and "
        "SECURITY_TOKEN, and that the connected app allows the username-password flow"
    ),
    "soap": (
        "check CRMBRIDGE_SALESFORCE__USERNAME, PASSWORD and SECURITY_TOKEN, and that the org still "
        "allows SOAP login() (prefer AUTH=client_credentials or jwt)"
    ),
}


def error_entries(content: Any) -> list[Mapping[str, Any]]:
    """Salesforce's error array from an exception's ``content`` (a list, a dict or text)."""
    if isinstance(content, Mapping):
        return [content]
    if isinstance(content, Sequence) and not isinstance(content, str | bytes):
        return [e for e in content if isinstance(e, Mapping)]
    return []


def error_code(exc: SalesforceError) -> str:
    """The first ``errorCode`` of a refused request (``""`` when there is none)."""
    entries = error_entries(getattr(exc, "content", None))
    return str(entries[0].get("errorCode", "")) if entries else ""


def error_message(exc: SalesforceError) -> str:
    """``CODE: message`` of a refused request, or its text."""
    entries = error_entries(getattr(exc, "content", None))
    if not entries:
        return str(getattr(exc, "content", "") or exc).strip()
    return "; ".join(
        f"{e.get('errorCode', '')}: {e.get('message', '')}".strip(": ") for e in entries
    )


def login_failed(exc: SalesforceAuthenticationFailed, auth: str) -> AuthenticationError:
    """A refused login, naming the auth mode and what to check."""
    code = getattr(exc, "code", "")
    message = getattr(exc, "message", "") or str(exc)
    return AuthenticationError(
        f"Salesforce refused the {auth} login ({code}: {message})",
        plugin=PLUGIN,
        system=SYSTEM,
        hint=AUTH_CHECKS.get(auth, "check the CRMBRIDGE_SALESFORCE__* credentials"),
    )


def translate(
    exc: BaseException, what: str, *, auth: str, retry_after: float | None = None
) -> CrmBridgeError | None:
    """The crmbridge error for ``exc`` raised by ``what`` (``None``: not an HTTP failure).

    :param auth: the auth mode, named when a login (the SDK's own re-login too) is refused.
    :param retry_after: the ``Retry-After`` of the failed answer, when it had one.
    """
    if isinstance(exc, SalesforceAuthenticationFailed):
        return login_failed(exc, auth)
    if isinstance(exc, requests.Timeout):
        return TransientError(f"{what} timed out: {exc}", plugin=PLUGIN, system=SYSTEM)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return TransientError(
            f"{what}: the connection failed ({type(exc).__name__}: {exc})",
            plugin=PLUGIN,
            system=SYSTEM,
        )
    if isinstance(exc, SalesforceExpiredSession):
        return SessionExpired(f"{what}: the session expired", plugin=PLUGIN, system=SYSTEM)
    if isinstance(exc, SalesforceError):
        return _refused(exc, what, retry_after)
    if isinstance(exc, SalesforceOperationError):
        return FatalError(
            f"{what}: the Bulk API job failed: {exc}", plugin=PLUGIN, system=SYSTEM, hint=CHECK_HINT
        )
    return None


def _refused(exc: SalesforceError, what: str, retry_after: float | None) -> CrmBridgeError:
    status = int(getattr(exc, "status", 0) or 0)
    code = error_code(exc)
    text = f"{what}: Salesforce answered {status} {error_message(exc)}"
    if code == "REQUEST_LIMIT_EXCEEDED" and status == 403:
        return QuotaExhausted(
            text,
            plugin=PLUGIN,
            system=SYSTEM,
            hint="the org's API requests of the rolling 24 hours are spent; crmbridge waits "
            "for the quota to free up (Setup → Company Information shows the usage)",
        )
    if status == 429:
        return RateLimited(
            text, retry_after=retry_after, policy=code or None, plugin=PLUGIN, system=SYSTEM
        )
    if status >= 500 or status == 409 or code in TRANSIENT_CODES:
        return TransientError(text, retry_after=retry_after, plugin=PLUGIN, system=SYSTEM)
    if isinstance(exc, SalesforceRefusedRequest):
        return FatalError(
            text,
            plugin=PLUGIN,
            system=SYSTEM,
            hint="give the integration user API access and read/edit access to Leads, "
            "Opportunities and crmbridge's fields (a permission set)",
        )
    # 400 (a field or object the org lacks), 404, 300: asking again gives the same answer.
    return FatalError(text, plugin=PLUGIN, system=SYSTEM, hint=CHECK_HINT)
