"""Reading requests the way HubSpot reads them: JSON bodies, list and boolean query parameters.

The SDK sends list parameters as repeated keys (``properties=a&properties=b``) and booleans as
Python writes them (``archived=False``); other clients send ``properties=a,b`` and ``true``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from crmbridge_hubspot.sandbox.errors import HubSpotError, validation_error


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, or HubSpot's 400 for a body that is not JSON."""
    raw = await request.read()
    if not raw:
        raise validation_error("Invalid input JSON: the request body is empty")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        raise validation_error(
            f"Invalid input JSON on line {line}, column {column}: {exc}"
        ) from exc


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: expected an object")
    return body


def query_list(request: web.Request, name: str) -> list[str] | None:
    """A list parameter, repeated or comma-separated; None when absent."""
    values = request.query.getall(name, [])
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean parameter: ``true``/``True``/``false``/``False``."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise validation_error(
        f"Invalid value {value!r} for query parameter {name}: expected a boolean"
    )


def query_int(request: web.Request, name: str, default: int, *, maximum: int) -> int:
    """An integer parameter within ``1..maximum``."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise validation_error(f"Invalid value {value!r} for query parameter {name}") from None
    if not 1 <= number <= maximum:
        raise validation_error(f"{name} must be between 1 and {maximum}, got {number}")
    return number


def cursor(value: Any, name: str = "after") -> int:
    """A paging cursor (a non-negative integer written as a string)."""
    if value is None or value == "":
        return 0
    try:
        number = int(str(value))
    except ValueError:
        raise validation_error(
            f"Invalid {name} value {value!r}: expected a paging cursor"
        ) from None
    if number < 0:
        raise validation_error(f"Invalid {name} value {value!r}: expected a paging cursor")
    return number


def string_list(value: Any, name: str) -> list[str]:
    """A body field that must be a list of strings (absent means empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HubSpotError(400, "VALIDATION_ERROR", f"{name} must be a list of strings")
    return value


TOKEN = web.RequestKey("hubspot_token", str)
"""The access token the request was authenticated with (set by the emulator's middleware)."""


def token_of(request: web.Request) -> str:
    """The request's access token ("" before authentication)."""
    token: str = request.get(TOKEN, "")
    return token
