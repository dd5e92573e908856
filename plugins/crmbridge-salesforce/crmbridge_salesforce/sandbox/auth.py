"""Logging in: the OAuth token endpoint, SOAP ``login()``, and the sessions they issue.

Three OAuth grants are served at ``POST /services/oauth2/token`` — client credentials (HTTP Basic
or form fields), username-password, and the JWT bearer assertion, whose RS256 signature is checked
against the configured public key — plus the SOAP ``login()`` at ``POST /services/Soap/u/{ver}``
with its ``INVALID_LOGIN`` fault. Every flow issues a session token shaped like Salesforce's
(``00D...!AQ...``) that expires after ``session_ttl_seconds`` of inactivity on the sandbox clock.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from html import escape
from typing import Any

import jwt
from aiohttp import web

from crmbridge.testing.sandbox.clock import SandboxClock
from crmbridge_salesforce.sandbox.config import SandboxConfig, UserSpec
from crmbridge_salesforce.sandbox.errors import SESSION_EXPIRED, ApiError

_TOKEN_CHARS = string.ascii_letters + string.digits + "._"
_AUDIENCE = re.compile(r"^https://[\w.-]+\.salesforce\.com/?$")
_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


@dataclass
class Session:
    """An issued access token, who it belongs to, and when it was last used."""

    token: str
    user_id: str
    username: str
    flow: str
    last_used: float


class SessionStore:
    """The org's live sessions; a session idle for longer than the TTL is gone."""

    def __init__(self, clock: SandboxClock, ttl_seconds: float, org_id: str) -> None:
        self.clock = clock
        self.ttl = ttl_seconds
        self.org_id = org_id
        self._sessions: dict[str, Session] = {}

    def issue(self, user_id: str, username: str, flow: str) -> Session:
        """A new session for ``user_id``, with a token shaped like Salesforce's."""
        body = "".join(secrets.choice(_TOKEN_CHARS) for _ in range(94))
        token = f"{self.org_id[:15]}!AQ{body}"
        session = Session(token, user_id, username, flow, self.clock.now().timestamp())
        self._sessions[token] = session
        return session

    def authenticate(self, request: web.Request) -> Session:
        """The session named by the ``Authorization`` header, or 401 ``INVALID_SESSION_ID``."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        session = self._sessions.get(token.strip()) if scheme in {"Bearer", "OAuth"} else None
        now = self.clock.now().timestamp()
        if session is not None and now - session.last_used > self.ttl:
            del self._sessions[session.token]
            session = None
        if session is None:
            raise ApiError(401, "INVALID_SESSION_ID", SESSION_EXPIRED)
        session.last_used = now
        return session

    def expire_all(self) -> int:
        """End every session (the EXPIRE_SESSION fault, or a password reset)."""
        count = len(self._sessions)
        self._sessions.clear()
        return count

    def snapshot(self) -> list[dict[str, Any]]:
        """The live sessions, for the state file (a restart keeps clients logged in)."""
        return [asdict(s) for s in self._sessions.values()]

    def restore(self, data: list[Mapping[str, Any]]) -> None:
        """Load sessions written by :meth:`snapshot`."""
        self._sessions = {s["token"]: Session(**s) for s in data}


class OAuthError(Exception):
    """An OAuth failure, answered as ``{"error", "error_description"}`` with 400."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> web.Response:
        """The OAuth error body Salesforce answers."""
        return web.json_response(
            {"error": self.error, "error_description": self.description}, status=self.status
        )


class AuthApi:
    """The login endpoints."""

    def __init__(
        self,
        config: SandboxConfig,
        sessions: SessionStore,
        user_ids: Mapping[str, str],
        org_id: str,
        clock: SandboxClock,
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.user_ids = user_ids
        self.org_id = org_id
        self.clock = clock
        self.users = {u.username.lower(): u for u in config.users}

    def add_routes(self, app: web.Application) -> None:
        """Serve ``/services/oauth2/token`` and ``/services/Soap/u/{version}``."""
        app.router.add_post("/services/oauth2/token", self.token)
        app.router.add_post(r"/services/Soap/u/{version:\d+\.\d+}", self.soap_login)

    # -- OAuth -----------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        """``POST /services/oauth2/token``: client credentials, password or JWT bearer."""
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
        try:
            grant = fields.get("grant_type", "")
            if grant == "client_credentials":
                self._client(request, fields)
                user = self._user(self.config.integration_user)
            elif grant == "password":
                self._client(request, fields)
                user = self._password_user(fields.get("username", ""), fields.get("password", ""))
            elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                user = self._jwt_user(fields.get("assertion", ""))
            else:
                raise OAuthError("unsupported_grant_type", "grant type not supported")
        except OAuthError as exc:
            return exc.response()
        session = self.sessions.issue(self.user_ids[user.username], user.username, grant)
        instance = self.config.instance_url
        return web.json_response(
            {
                "access_token": session.token,
                "scope": "api",
                "instance_url": instance,
                "id": f"https://login.salesforce.com/id/{self.org_id}/{session.user_id}",
                "token_type": "Bearer",
            }
        )

    def _client(self, request: web.Request, fields: Mapping[str, str]) -> str:
        key, secret = fields.get("client_id"), fields.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client", "invalid client credentials") from exc
            key, _, secret = decoded.partition(":")
        if not key or key not in self.config.clients:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not secrets.compare_digest(self.config.clients[key], secret or ""):
            raise OAuthError("invalid_client", "invalid client credentials")
        return key

    def _user(self, username: str) -> UserSpec:
        user = self.users.get(username.lower())
        if user is None:
            raise OAuthError("invalid_grant", "authentication failure")
        if not user.active:
            raise OAuthError("invalid_grant", "inactive user")
        return user

    def _password_user(self, username: str, password: str) -> UserSpec:
        user = self._user(username)
        if password not in {user.password, user.password + user.security_token}:
            raise OAuthError("invalid_grant", "authentication failure")
        return user

    def _jwt_user(self, assertion: str) -> UserSpec:
        if not self.config.jwt_public_key:
            raise OAuthError("invalid_grant", "invalid assertion")
        try:
            claims = jwt.decode(
                assertion,
                self.config.jwt_public_key,
                algorithms=["RS256"],
                # Salesforce accepts ``exp`` as a numeric string (simple-salesforce sends one),
                # which PyJWT would reject: the claims are checked below instead.
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if str(claims.get("iss", "")) not in self.config.clients:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not _AUDIENCE.match(str(claims.get("aud", ""))):
            raise OAuthError("invalid_grant", "audience is invalid")
        try:
            expires = float(claims["exp"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if expires < self.clock.now().timestamp():
            raise OAuthError("invalid_grant", "expired authorization code")
        return self._user(str(claims.get("sub", "")))

    # -- SOAP ------------------------------------------------------------------------------------

    async def soap_login(self, request: web.Request) -> web.Response:
        """``POST /services/Soap/u/{version}``: the SOAP ``login()`` call."""
        version = request.match_info["version"]
        try:
            root = ET.fromstring(await request.text())
        except ET.ParseError as exc:
            return _soap_fault("soapenv:Client", f"Unable to parse the request: {exc}", None)
        found = {_local(el.tag): (el.text or "") for el in root.iter()}
        username, password = found.get("username", ""), found.get("password", "")
        user = self.users.get(username.lower())
        if user is None or not user.active or not self._password_ok(user, password, found):
            return _soap_fault(
                "sf:INVALID_LOGIN", f"INVALID_LOGIN: {_INVALID_LOGIN}", "INVALID_LOGIN"
            )
        session = self.sessions.issue(self.user_ids[user.username], user.username, "soap")
        return web.Response(
            text=self._login_response(version, user, session),
            content_type="text/xml",
            charset="utf-8",
        )

    def _password_ok(self, user: UserSpec, password: str, found: Mapping[str, str]) -> bool:
        if password == user.password + user.security_token:
            return True
        # A login scoped to the org (LoginScopeHeader) needs no security token.
        scope = found.get("organizationId", "")
        return password == user.password and scope[:15] == self.org_id[:15] and bool(scope)

    def _login_response(self, version: str, user: UserSpec, session: Session) -> str:
        instance = self.config.instance_url
        org15 = self.org_id[:15]
        info = {
            "accessibilityMode": "false", "currencySymbol": "$",
            "orgAttachmentFileSizeLimit": "5242880", "orgDefaultCurrencyIsoCode": "USD",
            "orgDisallowHtmlAttachments": "false", "orgHasPersonAccounts": "false",
            "organizationId": self.org_id, "organizationMultiCurrency": "false",
            "organizationName": "crmbridge Sandbox", "profileId": "00eDn0000000001IAA",
            "roleId": None, "sessionSecondsValid": str(int(self.config.session_ttl_seconds)),
            "userDefaultCurrencyIsoCode": None, "userEmail": user.email,
            "userFullName": user.name, "userId": session.user_id, "userLanguage": "en_US",
            "userLocale": "en_US", "userName": user.username,
            "userTimeZone": "America/Los_Angeles", "userType": "Standard",
            "userUiSkin": "Theme3",
        }  # fmt: skip
        user_info = "".join(
            f'<{k} xsi:nil="true"/>' if v is None else f"<{k}>{escape(v)}</{k}>"
            for k, v in info.items()
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>{instance}/services/Soap/m/{version}/{org15}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired>"
            "<sandbox>false</sandbox>"
            f"<serverUrl>{instance}/services/Soap/u/{version}/{org15}</serverUrl>"
            f"<sessionId>{session.token}</sessionId>"
            f"<userId>{session.user_id}</userId>"
            f"<userInfo>{user_info}</userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
        )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _soap_fault(faultcode: str, faultstring: str, code: str | None) -> web.Response:
    detail = ""
    if code is not None:
        detail = (
            '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
            f"<sf:exceptionCode>{code}</sf:exceptionCode>"
            f"<sf:exceptionMessage>{escape(_INVALID_LOGIN)}</sf:exceptionMessage>"
            "</sf:LoginFault></detail>"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{faultcode}</faultcode><faultstring>{escape(faultstring)}</faultstring>"
        f"{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return web.Response(text=body, status=500, content_type="text/xml", charset="utf-8")
