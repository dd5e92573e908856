"""The Salesforce emulator: options, routes, and what the sandbox harness asks of a vendor.

Every REST and Bulk API 2.0 route goes through one wrapper that authenticates the bearer token
(401 ``INVALID_SESSION_ID``), spends one call of the daily budget (403
``REQUEST_LIMIT_EXCEEDED``), turns :class:`ApiError` into Salesforce's error array, and adds
``Sforce-Limit-Info`` to the answer.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, ClassVar

from aiohttp import web

from crmbridge.testing.sandbox.emulator import Emulator
from crmbridge_salesforce.sandbox.actions import SalesforceActions
from crmbridge_salesforce.sandbox.auth import AuthApi, SessionStore
from crmbridge_salesforce.sandbox.bulk2 import Bulk2Api
from crmbridge_salesforce.sandbox.composite import CompositeApi
from crmbridge_salesforce.sandbox.config import SandboxConfig
from crmbridge_salesforce.sandbox.describe import Schema
from crmbridge_salesforce.sandbox.errors import ApiError, error_entry, error_response, not_found
from crmbridge_salesforce.sandbox.ids import canonical_id
from crmbridge_salesforce.sandbox.limits import ApiBudget
from crmbridge_salesforce.sandbox.query import QueryApi
from crmbridge_salesforce.sandbox.rest import RestCall
from crmbridge_salesforce.sandbox.sobjects import RESERVED, SObjectsApi
from crmbridge_salesforce.sandbox.state import Org

RestHandler = Callable[..., Awaitable[web.StreamResponse]]
VERSION = r"/services/data/v{version:\d+\.\d+}"
_DATA_PATH = re.compile(r"^/services/data/v\d+\.\d+/?(.*)$")
_LOCATOR = re.compile(r"^01g[0-9A-Za-z]{12,15}-\d+$")
FAULT_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_INPUT", "The request was rejected"),
    401: ("INVALID_SESSION_ID", "Session expired or invalid"),
    403: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    404: ("NOT_FOUND", "The requested resource does not exist"),
    409: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
    429: ("REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."),
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if "
                               "you contact support: 1978534203-33587 (-1546193710)"),
    502: ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."),
    503: ("SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."),
    504: ("SERVER_UNAVAILABLE", "The request timed out. Please try again later."),
}  # fmt: skip
API_VERSIONS = (("Winter '24", "59.0"), ("Spring '24", "60.0"), ("Summer '24", "61.0"),
                ("Winter '25", "62.0"), ("Spring '25", "63.0"), ("Summer '25", "64.0"))  # fmt: skip


class SalesforceEmulator(Emulator, SalesforceActions):
    """A Salesforce org that simple-salesforce talks to unchanged (see the package docs)."""

    name: ClassVar[str] = "salesforce"
    label: ClassVar[str] = "Salesforce"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.config = SandboxConfig.from_options(self.options)
        self.schema = Schema(self.config)
        self.org = Org(self.schema, self.clock, self.config)
        self.sessions = SessionStore(self.clock, self.config.session_ttl_seconds, self.org.org_id)
        self.budget = ApiBudget(self.clock, self.config.daily_api_limit)
        self.auth = AuthApi(self.config, self.sessions, self.org.user_ids, self.org.org_id,
                            self.clock)  # fmt: skip
        self.queries = QueryApi(self.org, self.config.query_batch_size)
        self.sobjects = SObjectsApi(self.org)
        self.composite = CompositeApi(self.org)
        self.bulk2 = Bulk2Api(
            self.org, self.budget, self.config.bulk_job_delay_seconds, on_change=self.mark_dirty
        )
        self._app: web.Application | None = None

    # -- routes ----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Serve the login endpoints and every REST and Bulk API 2.0 route."""
        self._app = app
        self.auth.add_routes(app)
        app.router.add_get("/services/data", self.versions)
        app.router.add_get("/services/data/", self.versions)
        route = self._route
        route("GET", "limits", self.limits)
        route("GET", "query", partial(self.queries.query, include_deleted=False))
        route("GET", "queryAll", partial(self.queries.query, include_deleted=True))
        route("GET", "query/{locator}", partial(self.queries.more, include_deleted=False))
        route("GET", "queryAll/{locator}", partial(self.queries.more, include_deleted=True))
        route("*", "sobjects", self.sobjects.dispatch)
        route("*", "sobjects/{tail:.+}", self.sobjects.dispatch)
        self._composite_routes()
        self._bulk_routes()
        route("*", "{tail:.*}", self.unknown)

    def _composite_routes(self) -> None:
        route, api = self._route, self.composite
        route("POST", "composite/sobjects", api.create)
        route("PATCH", "composite/sobjects", api.update)
        route("DELETE", "composite/sobjects", api.delete)
        route("GET", "composite/sobjects/{object_name}", api.retrieve)
        route("POST", "composite/sobjects/{object_name}", api.retrieve)
        route("PATCH", "composite/sobjects/{object_name}", api.update)
        route("DELETE", "composite/sobjects/{object_name}", api.delete)
        route("PATCH", "composite/sobjects/{object_name}/{field_name}", api.upsert)

    def _bulk_routes(self) -> None:
        route, api = self._route, self.bulk2
        route("POST", "jobs/ingest", api.create_ingest)
        route("GET", "jobs/ingest", api.list_ingest)
        route("GET", "jobs/ingest/{job_id}", api.get_ingest)
        route("PATCH", "jobs/ingest/{job_id}", api.patch_ingest)
        route("DELETE", "jobs/ingest/{job_id}", api.delete_ingest)
        route("PUT", "jobs/ingest/{job_id}/batches", api.upload)
        route("GET", "jobs/ingest/{job_id}/{kind}", api.results)
        route("POST", "jobs/query", api.create_query)
        route("GET", "jobs/query", api.list_query)
        route("GET", "jobs/query/{job_id}", api.get_query)
        route("PATCH", "jobs/query/{job_id}", api.patch_query)
        route("DELETE", "jobs/query/{job_id}", api.delete_query)
        route("GET", "jobs/query/{job_id}/results", api.query_results)

    def _route(self, method: str, path: str, handler: RestHandler) -> None:
        """Serve ``handler`` at ``/services/data/vXX.X/<path>`` (with or without a slash)."""
        assert self._app is not None
        wrapped = self._rest(handler)
        self._app.router.add_route(method, f"{VERSION}/{path}", wrapped)
        if not path.endswith("*}") and not path.endswith("+}"):
            self._app.router.add_route(method, f"{VERSION}/{path}/", wrapped)

    def _rest(self, handler: RestHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                session = self.sessions.authenticate(request)
                self.budget.spend()
                call = RestCall(request, session, request.match_info["version"])
                args = {k: v for k, v in request.match_info.items() if k not in {"version", "tail"}}
                response = await handler(call, **args)
                if request.method != "GET":
                    self.mark_dirty()
            except ApiError as exc:
                response = exc.response()
            response.headers["Sforce-Limit-Info"] = self.budget.header()
            return response

        return serve

    # -- small resources -------------------------------------------------------------------------

    async def versions(self, _request: web.Request) -> web.Response:
        """``GET /services/data``: the API versions (no login needed, as in Salesforce)."""
        return web.json_response(
            [{"label": label, "url": f"/services/data/v{v}", "version": v}
             for label, v in API_VERSIONS]
        )  # fmt: skip

    async def limits(self, call: RestCall) -> web.Response:
        """``GET limits/``."""
        return web.json_response(self.budget.limits())

    async def unknown(self, call: RestCall) -> web.Response:
        """Any other path under ``/services/data/vXX.X/``: 404 ``NOT_FOUND``."""
        raise not_found()

    # -- what the harness asks -------------------------------------------------------------------

    def error_response(
        self, status: int, *, retry_after: float | None = None, code: str | None = None
    ) -> web.StreamResponse:
        """An injected fault as Salesforce's error array (``Retry-After`` when asked)."""
        default_code, message = FAULT_ERRORS.get(status, ("UNKNOWN_EXCEPTION", "injected fault"))
        headers = {"Sforce-Limit-Info": self.budget.header()}
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        return error_response(status, [error_entry(code or default_code, message)], headers=headers)

    def expire_sessions(self) -> None:
        """End every session (the EXPIRE_SESSION fault)."""
        self.sessions.expire_all()

    def endpoint_of(self, request: web.Request) -> str:
        """``"GET query"``, ``"PATCH sobjects/Lead/{id}"``, ``"POST composite/sobjects"``..."""
        match = _DATA_PATH.match(request.path)
        if match is None:
            return f"{request.method} {request.path.removeprefix('/services/')}"
        segments = [s for s in match.group(1).split("/") if s]
        named = []
        for i, segment in enumerate(segments):
            if _LOCATOR.match(segment):
                named.append("{locator}")
            elif len(segment) in {15, 18} and canonical_id(segment):
                named.append("{id}")
            elif i == 3 and segments[0] == "sobjects" and segments[2].lower() not in RESERVED:
                named.append("{value}")
            else:
                named.append(segment)
        return f"{request.method} {'/'.join(named)}"

    def env(self, base_url: str) -> dict[str, str]:
        """Env entries for a Salesforce connector pointed at this sandbox."""
        key, secret = next(iter(self.config.clients.items()))
        return {
            "CRMBRIDGE_SALESFORCE__SANDBOX_URL": base_url,
            "CRMBRIDGE_SALESFORCE__DOMAIN": _my_domain(self.config.instance_url),
            "CRMBRIDGE_SALESFORCE__CLIENT_ID": key,
            "CRMBRIDGE_SALESFORCE__CLIENT_SECRET": secret,
            "CRMBRIDGE_SALESFORCE__API_VERSION": self.config.api_version,
        }

    def snapshot(self) -> dict[str, Any]:
        """The org, its schema changes, API usage and sessions, for the state file."""
        return {
            "format": 1,
            "schema": self.schema.changes(),
            "org": self.org.snapshot(),
            "budget": self.budget.snapshot(),
            "sessions": self.sessions.snapshot(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot` (schema changes first: records follow the schema)."""
        self.schema.replay(data.get("schema", {}))
        self.org.restore(data.get("org", {}))
        self.budget.restore(dict(data.get("budget", {})))
        self.sessions.restore(list(data.get("sessions", [])))


def _my_domain(instance_url: str) -> str:
    """``https://acme.my.salesforce.com`` → ``acme.my``, the ``domain`` simple-salesforce takes."""
    host = instance_url.split("://", 1)[-1].split("/", 1)[0]
    return host.removesuffix(".salesforce.com")
