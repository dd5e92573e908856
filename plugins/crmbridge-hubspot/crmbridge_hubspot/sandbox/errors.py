"""HubSpot's error bodies, exactly as its API writes them.

Every error carries ``status: "error"``, a ``message``, a fresh ``correlationId`` (a UUID) and a
``category``. Property validation errors pack a JSON list of per-property problems into the message
(``Property values were not valid: [{"isValid":false,...}]``), which is what real clients parse.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json;charset=utf-8"


def correlation_id() -> str:
    """A new correlation id, as HubSpot gives every error."""
    return str(uuid.uuid4())


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response with HubSpot's content type."""
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
    )


@dataclass(frozen=True, slots=True)
class PropertyProblem:
    """One invalid property value in a write (``error`` is HubSpot's code, e.g. INVALID_OPTION)."""

    name: str
    error: str
    message: str

    def to_json(self, portal_id: int) -> dict[str, Any]:
        """The problem as HubSpot lists it inside the packed message."""
        return {
            "isValid": False,
            "message": self.message,
            "error": self.error,
            "name": self.name,
            "localizedErrorMessage": self.message,
            "portalId": portal_id,
        }


class HubSpotError(Exception):
    """An API error answered with HubSpot's body; raise it anywhere in a handler."""

    def __init__(
        self,
        status: int,
        category: str,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body: status, message, a new correlationId, category, extras."""
        body: dict[str, Any] = {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        }
        body.update(self.extra)
        return body

    def batch_error(self, context: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        """The same error as one entry of a 207 response's ``errors`` (a StandardError)."""
        entry: dict[str, Any] = {
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": dict(context or {}),
            "errors": [],
            "links": {},
        }
        entry.update({k: v for k, v in self.extra.items() if k in {"subCategory", "errors"}})
        return entry

    def response(self) -> web.Response:
        """The error as an HTTP response."""
        return json_response(self.body(), self.status, self.headers)


def validation_error(message: str, *, errors: list[dict[str, Any]] | None = None) -> HubSpotError:
    """A 400 VALIDATION_ERROR with a plain message (bad request shape, limits)."""
    extra: dict[str, Any] = {"errors": errors} if errors else {}
    return HubSpotError(400, "VALIDATION_ERROR", message, extra=extra)


def property_error(problems: Iterable[PropertyProblem], portal_id: int) -> HubSpotError:
    """A 400 VALIDATION_ERROR for invalid property values, in HubSpot's packed-message form."""
    packed = json.dumps([p.to_json(portal_id) for p in problems], separators=(",", ":"))
    return HubSpotError(400, "VALIDATION_ERROR", f"Property values were not valid: {packed}")


def contact_exists(existing_id: int) -> HubSpotError:
    """The 409 for a create whose email belongs to another contact; the id is only in the text."""
    return HubSpotError(409, "CONFLICT", f"Contact already exists. Existing ID: {existing_id}")


def object_not_found(object_id: str) -> HubSpotError:
    """The 404 for an id (or email) no contact has."""
    return HubSpotError(
        404, "OBJECT_NOT_FOUND", f"resource not found: no contact with id {object_id!r}"
    )


def authentication_missing() -> HubSpotError:
    """The 401 for a missing or unknown token."""
    return HubSpotError(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
        "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    )


def authentication_expired(seconds_ago: int) -> HubSpotError:
    """The 401 for a token that expired ``seconds_ago``."""
    return HubSpotError(
        401,
        "EXPIRED_AUTHENTICATION",
        f"The OAuth token used to make this call expired {seconds_ago} second(s) ago.",
    )


RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


class RateLimited(HubSpotError):
    """A 429 for ``policy`` (TEN_SECONDLY_ROLLING, SECONDLY or DAILY).

    Its body has ``errorType`` where other errors have ``category``, plus the policy and group.
    """

    def __init__(self, policy: str, group: str, retry_after: float | None) -> None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else {}
        message = RATE_LIMIT_MESSAGES.get(policy, f"You have reached your {policy.lower()} limit.")
        super().__init__(429, "RATE_LIMIT", message, headers=headers)
        self.policy = policy
        self.group = group

    def body(self) -> dict[str, Any]:
        """The 429 body, with ``policyName`` and ``groupName``."""
        return {
            "status": "error",
            "message": self.message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation_id(),
            "policyName": self.policy,
            "groupName": self.group,
        }
