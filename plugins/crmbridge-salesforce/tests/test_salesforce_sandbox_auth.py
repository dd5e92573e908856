"""Logging in to the Salesforce sandbox with every flow simple-salesforce offers, and sessions."""

from __future__ import annotations

import json
import xml.dom.minidom
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.transport import sandbox_session
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

FIXTURES = Path("/work/shared/reference/salesforce_auth_fixtures")
INTEGRATION = "integration@crmbridge.sandbox"
REP = "maria.garcia@crmbridge.sandbox"
KEY, SECRET = "crmbridge-sandbox-key", "crmbridge-sandbox-secret"


def _whoami(sf: Salesforce) -> str:
    user_id = sf.query("SELECT Id FROM User LIMIT 1")  # any call proves the session works
    assert user_id["totalSize"] == 1
    token = sf.session_id
    assert token.startswith("00D")
    assert "!AQ" in token
    return token


def test_client_credentials_login_runs_as_the_integration_user(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    sf = salesforce_sandbox.sf
    assert sf.auth_type == "client-credentials"
    assert sf.sf_instance == "crmbridge-sandbox.my.salesforce.com"
    _whoami(sf)
    created = sf.Lead.create({"LastName": "Who", "Company": "Made Me"})
    lead = sf.Lead.get(created["id"])
    integration = salesforce_sandbox.emulator.org.user_ids[INTEGRATION]
    assert lead["CreatedById"] == lead["OwnerId"] == integration


def test_oauth_password_flow(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.make_client(
        username=REP, password="sandbox-password", consumer_key=KEY, consumer_secret=SECRET
    )
    _whoami(sf)
    created = sf.Lead.create({"LastName": "Mine", "Company": "Rep Co"})
    rep_id = salesforce_sandbox.emulator.org.user_ids[REP]
    assert sf.Lead.get(created["id"])["OwnerId"] == rep_id
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_grant"):
        salesforce_sandbox.make_client(
            username=REP, password="wrong", consumer_key=KEY, consumer_secret=SECRET
        )


def test_soap_login_and_its_invalid_login_fault(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.make_client(
        username=INTEGRATION, password="sandbox-password", security_token="SANDBOXTOKEN"
    )
    assert sf.auth_type == "password"
    assert sf.sf_instance == "crmbridge-sandbox.my.salesforce.com"
    _whoami(sf)
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        salesforce_sandbox.make_client(
            username=INTEGRATION, password="sandbox-password", security_token="WRONG"
        )
    assert failed.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in failed.value.auth_message


def test_soap_login_scoped_to_the_org_needs_no_token(salesforce_sandbox: SalesforceSandbox) -> None:
    org_id = salesforce_sandbox.emulator.org.org_id
    sf = salesforce_sandbox.make_client(
        username=INTEGRATION, password="sandbox-password", organizationId=org_id
    )
    assert sf.auth_type == "ipfilter"
    _whoami(sf)


def test_jwt_bearer_login_verifies_the_signature(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
    rsa_key_pair: tuple[str, str],
) -> None:
    private, public = rsa_key_pair
    sandbox = salesforce_sandbox_factory(jwt_public_key=public)
    sf = sandbox.make_client(username=REP, consumer_key=KEY, privatekey=private, domain="login")
    assert sf.auth_type == "jwt-bearer"
    _whoami(sf)
    other = salesforce_sandbox_factory()  # no public key configured: nothing verifies
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid assertion"):
        other.make_client(username=REP, consumer_key=KEY, privatekey=private)
    with pytest.raises(SalesforceAuthenticationFailed, match="client identifier invalid"):
        sandbox.make_client(username=REP, consumer_key="unknown-app", privatekey=private)


def test_jwt_signed_with_another_key_is_refused(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
    rsa_key_pair: tuple[str, str],
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _, public = rsa_key_pair
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sandbox = salesforce_sandbox_factory(jwt_public_key=public)
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_grant"):
        sandbox.make_client(username=REP, consumer_key=KEY, privatekey=intruder.decode())


def test_bad_client_credentials(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_client"):
        salesforce_sandbox.make_client(
            consumer_key=KEY, consumer_secret="nope", domain="crmbridge-sandbox.my"
        )
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_client_id"):
        salesforce_sandbox.make_client(
            consumer_key="nope", consumer_secret=SECRET, domain="crmbridge-sandbox.my"
        )


def test_unsupported_grant_and_missing_token(salesforce_sandbox: SalesforceSandbox) -> None:
    session = salesforce_sandbox.session()
    answer = session.post(
        "https://login.salesforce.com/services/oauth2/token", data={"grant_type": "magic"}
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "unsupported_grant_type",
        "error_description": "grant type not supported",
    }
    unauthenticated = session.get("https://x.my.salesforce.com/services/data/v59.0/limits/")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


@pytest.mark.parametrize("flow", ["client_credentials", "soap", "oauth_password"])
def test_expired_session_is_renewed_transparently(
    salesforce_sandbox: SalesforceSandbox, flow: str
) -> None:
    auth: dict[str, Any] = {
        "client_credentials": {},
        "soap": {
            "username": INTEGRATION,
            "password": "sandbox-password",
            "security_token": "SANDBOXTOKEN",
        },
        "oauth_password": {
            "username": INTEGRATION,
            "password": "sandbox-password",
            "consumer_key": KEY,
            "consumer_secret": SECRET,
        },
    }[flow]
    sf = salesforce_sandbox.make_client(**auth)
    first = _whoami(sf)
    assert salesforce_sandbox.control.control("expire_sessions")["expired"] >= 1
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    assert sf.session_id != first
    statuses = [c.status for c in salesforce_sandbox.calls() if c.endpoint == "GET query"]
    assert statuses[-2:] == [401, 200]


def test_direct_session_auth_raises_expired_session(salesforce_sandbox: SalesforceSandbox) -> None:
    token = _whoami(salesforce_sandbox.sf)
    direct = salesforce_sandbox.make_client(
        session_id=token, instance_url="https://crmbridge-sandbox.my.salesforce.com"
    )
    assert direct.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
    salesforce_sandbox.control.set_faults([FaultRule(kind=FaultKind.EXPIRE_SESSION, on_calls=(1,))])
    with pytest.raises(SalesforceExpiredSession) as expired:
        direct.query("SELECT Id FROM Lead")
    assert expired.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_sessions_expire_after_the_idle_ttl_on_the_sandbox_clock(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> None:
    sandbox = salesforce_sandbox_factory(session_ttl_seconds=600)
    token = _whoami(sandbox.sf)
    sandbox.control.advance_clock(300)
    direct = sandbox.make_client(session_id=token, instance="crmbridge-sandbox.my.salesforce.com")
    direct.query("SELECT Id FROM Lead")  # used within the TTL: still alive, and refreshed
    sandbox.control.advance_clock(601)
    with pytest.raises(SalesforceExpiredSession):
        direct.query("SELECT Id FROM Lead")


# -- the shapes compared with simple-salesforce's own fixtures ---------------------------------


def _element_names(root: xml.dom.minidom.Element) -> set[str]:
    return {node.localName for node in root.childNodes if node.nodeType == node.ELEMENT_NODE}


def test_soap_login_response_has_the_fixture_shape(salesforce_sandbox: SalesforceSandbox) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8" ?><env:Envelope '
        'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>'
        '<n1:login xmlns:n1="urn:partner.soap.sforce.com">'
        f"<n1:username>{INTEGRATION}</n1:username>"
        "<n1:password>sandbox-passwordSANDBOXTOKEN</n1:password>"
        "</n1:login></env:Body></env:Envelope>"
    )
    answer = salesforce_sandbox.session().post(
        "https://login.salesforce.com/services/Soap/u/59.0",
        data=body,
        headers={"content-type": "text/xml", "SOAPAction": "login"},
    )
    assert answer.status_code == 200
    ours = xml.dom.minidom.parseString(answer.content)
    theirs = xml.dom.minidom.parse(str(FIXTURES / "soap_login_response_success.xml"))
    for name in ("result", "userInfo"):
        mine = ours.getElementsByTagName(name)[0]
        reference = theirs.getElementsByTagName(name)[0]
        assert _element_names(mine) == _element_names(reference), name
    envelope = ours.documentElement
    assert envelope.namespaceURI == "http://schemas.xmlsoap.org/soap/envelope/"


def test_invalid_login_fault_shape(salesforce_sandbox: SalesforceSandbox) -> None:
    answer = salesforce_sandbox.session().post(
        "https://test.salesforce.com/services/Soap/u/59.0",
        data="<Envelope><Body><login><username>nobody</username><password>x</password>"
        "</login></Body></Envelope>",
    )
    assert answer.status_code == 500
    dom = xml.dom.minidom.parseString(answer.content)
    assert dom.getElementsByTagName("faultcode")[0].firstChild.data == "sf:INVALID_LOGIN"
    assert dom.getElementsByTagName("sf:exceptionCode")[0].firstChild.data == "INVALID_LOGIN"


def test_oauth_token_response_has_the_fixture_keys(salesforce_sandbox: SalesforceSandbox) -> None:
    answer = salesforce_sandbox.session().post(
        "https://crmbridge-sandbox.my.salesforce.com/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(KEY, SECRET),
    )
    assert answer.status_code == 200
    fixture = json.loads((FIXTURES / "oauth_token_response_success.json").read_text())
    body = answer.json()
    assert set(body) == set(fixture)
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == "https://crmbridge-sandbox.my.salesforce.com"
    org_id = salesforce_sandbox.emulator.org.org_id
    assert body["id"].startswith(f"https://login.salesforce.com/id/{org_id}/005")


def test_limits_response_has_the_fixture_keys(salesforce_sandbox: SalesforceSandbox) -> None:
    fixture = json.loads((FIXTURES / "limits_response.json").read_text())
    limits = salesforce_sandbox.sf.limits()
    assert set(limits) == set(fixture)
    for name, entry in limits.items():
        assert set(entry) == set(fixture[name]) == {"Max", "Remaining"}, name
    assert limits["DailyApiRequests"]["Max"] == 100_000


def test_a_session_made_by_hand_reaches_the_sandbox(salesforce_sandbox: SalesforceSandbox) -> None:
    session = sandbox_session(salesforce_sandbox.url)
    assert session.trust_env is False
    sf = Salesforce(
        consumer_key=KEY,
        consumer_secret=SECRET,
        domain="crmbridge-sandbox.my",
        session=session,
    )
    _whoami(sf)
    assert isinstance(session, requests.Session)
