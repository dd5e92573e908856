"""The HubSpot emulator: the CRM v3 routes, private-app token auth, and the account's API limits.

Point the real SDK at it with ``hubspot.Client.create(access_token=..., host=url)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox import Emulator
from crmbridge.testing.sandbox.server import CONTROL_PREFIX, Handler
from crmbridge_hubspot.sandbox.batch import BatchApi
from crmbridge_hubspot.sandbox.config import HubSpotOptions
from crmbridge_hubspot.sandbox.control import ControlActions
from crmbridge_hubspot.sandbox.errors import (
    HubSpotError,
    RateLimited,
    authentication_expired,
    authentication_missing,
    json_response,
)
from crmbridge_hubspot.sandbox.objects import ObjectsApi
from crmbridge_hubspot.sandbox.owners import OwnersApi
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.properties import PropertiesApi
from crmbridge_hubspot.sandbox.search import SEARCH, SearchApi
from crmbridge_hubspot.sandbox.wire import TOKEN

API_USAGE = "/account-info/v3/api-usage/daily/private-apps"
STATUS_MESSAGES = {
    500: "internal error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HubSpotEmulator(ControlActions, Emulator):
    """HubSpot's CRM v3 contacts, batch, search, properties and owners APIs, in one portal.

    ``options`` are described by :class:`~crmbridge_hubspot.sandbox.config.HubSpotOptions`.
    """

    name = "hubspot"
    label = "HubSpot CRM v3 (contacts, batch, search, properties, owners)"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = HubSpotOptions.from_mapping(self.options)
        self.portal = Portal(self.settings, self.clock)
        self.search = SearchApi(self.portal)
        self._apis = (
            ObjectsApi(self.portal),
            BatchApi(self.portal),
            self.search,
            PropertiesApi(self.portal),
            OwnersApi(self.portal),
        )

    # -- routes and the API middleware -----------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        # Inside the harness's middleware, so an injected fault never reaches auth or the limits.
        """Add every emulated API's routes and the auth and limits middleware."""
        app.middlewares.append(self._api_middleware)
        for api in self._apis:
            api.add_routes(app)
        app.router.add_get(API_USAGE, self._api_usage)

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        limited = self.settings.rate_limits and request.path != SEARCH
        response: web.StreamResponse
        try:
            request[TOKEN] = self._authenticate(request)
        except HubSpotError as exc:
            return exc.response()
        try:
            if self.settings.rate_limits:
                refusal = self.portal.limits.acquire(search=request.path == SEARCH)
                if refusal is not None:
                    raise refusal
            response = await handler(request)
            if request.method != "GET":
                self.mark_dirty()
        except HubSpotError as exc:
            response = exc.response()
        except web.HTTPNotFound:
            response = HubSpotError(
                404, "OBJECT_NOT_FOUND", f"No API route {request.method} {request.path}"
            ).response()
        except web.HTTPMethodNotAllowed:
            response = HubSpotError(
                405, "VALIDATION_ERROR", f"Method {request.method} not allowed on {request.path}"
            ).response()
        if limited:
            response.headers.update(self.portal.limits.headers())
        return response

    def _authenticate(self, request: web.Request) -> str:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token not in self.portal.apps:
            raise authentication_missing()
        expired_at = self.portal.expired.get(token)
        if expired_at is not None:
            raise authentication_expired(max(0, (self.portal.now_ms() - expired_at) // 1000))
        return token

    async def _api_usage(self, _request: web.Request) -> web.Response:
        return json_response(self.portal.limits.usage())

    # -- what the harness asks of an emulator ----------------------------------------------------

    def error_response(
        self, status: int, *, retry_after: float | None = None, code: str | None = None
    ) -> web.StreamResponse:
        """HubSpot's body for an injected status; for 429 ``code`` names the policy."""
        if status == 429:
            policy = code or "TEN_SECONDLY_ROLLING"
            return RateLimited(policy, self.portal.limits.group, retry_after).response()
        if status == 401:
            error = (
                authentication_expired(0)
                if code == "EXPIRED_AUTHENTICATION"
                else authentication_missing()
            )
            return error.response()
        category = code or ("INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR")
        message = STATUS_MESSAGES.get(status, f"Injected error {status}")
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return HubSpotError(status, category, message, headers=headers).response()

    def expire_sessions(self) -> None:
        """The EXPIRE_SESSION fault: every token answers 401 EXPIRED_AUTHENTICATION."""
        self.control_expire_tokens()

    def env(self, base_url: str) -> dict[str, str]:
        """Point the HubSpot connector at this sandbox with its first token."""
        return {
            "CRMBRIDGE_HUBSPOT__BASE_URL": base_url,
            "CRMBRIDGE_HUBSPOT__ACCESS_TOKEN": self.settings.tokens[0],
        }

    def control(self, action: str, payload: Mapping[str, Any]) -> Any:
        """Run a control action; its changes are saved with the state."""
        result = super().control(action, payload)
        self.mark_dirty()
        return result

    def snapshot(self) -> dict[str, Any]:
        """The portal's state as JSON-able data (for the state file)."""
        return {"version": 1, "portal": self.portal.to_state()}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a state written by :meth:`snapshot`."""
        self.portal.restore(data["portal"])
