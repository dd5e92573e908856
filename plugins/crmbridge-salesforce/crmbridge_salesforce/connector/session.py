"""One logged-in Salesforce client: how it logs in, times out, counts, refreshes and retries.

Every call the connector makes goes through :meth:`SalesforceSession.call` with a function of the
current ``simple_salesforce.Salesforce`` client, so that:

* the HTTP session under the SDK gives every request a ``(connect, read)`` timeout (neither the
  SDK nor requests has one) and counts it, and, with ``sandbox_url`` set, sends it to the sandbox
  through :class:`~crmbridge_salesforce.transport.SandboxAdapter` (the same code path otherwise);
* an expired session (401 ``INVALID_SESSION_ID``) logs in again and the call runs once more with
  the new client. The SDK already does that for REST calls of login-based clients, but not for
  Bulk API 2.0, whose handler captured the old token: the function is handed the new client, so
  it reaches ``sf.bulk2`` afresh. A 401 right after a fresh login is an
  :class:`~crmbridge.AuthenticationError`;
* failures are translated by :mod:`~crmbridge_salesforce.connector.errors` and retried under the
  crmbridge retry policy (one page or one batch at a time, never a generator). A login answered
  with a 429 or a 5xx (crmbridge's own, or the SDK's after a 401), whatever its body, is an
  outage and retried; a login Salesforce refused is an :class:`~crmbridge.AuthenticationError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import jwt
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.util import Usage

from crmbridge import (
    ApiUsage,
    AuthenticationError,
    ConfigurationError,
    RateLimited,
    RetriableError,
    SessionExpired,
    TransientError,
)
from crmbridge.retry import call_with_retry
from crmbridge_salesforce.connector.errors import (
    AUTH_CHECKS,
    PLUGIN,
    SYSTEM,
    TRANSIENT_CODES,
    login_failed,
    translate,
)
from crmbridge_salesforce.connector.settings import SalesforceSettings
from crmbridge_salesforce.transport import SandboxAdapter

T = TypeVar("T")
Timeout = float | tuple[float | None, float | None]
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
LOGIN_TRANSIENT_CODES = frozenset({*TRANSIENT_CODES, "temporarily_unavailable", "server_error"})
"""Codes of a failed login that say Salesforce is busy or down, not that it refused (OAuth's
``temporarily_unavailable`` and ``server_error``, SOAP's exception codes)."""


LOGIN_FAILURES = (SalesforceAuthenticationFailed, ValueError, TypeError, AttributeError)
"""What a login raises when its answer is a refusal or not what the SDK expected."""


class CallMeter:
    """The HTTP calls made, and what the answers said about the quota and when to come back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.usage: Usage | None = None
        self.retry_after: float | None = None
        self.status: int | None = None

    def sent(self) -> None:
        """One request is going out (counted even when no answer comes back)."""
        with self._lock:
            self.calls += 1
            self.retry_after = None
            self.status = None

    def answered(self, response: requests.Response) -> None:
        """Read ``Sforce-Limit-Info`` and ``Retry-After`` of an answer."""
        info = response.headers.get("Sforce-Limit-Info")
        usage = Salesforce.parse_api_usage(info).get("api-usage") if info else None
        retry_after = None
        if response.status_code in _RETRY_STATUSES:
            retry_after = _seconds(response.headers.get("Retry-After"))
        with self._lock:
            if isinstance(usage, Usage):
                self.usage = usage
            self.retry_after = retry_after
            self.status = response.status_code


def _unsigned(exc: Exception) -> AuthenticationError:
    return AuthenticationError(
        f"the JWT login could not sign its assertion: {type(exc).__name__}: {exc}",
        plugin=PLUGIN,
        system=SYSTEM,
        hint="CRMBRIDGE_SALESFORCE__PRIVATE_KEY(_FILE) must hold the PEM RSA private key "
        "whose certificate the connected app has",
    )


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides instead


class MeteredAdapter(HTTPAdapter):
    """Plain HTTPS to Salesforce, with a default timeout, counted."""

    def __init__(self, meter: CallMeter, timeout: Timeout) -> None:
        super().__init__()
        self.meter = meter
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with the default timeout unless the caller gave one; count the call."""
        self.meter.sent()
        response = super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )
        self.meter.answered(response)
        return response


class MeteredSandboxAdapter(SandboxAdapter):
    """The sandbox transport (same default timeout), counted."""

    def __init__(self, base_url: str, meter: CallMeter, timeout: Timeout) -> None:
        super().__init__(base_url, timeout=timeout)
        self.meter = meter

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Timeout | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send to the sandbox; count the call."""
        self.meter.sent()
        response = super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        self.meter.answered(response)
        return response


class SalesforceSession:
    """A logged-in simple-salesforce client, made on first use and remade when it expires.

    :param settings: the connector's settings.
    :param log: where retries and re-logins are logged.
    :param sleep: how retries wait (tests pass a fast one).
    """

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        log: logging.Logger,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.sleep = sleep
        self.policy = settings.retry_policy()
        self.meter = CallMeter()
        self.http = self._http_session()
        self.logins = 0
        self._sf: Salesforce | None = None

    def _http_session(self) -> requests.Session:
        http = requests.Session()
        timeout = self.settings.request_timeout()
        adapter: HTTPAdapter
        if self.settings.sandbox_url:
            # Proxy and CA-bundle variables must not redirect or break the loopback calls.
            http.trust_env = False
            adapter = MeteredSandboxAdapter(self.settings.sandbox_url, self.meter, timeout)
        else:
            adapter = MeteredAdapter(self.meter, timeout)
        http.mount("https://", adapter)
        return http

    # -- logging in --------------------------------------------------------------------------

    @property
    def sf(self) -> Salesforce:
        """The current client (logging in first if there is none)."""
        if self._sf is None:
            self._sf = self._login()
        return self._sf

    @property
    def instance(self) -> str:
        """The org's instance host, once logged in."""
        return str(self.sf.sf_instance)

    def _login(self) -> Salesforce:
        s = self.settings
        common: dict[str, Any] = {
            "session": self.http,
            "version": s.api_version,
            "domain": s.domain,
            "object_pairs_hook": dict,
        }
        self.meter.status = None  # the login's own answer, not an earlier call's
        secret = s.client_secret.get_secret_value()
        password = s.password.get_secret_value()
        token = s.security_token.get_secret_value()
        try:
            if s.auth == "client_credentials":
                sf = Salesforce(consumer_key=s.client_id, consumer_secret=secret, **common)
            elif s.auth == "jwt":
                sf = Salesforce(
                    username=s.username,
                    consumer_key=s.client_id,
                    privatekey=self._private_key(),
                    **common,
                )
            elif s.auth == "password":
                # The OAuth password flow takes the token appended to the password; passing
                # security_token would make the SDK choose SOAP login instead.
                sf = Salesforce(
                    username=s.username,
                    password=password + token,
                    consumer_key=s.client_id,
                    consumer_secret=secret,
                    **common,
                )
            else:
                sf = Salesforce(
                    username=s.username, password=password, security_token=token, **common
                )
        except SalesforceAuthenticationFailed as exc:
            raise self._unavailable(exc, f"the {s.auth} login") or login_failed(
                exc, s.auth
            ) from exc
        except jwt.PyJWTError as exc:
            raise _unsigned(exc) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            # The SDK reads the answer as it expects it to be; an outage page or an error body
            # of another shape breaks that. PyJWT also refuses a key that is not a PEM RSA key.
            unavailable = self._unavailable(exc, f"the {s.auth} login")
            if unavailable is not None:
                raise unavailable from exc
            if s.auth == "jwt" and self.meter.status is None:
                raise _unsigned(exc) from exc
            raise AuthenticationError(
                f"Salesforce's answer to the {s.auth} login could not be read "
                f"(HTTP {self.meter.status}): {type(exc).__name__}: {exc}",
                plugin=PLUGIN,
                system=SYSTEM,
                hint=AUTH_CHECKS[s.auth],
            ) from exc
        except requests.RequestException as exc:
            error = translate(exc, f"{s.auth} login", auth=s.auth)
            raise (error or exc) from exc
        self.logins += 1
        return sf

    def _unavailable(self, exc: Exception, what: str) -> RetriableError | None:
        """A login (crmbridge's, or the SDK's own after a 401) answered 429 or 5xx: Salesforce is
        busy or down and the credentials may be fine, so the call is tried again under the retry
        policy (``None``: the login was refused, or the answer was no 429 or 5xx).

        :param what: the login or the call it happened in, for the message.
        """
        status = self.meter.status
        if status is None or (status != 429 and status < 500):
            return None
        code = str(getattr(exc, "code", "") or "")
        if code and not code.isdigit() and code not in LOGIN_TRANSIENT_CODES:
            return None  # Salesforce named why it refused (a SOAP fault answers 500 too)
        said = (
            f"logging in ({self.settings.auth}), Salesforce answered {status} "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        )
        kind = RateLimited if status == 429 else TransientError
        return kind(
            f"{what}: {said}", retry_after=self.meter.retry_after, plugin=PLUGIN, system=SYSTEM
        )

    def _private_key(self) -> str:
        try:
            key = self.settings.private_key_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read CRMBRIDGE_SALESFORCE__PRIVATE_KEY_FILE: {exc}",
                plugin=PLUGIN,
                system=SYSTEM,
            ) from exc
        if not key:
            raise ConfigurationError(
                "the JWT login needs CRMBRIDGE_SALESFORCE__PRIVATE_KEY or PRIVATE_KEY_FILE",
                plugin=PLUGIN,
                system=SYSTEM,
            )
        return key

    def relogin(self) -> None:
        """Drop the current client and log in again."""
        self._sf = None
        self._sf = self._login()

    # -- calling ---------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """``fn(client)``, translated, with one re-login on an expired session, retried.

        :param what: the call, for logs and errors (``"query Lead"``).
        """

        def attempt() -> T:
            try:
                return self._once(what, fn)
            except SessionExpired:
                self.log.info("salesforce: the session expired during %s; logging in again", what)
                self.relogin()
            try:
                return self._once(what, fn)
            except SessionExpired as exc:
                raise AuthenticationError(
                    f"{what}: Salesforce refused a session it had just issued",
                    plugin=PLUGIN,
                    system=SYSTEM,
                    hint=AUTH_CHECKS[self.settings.auth],
                ) from exc

        return call_with_retry(
            self.policy, attempt, describe=f"salesforce {what}", logger=self.log, sleep=self.sleep
        )

    def _once(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        try:
            return fn(self.sf)
        except LOGIN_FAILURES as exc:
            # The SDK logs in again by itself after a 401; that login may meet an outage too.
            unavailable = self._unavailable(exc, what)
            if unavailable is not None:
                raise unavailable from exc
            error = translate(exc, what, auth=self.settings.auth)
            if error is None:
                raise
            raise error from exc
        except Exception as exc:
            error = translate(
                exc, what, auth=self.settings.auth, retry_after=self.meter.retry_after
            )
            if error is None:
                raise
            raise error from exc

    def query_all(self, what: str, query: str, *, include_deleted: bool = False) -> Any:
        """Every record of ``query`` (for short answers: a few hundred records at most)."""
        return self.call(what, lambda sf: sf.query_all(query, include_deleted=include_deleted))

    def restful(self, what: str, path: str, method: str, body: Any) -> Any:
        """A REST call the SDK has no method for (sObject Collections)."""
        return self.call(what, lambda sf: sf.restful(path, method=method, json=body))

    def query_headers(self) -> dict[str, str]:
        """The header asking for the configured query page size."""
        return {"Sforce-Query-Options": f"batchSize={self.settings.query_page_size}"}

    # -- reporting -------------------------------------------------------------------------------

    def api_usage(self) -> ApiUsage:
        """The org's 24-hour quota as the last answer said it, and the calls made."""
        usage = self.meter.usage
        return ApiUsage(
            SYSTEM,
            used=usage.used if usage else None,
            limit=usage.total if usage else None,
            window="24h",
            calls=self.meter.calls,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
