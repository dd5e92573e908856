"""What every REST and Bulk API 2.0 handler receives: the request, its session, the API version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crmbridge_salesforce.sandbox.auth import Session
from crmbridge_salesforce.sandbox.errors import ApiError, json_parser_error


@dataclass
class RestCall:
    """One authenticated call to ``/services/data/vXX.X/...``."""

    request: web.Request
    session: Session
    version: str

    @property
    def user_id(self) -> str:
        """The user the session belongs to (who a write is done as)."""
        return self.session.user_id

    @property
    def base(self) -> str:
        """The path prefix of this API version: ``/services/data/v59.0``."""
        return f"/services/data/v{self.version}"

    def record_url(self, object_name: str, record_id: str) -> str:
        """A record's REST path in this API version."""
        return f"{self.base}/sobjects/{object_name}/{record_id}"

    async def json(self) -> Any:
        """The request body as JSON, or 400 ``JSON_PARSER_ERROR`` as Salesforce answers."""
        text = await self.request.text()
        if not text.strip():
            raise json_parser_error("The request body is empty")
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise json_parser_error(
                f"Unexpected character ('{text[exc.pos : exc.pos + 1]}'): was expecting a JSON "
                f"value at [line:{exc.lineno}, column:{exc.colno}]"
            ) from exc

    async def json_object(self) -> dict[str, Any]:
        """The request body as a JSON object, or 400 ``JSON_PARSER_ERROR``."""
        body = await self.json()
        if not isinstance(body, dict):
            raise json_parser_error(
                "Cannot deserialize instance of object from START_ARRAY value [line:1, column:1]"
            )
        return body

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter (``?allOrNone=true``)."""
        value = self.request.query.get(name)
        if value is None:
            return default
        if value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise ApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"{name}: invalid boolean: {value}")
