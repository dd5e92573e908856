"""HubSpot's answers turned into crmbridge's errors, grouped by what the runner does next.

* 429 → :class:`~crmbridge.RateLimited` (retried, honouring ``Retry-After``), except the daily
  limit (``policyName: DAILY``) → :class:`~crmbridge.QuotaExhausted` (the pipeline pauses);
* 5xx, dropped connections and timeouts → :class:`~crmbridge.TransientError` (retried);
* 401 → :class:`~crmbridge.AuthenticationError` (a private-app token does not refresh itself);
* 403 → :class:`~crmbridge.FatalError` naming the scopes the token needs;
* any other 4xx → :class:`HubSpotRequestError`, naming the call and HubSpot's category.

Each SDK package raises its own ``ApiException`` class; they are told apart here by their
``status``, ``headers`` and ``body``, which all of them carry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from crmbridge import (
    AuthenticationError,
    CrmBridgeError,
    FatalError,
    QuotaExhausted,
    RateLimited,
    TransientError,
)

SYSTEM = "hubspot"
PLUGIN = "hubspot"
SCOPES = (
    "crm.objects.contacts.read, crm.objects.contacts.write, crm.schemas.contacts.read, "
    "crm.schemas.contacts.write (and crm.objects.owners.read to assign owners)"
)
_PACKED = re.compile(r"Property values were not valid: (\[.*\])\s*$", re.DOTALL)
_EXISTING = re.compile(r"Existing ID: (\d+)")


class HubSpotRequestError(CrmBridgeError):
    """HubSpot refused a request (a 4xx other than 401, 403 and 429), or answered nonsense.

    :param status: the HTTP status (0 when there was no usable answer).
    :param category: HubSpot's error category (``VALIDATION_ERROR``, ``OBJECT_NOT_FOUND``...).
    :param detail: HubSpot's error body, parsed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        category: str | None = None,
        detail: HubSpotErrorBody | None = None,
        **kw: str,
    ) -> None:
        self.status = status
        self.category = category
        self.detail = detail
        super().__init__(message, **kw)


@dataclass(frozen=True)
class HubSpotErrorBody:
    """What an error body says, every field optional (HubSpot's bodies vary by endpoint)."""

    message: str
    category: str | None = None
    policy: str | None = None
    correlation_id: str | None = None
    field: str | None = None
    code: str | None = None

    @classmethod
    def parse(cls, body: Any, fallback: str = "") -> HubSpotErrorBody:
        """Parse an error body (a JSON string or a dict); unparseable text becomes the message."""
        data: Any = body
        if isinstance(body, bytes | str):
            try:
                data = json.loads(body)
            except ValueError:
                text = body.decode(errors="replace") if isinstance(body, bytes) else body
                return cls(message=text.strip() or fallback)
        if not isinstance(data, Mapping):
            return cls(message=fallback)
        message = str(data.get("message") or fallback)
        field, code = property_problem(message)
        details = data.get("errors")
        if field is None and isinstance(details, list) and details:
            first = details[0] if isinstance(details[0], Mapping) else {}
            context = first.get("context") if isinstance(first.get("context"), Mapping) else {}
            names = context.get("propertyName") if context else None
            field = (names[0] if isinstance(names, list) and names else None) or first.get("in")
            code = code or first.get("code")
        return cls(
            message=message,
            category=_str(data.get("category") or data.get("errorType")),
            policy=_str(data.get("policyName")),
            correlation_id=_str(data.get("correlationId")),
            field=_str(field),
            code=_str(code),
        )


def property_problem(message: str) -> tuple[str | None, str | None]:
    """The property and code of HubSpot's packed validation message, if it is one.

    ``Property values were not valid: [{"name": "lifecyclestage", "error": "INVALID_OPTION",
    ...}]`` names the first invalid property and its code.
    """
    match = _PACKED.search(message or "")
    if not match:
        return None, None
    try:
        problems = json.loads(match.group(1))
    except ValueError:
        return None, None
    if not isinstance(problems, list) or not problems or not isinstance(problems[0], Mapping):
        return None, None
    first = problems[0]
    return _str(first.get("name")), _str(first.get("error"))


def problem_text(message: str) -> str:
    """A packed validation message made readable: ``name: message; name: message``."""
    match = _PACKED.search(message or "")
    if not match:
        return message
    try:
        problems = json.loads(match.group(1))
    except ValueError:
        return message
    parts = [
        f"{p.get('name')}: {p.get('message') or p.get('error')}"
        for p in problems
        if isinstance(p, Mapping)
    ]
    return "; ".join(parts) or message


def existing_id(message: str) -> str | None:
    """The existing contact's id in a 409 ``Contact already exists. Existing ID: N``."""
    match = _EXISTING.search(message or "")
    return match.group(1) if match else None


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """``Retry-After`` in seconds, when HubSpot gave one (it does not always)."""
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def translate(status: int, body: Any, headers: Mapping[str, str] | None, call: str) -> Exception:
    """The crmbridge error for HubSpot's answer ``status`` to ``call``."""
    detail = HubSpotErrorBody.parse(body, fallback=f"HTTP {status}")
    where = {"plugin": PLUGIN, "system": SYSTEM}
    said = f"{detail.message}" + (
        f" (correlation id {detail.correlation_id})" if detail.correlation_id else ""
    )
    retry_after = retry_after_of(headers)
    if status == 429:
        if detail.policy == "DAILY":
            resets_at = datetime.now(UTC) + timedelta(seconds=retry_after) if retry_after else None
            return QuotaExhausted(
                f"{call}: HubSpot's daily API limit is spent: {said}",
                resets_at=resets_at,
                hint="crmbridge pauses until it resets at midnight in the portal's time zone",
                **where,
            )
        return RateLimited(
            f"{call}: rate limited by HubSpot ({detail.policy or 'unknown policy'}): {said}",
            retry_after=retry_after,
            policy=detail.policy,
            **where,
        )
    if status == 401:
        expired = detail.category == "EXPIRED_AUTHENTICATION"
        return AuthenticationError(
            f"{call}: HubSpot refused the access token: {said}",
            hint=(
                "the token expired; private-app tokens do not refresh, so set a valid one in "
                "CRMBRIDGE_HUBSPOT__ACCESS_TOKEN"
                if expired
                else "check CRMBRIDGE_HUBSPOT__ACCESS_TOKEN (a private app's access token)"
            ),
            **where,
        )
    if status == 403:
        return FatalError(
            f"{call}: HubSpot refused the request: {said}",
            hint=f"give the private app the scopes {SCOPES}",
            **where,
        )
    if status >= 500:
        return TransientError(
            f"{call}: HubSpot answered {status}: {said}", retry_after=retry_after, **where
        )
    return HubSpotRequestError(
        f"{call}: HubSpot answered {status} {detail.category or ''}: {problem_text(said)}".replace(
            "  ", " "
        ),
        status=status,
        category=detail.category,
        detail=detail,
        **where,
    )


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
