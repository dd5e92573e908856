"""The one door to HubSpot: the real SDK (``hubspot-api-client``), built once and called safely.

``hubspot.Client`` builds a new ``ApiClient`` (and a new connection pool) on every property access
such as ``client.crm.contacts.batch_api``. :class:`HubSpotClient` passes the SDK an
``api_factory`` that builds one ``ApiClient`` per SDK package and shares it, and keeps each API
object it made, so a connector holds one connection pool per package for its whole life.

Every call goes through :meth:`HubSpotClient.call`, which

* waits for the pacer (ten-second window; search has its own one-second window),
* sets ``_request_timeout=(connect, read)`` (the SDK sets none),
* uses the ``*_with_http_info`` form to see the answer's headers (rate limits, daily usage),
* for bulk reads (:meth:`HubSpotClient.call_json`), passes the SDK's ``_preload_content=False``
  and parses the JSON itself: the SDK's model deserializer parses every timestamp with dateutil,
  which costs most of the time of a large read (about 0.7 ms per contact),
* counts the HTTP call, and translates failures into crmbridge's errors,
* and retries what is retriable through :func:`crmbridge.retry.call_with_retry` — urllib3's own
  retries are switched off, so the policy is decided in one place (POSTs included).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib import metadata
from types import ModuleType
from typing import Any

import hubspot
import hubspot.crm.contacts as contacts_sdk
import hubspot.crm.owners as owners_sdk
import hubspot.crm.properties as properties_sdk
import urllib3
from urllib3.util import Retry

from crmbridge import ApiUsage, CrmBridgeError, QuotaExhausted, TransientError
from crmbridge.retry import RetryPolicy, call_with_retry
from crmbridge_hubspot.connector.errors import PLUGIN, SYSTEM, translate
from crmbridge_hubspot.connector.pacing import RollingPacer
from crmbridge_hubspot.connector.settings import HubSpotSettings

TEN_SECONDS = 10.0
API_EXCEPTIONS: tuple[type[Exception], ...] = (
    contacts_sdk.ApiException,
    properties_sdk.ApiException,
    owners_sdk.ApiException,
)
"""The ``ApiException`` classes of the SDK packages used (each package has its own)."""


def no_urllib3_retries() -> Retry:
    """urllib3 retries off: every answer and every connection error reaches crmbridge at once.

    ``raise_on_status=False`` keeps a 429 or 503 an ``ApiException`` instead of urllib3's
    ``MaxRetryError``; ``respect_retry_after_header=False`` stops urllib3 sleeping on its own.
    """
    return Retry(total=0, redirect=0, respect_retry_after_header=False, raise_on_status=False)


@dataclass
class Usage:
    """What HubSpot last said about the portal's daily quota, and the calls made."""

    calls: int = 0
    daily_limit: int | None = None
    daily_remaining: int | None = None
    resets_at: datetime | None = None


class ApiClientFactory:
    """The SDK's ``api_factory``: one shared ``ApiClient`` per SDK package.

    ``built`` counts the ``ApiClient`` objects made, so a test can see that they are shared.
    """

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}
        self.built = 0
        self._lock = threading.Lock()

    def __call__(self, package: ModuleType, api_name: str, config: Mapping[str, Any]) -> Any:
        with self._lock:
            api_client = self.clients.get(package.__name__)
            if api_client is None:
                api_client = package.ApiClient(configuration=_configuration(package, config))
                api_client.user_agent = (
                    f"hubspot-api-client-python; {metadata.version('hubspot-api-client')}; "
                    "crmbridge-hubspot"
                )
                self.clients[package.__name__] = api_client
                self.built += 1
        return getattr(package, api_name)(api_client=api_client)

    def close(self) -> None:
        """Close every connection pool."""
        with self._lock:
            for api_client in self.clients.values():
                api_client.rest_client.pool_manager.clear()
                api_client.close()
            self.clients.clear()


def _configuration(package: ModuleType, config: Mapping[str, Any]) -> Any:
    """The package's ``Configuration`` with the client's settings, as the SDK's default does."""
    configuration = package.Configuration()
    for key, value in config.items():
        if key == "retry":
            configuration.retries = value
        elif key != "api_key":
            setattr(configuration, key, value)
    return configuration


class HubSpotClient:
    """The SDK, its API objects built once, and every call paced, timed out, counted, retried.

    :param settings: the connector's settings.
    :param log: where retries and waits are logged.
    :param sleep: how retries wait (tests pass one that records).
    """

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        log: logging.Logger | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log = log or logging.getLogger("crmbridge.connector.hubspot")
        self.policy: RetryPolicy = settings.retry_policy()
        self.timeout = settings.request_timeout()
        self.factory = ApiClientFactory()
        self.sdk = hubspot.Client.create(
            access_token=settings.access_token.get_secret_value(),
            host=settings.base_url,
            retry=no_urllib3_retries(),
            api_factory=self.factory,
        )
        self.pacer = RollingPacer(settings.requests_per_10s, TEN_SECONDS)
        self.search_pacer = RollingPacer(settings.search_per_second, 1.0)
        self.usage = Usage()
        self._count_lock = threading.Lock()
        self._sleep = sleep
        self._apis: dict[str, Any] = {}
        self._server_date: tuple[datetime, float] | None = None

    # -- the API objects, built once ---------------------------------------------------------

    def _api(self, name: str, build: Callable[[], Any]) -> Any:
        api = self._apis.get(name)
        if api is None:
            api = self._apis[name] = build()
        return api

    @property
    def basic_api(self) -> Any:
        """``client.crm.contacts.basic_api`` (list pages, one contact)."""
        return self._api("basic", lambda: self.sdk.crm.contacts.basic_api)

    @property
    def batch_api(self) -> Any:
        """``client.crm.contacts.batch_api`` (batch read, update, upsert)."""
        return self._api("batch", lambda: self.sdk.crm.contacts.batch_api)

    @property
    def search_api(self) -> Any:
        """``client.crm.contacts.search_api``."""
        return self._api("search", lambda: self.sdk.crm.contacts.search_api)

    @property
    def properties_api(self) -> Any:
        """``client.crm.properties.core_api`` (contact property definitions)."""
        return self._api("properties", lambda: self.sdk.crm.properties.core_api)

    @property
    def groups_api(self) -> Any:
        """``client.crm.properties.groups_api`` (property groups)."""
        return self._api("groups", lambda: self.sdk.crm.properties.groups_api)

    @property
    def owners_api(self) -> Any:
        """``client.crm.owners.owners_api``."""
        return self._api("owners", lambda: self.sdk.crm.owners.owners_api)

    @property
    def api_clients_built(self) -> int:
        """How many SDK ``ApiClient`` objects (and connection pools) exist: one per package."""
        return self.factory.built

    # -- calling -----------------------------------------------------------------------------

    def call(
        self, describe: str, method: Callable[..., Any], *, search: bool = False, **kwargs: Any
    ) -> Any:
        """Call an SDK ``*_with_http_info`` method with ``kwargs``; return the answer's data.

        :param describe: the call for logs and errors (``"POST contacts/batch/update (100)"``).
        :param search: the call is a search (paced by the search window, not the ten-second one).
        """
        return call_with_retry(
            self.policy,
            lambda: self._once(describe, method, search, kwargs),
            describe=f"hubspot {describe}",
            logger=self.log,
            sleep=self._sleep,
        )

    def call_json(
        self, describe: str, method: Callable[..., Any], *, search: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """:meth:`call`, answering HubSpot's JSON body as a dict instead of SDK models."""
        kwargs["_preload_content"] = False
        answer: dict[str, Any] = self.call(describe, method, search=search, **kwargs)
        return answer

    def _once(
        self, describe: str, method: Callable[..., Any], search: bool, kwargs: Mapping[str, Any]
    ) -> Any:
        waited = (self.search_pacer if search else self.pacer).acquire()
        if waited > 0.5:
            self.log.info(
                "hubspot %s: waited %.1f s to stay under the rate limit", describe, waited
            )
        with self._count_lock:  # writes may run in several threads
            self.usage.calls += 1
        try:
            answer = method(**kwargs, _request_timeout=self.timeout)
            if kwargs.get("_preload_content", True):
                data, _status, headers = answer
            else:
                data, headers = _read_json(answer, describe)
        except API_EXCEPTIONS as exc:
            status = int(getattr(exc, "status", 0) or 0)
            headers = getattr(exc, "headers", None)
            self._observe(headers, search=search)
            if status == 0:
                raise CrmBridgeError(
                    f"{describe}: no usable answer from HubSpot: {getattr(exc, 'reason', exc)}",
                    plugin=PLUGIN,
                    system=SYSTEM,
                ) from exc
            error = translate(status, getattr(exc, "body", None), headers, describe)
            if isinstance(error, QuotaExhausted):
                self.usage.daily_remaining = 0
                self.usage.resets_at = error.resets_at
            raise error from exc
        except urllib3.exceptions.HTTPError as exc:
            # Connection refused or dropped, or a timeout: nothing usable came back.
            raise TransientError(
                f"{describe}: {_connection_problem(exc)}", plugin=PLUGIN, system=SYSTEM
            ) from exc
        self._observe(headers, search=search)
        return data

    def _observe(self, headers: Mapping[str, str] | None, *, search: bool) -> None:
        if not headers:
            return
        self._note_date(headers.get("Date"))
        if not search:
            self.pacer.observe_headers(headers)
        daily = _int(headers.get("X-HubSpot-RateLimit-Daily"))
        remaining = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily is not None and remaining is not None:
            self.usage.daily_limit = daily
            self.usage.daily_remaining = remaining
            if remaining > 0:
                self.usage.resets_at = None

    def _note_date(self, value: str | None) -> None:
        if not value:
            return
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if date.tzinfo is not None:
            self._server_date = (date.astimezone(UTC), time.monotonic())

    def now(self) -> datetime:
        """Now, by the earlier of this machine's clock and HubSpot's.

        HubSpot's clock is its last ``Date`` header moved on by the time since, less a second
        (the header's resolution). Cursors that mark "the read started here" take the earlier of
        the two, so a local clock running ahead of HubSpot's can only make a read start early.
        """
        local = datetime.now(UTC)
        if self._server_date is None:
            return local
        date, seen = self._server_date
        server = date + timedelta(seconds=time.monotonic() - seen - 1.0)
        return min(local, server)

    def api_usage(self) -> ApiUsage:
        """The daily quota as HubSpot's last headers said it; no call is spent to find out."""
        u = self.usage
        used = None
        if u.daily_limit is not None and u.daily_remaining is not None:
            used = max(0, u.daily_limit - u.daily_remaining)
        return ApiUsage(
            SYSTEM,
            used=used,
            limit=u.daily_limit,
            window="daily",
            calls=u.calls,
            resets_at=u.resets_at,
        )

    def close(self) -> None:
        """Close the connection pools."""
        self.factory.close()
        self._apis.clear()


def _read_json(response: Any, describe: str) -> tuple[dict[str, Any], Mapping[str, str]]:
    """The JSON body and headers of a raw urllib3 response (its connection released)."""
    try:
        body = response.data
    finally:
        response.release_conn()
    try:
        data = json.loads(body) if body else {}
    except ValueError as exc:
        raise CrmBridgeError(
            f"{describe}: HubSpot's answer is not JSON ({exc})", plugin=PLUGIN, system=SYSTEM
        ) from exc
    if not isinstance(data, dict):
        raise CrmBridgeError(
            f"{describe}: HubSpot's answer is not a JSON object", plugin=PLUGIN, system=SYSTEM
        )
    return data, response.headers


def _connection_problem(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.TimeoutError) or isinstance(
        exc, urllib3.exceptions.TimeoutError
    ):
        return f"HubSpot did not answer in time ({reason})"
    return f"the connection to HubSpot failed ({type(reason).__name__}: {reason})"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
