"""Logging in, sessions and failures: every auth mode, re-login after an expired session (REST,
Bulk API 2.0, a query locator that died mid-pagination), the daily quota, and the faults that are
retried — all through simple-salesforce over HTTP to the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from crmbridge_salesforce.connector import SalesforceSettings
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.sandbox.config import (
    DEFAULT_PASSWORD,
    DEFAULT_TOKEN,
    INTEGRATION_USERNAME,
)
from crmbridge_salesforce.testing import connector_for
from pydantic import ValidationError

from crmbridge import (
    AuthenticationError,
    ChangeKind,
    Cursor,
    LeadWrite,
    QuotaExhausted,
    RateLimited,
    TransientError,
)
from crmbridge.store.store import crmbridge_id_for
from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

Factory = Callable[..., SalesforceSandbox]
TOKEN = "POST oauth2/token"


def _writes(count: int, prefix: str = "session") -> list[LeadWrite]:
    out = []
    for i in range(count):
        email = f"{prefix}.{i}@example.com"
        out.append(
            LeadWrite(
                email=email,
                crmbridge_id=crmbridge_id_for(email),
                fields={"email": email, "last_name": f"Lead{i}", "company": "Acme"},
                stage="mql",
                annotations={"score": 70},
            )
        )
    return out


def _seed(sandbox: SalesforceSandbox, count: int, prefix: str = "seeded") -> list[str]:
    records = [
        {"LastName": f"L{i}", "Company": "Acme", "Email": f"{prefix}{i}@example.com"}
        for i in range(count)
    ]
    return list(sandbox.control.control("seed_records", object="Lead", records=records)["ids"])


# -- logging in ----------------------------------------------------------------------------------


def test_client_credentials_is_the_default(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox)
    assert connector.salesforce_settings.auth == "client_credentials"
    report = connector.check()
    assert report.ok, report.items
    assert report.items[0].message.startswith("logged in with client_credentials to ")
    assert salesforce_sandbox.calls().count(TOKEN) == 1


def test_jwt_bearer_with_a_generated_key(
    salesforce_sandbox_factory: Factory, rsa_key_pair: tuple[str, str], tmp_path: Path
) -> None:
    private, public = rsa_key_pair
    sandbox = salesforce_sandbox_factory(jwt_public_key=public)
    connector = connector_for(
        sandbox, auth="jwt", username=INTEGRATION_USERNAME, private_key=private
    )
    assert connector.check().ok
    key_file = tmp_path / "key.pem"
    key_file.write_text(private, encoding="utf-8")
    from_file = connector_for(
        sandbox, auth="jwt", username=INTEGRATION_USERNAME, private_key_file=str(key_file)
    )
    assert from_file.check().ok
    assert sandbox.calls().count(TOKEN, status=200) == 2


def test_jwt_with_a_key_the_app_does_not_hold(
    salesforce_sandbox_factory: Factory, rsa_key_pair: tuple[str, str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sandbox = salesforce_sandbox_factory(jwt_public_key=rsa_key_pair[1])
    connector = connector_for(
        sandbox, auth="jwt", username=INTEGRATION_USERNAME, private_key=other.decode()
    )
    with pytest.raises(AuthenticationError) as caught:
        connector.pull_outcomes(Cursor()).__next__()
    assert "Salesforce refused the jwt login (invalid_grant: " in str(caught.value)
    assert "holds the key's certificate" in str(caught.value)


def test_jwt_with_a_key_that_is_no_key(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(
        salesforce_sandbox, auth="jwt", username=INTEGRATION_USERNAME, private_key="not a key"
    )
    report = connector.check()
    assert not report.ok
    assert report.items[0].subject == "login"
    assert "could not sign its assertion" in report.items[0].message
    assert "PEM RSA private key" in report.items[0].fix


@pytest.mark.parametrize("auth", ["password", "soap"])
def test_password_and_soap_logins(salesforce_sandbox: SalesforceSandbox, auth: str) -> None:
    connector = connector_for(
        salesforce_sandbox,
        auth=auth,
        username=INTEGRATION_USERNAME,
        password=DEFAULT_PASSWORD,
        security_token=DEFAULT_TOKEN,
    )
    assert connector.check().ok
    endpoint = TOKEN if auth == "password" else "POST Soap/u/59.0"
    assert salesforce_sandbox.calls().count(endpoint, status=200) == 1


@pytest.mark.parametrize(
    ("auth", "extra", "expected"),
    [
        ("client_credentials", {"client_secret": "wrong"}, "client_credentials login"),
        ("password", {"password": "wrong"}, "password login"),
        ("soap", {"password": "wrong"}, "soap login (INVALID_LOGIN"),
    ],
)
def test_a_refused_login_names_the_mode_and_what_to_check(
    salesforce_sandbox: SalesforceSandbox, auth: str, extra: dict[str, Any], expected: str
) -> None:
    settings: dict[str, Any] = {
        "auth": auth,
        "username": INTEGRATION_USERNAME,
        "password": DEFAULT_PASSWORD,
        "security_token": DEFAULT_TOKEN,
        **extra,
    }
    connector = connector_for(salesforce_sandbox, **settings)
    report = connector.check()
    assert [(i.level, i.subject) for i in report.items] == [("error", "login")]
    assert f"Salesforce refused the {expected}" in report.items[0].message
    assert "CRMBRIDGE_SALESFORCE__" in report.items[0].fix
    with pytest.raises(AuthenticationError):
        connector.push_leads(_writes(1))
    # A refused login is not retried: bad credentials stay bad (one login per attempt).
    assert salesforce_sandbox.calls().count("POST ") == 2


def test_settings_name_what_each_mode_needs() -> None:
    with pytest.raises(ValidationError) as caught:
        SalesforceSettings(auth="jwt", client_id="key")
    text = str(caught.value)
    assert "CRMBRIDGE_SALESFORCE__USERNAME" in text
    assert "CRMBRIDGE_SALESFORCE__PRIVATE_KEY" in text
    with pytest.raises(ValidationError, match="the org's My Domain"):
        SalesforceSettings(client_id="key", client_secret="secret")
    settings = SalesforceSettings(
        client_id="key",
        client_secret="secret",
        domain="https://acme.my.salesforce.com/",
        api_version="v60.0",
    )
    assert (settings.domain, settings.api_version) == ("acme.my", "60.0")
    assert "'secret'" not in repr(settings)


# -- sessions ------------------------------------------------------------------------------------


def test_rest_calls_log_in_again_after_the_session_expired(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    [first] = connector.push_leads(_writes(1, "before"))
    salesforce_sandbox.control.control("expire_sessions")
    [second] = connector.push_leads(_writes(1, "after"))
    assert first.ok
    assert second.ok
    calls = salesforce_sandbox.calls()
    assert calls.count(TOKEN) == 2
    assert calls.count("PATCH composite/sobjects/Lead", status=401) == 1


def test_bulk_calls_log_in_again_and_use_the_new_token(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox, bulk_threshold=5)
    assert all(r.ok for r in connector.push_leads(_writes(5, "bulk-before")))
    salesforce_sandbox.control.control("expire_sessions")
    results = connector.push_leads(_writes(6, "bulk-after"))
    assert all(r.ok and r.created for r in results), [str(r.error) for r in results]
    calls = salesforce_sandbox.calls()
    # The SDK's Bulk API 2.0 handler never logs in again by itself: the connector does, once,
    # and reaches sf.bulk2 afresh with the new token.
    assert connector.session.logins == 2
    assert calls.count("POST jobs/ingest", status=401) == 1
    assert calls.count("POST jobs/ingest", status=200) == 2


def test_a_query_locator_that_died_mid_pagination_restarts_after_the_last_record(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    ids = _seed(salesforce_sandbox, 450)
    connector = connector_for(salesforce_sandbox, query_page_size=200)
    read: list[str] = []
    for n, batch in enumerate(connector.pull_changes(Cursor())):
        read += [c.native_id for c in batch.changes if c.kind is ChangeKind.UPSERT]
        if n == 0:
            salesforce_sandbox.control.control("expire_sessions")
    assert sorted(read) == sorted(ids)
    assert len(read) == len(set(read))
    calls = salesforce_sandbox.calls()
    assert calls.count("GET query/{locator}", status=400) == 1
    assert calls.count("GET query", status=200) == 3  # first page, the restart, its next page


def test_a_session_refused_right_after_a_login_is_an_authentication_error(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=401, probability=1.0, path=r"/query")]
    )
    with pytest.raises(AuthenticationError, match="refused a session it had just issued"):
        list(connector.pull_outcomes(Cursor()))


# -- the quota and faults ------------------------------------------------------------------------


def test_the_spent_daily_quota_stops_at_once(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox)
    connector.check()
    salesforce_sandbox.control.control("set_api_usage", used=100_000)
    before = len(salesforce_sandbox.server.call_log)
    with pytest.raises(QuotaExhausted) as caught:
        connector.push_leads(_writes(3))
    assert "REQUEST_LIMIT_EXCEEDED" in str(caught.value)
    assert "rolling 24 hours" in str(caught.value)
    assert len(salesforce_sandbox.server.call_log) - before == 1
    usage = connector.api_usage()
    assert (usage.used, usage.limit, usage.window) == (100_000, 100_000, "24h")


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1, 2), path=r"/composite/"),
        FaultRule(kind=FaultKind.STATUS, status=500, on_calls=(1,), path=r"/composite/"),
        FaultRule(kind=FaultKind.DROP, on_calls=(1,), path=r"/composite/"),
        FaultRule(kind=FaultKind.DROP_AFTER, on_calls=(1,), path=r"/composite/"),
        FaultRule(kind=FaultKind.STATUS, status=409, on_calls=(1,), path=r"/composite/"),
    ],
    ids=["503-twice", "500", "dropped", "dropped-after-writing", "unable-to-lock-row"],
)
def test_transient_faults_are_retried(
    salesforce_sandbox: SalesforceSandbox, rule: FaultRule
) -> None:
    waits: list[float] = []
    connector = connector_for(salesforce_sandbox, sleep=waits.append)
    connector.check()
    salesforce_sandbox.set_faults([rule])
    results = connector.push_leads(_writes(4, "faulty"))
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert len(waits) == len(rule.on_calls)
    assert len(salesforce_sandbox.control.control("find_leads", email="faulty.0@example.com")) == 1


def test_429_waits_as_long_as_retry_after_says(salesforce_sandbox: SalesforceSandbox) -> None:
    waits: list[float] = []
    connector = connector_for(salesforce_sandbox, sleep=waits.append, max_retry_after_seconds=5)
    connector.check()
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, retry_after=2, on_calls=(1,), path="/query")]
    )
    assert list(connector.pull_outcomes(Cursor()))
    assert waits == [2.0]


def test_a_read_that_outlasts_the_timeout_is_retried(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    waits: list[float] = []
    connector = connector_for(salesforce_sandbox, sleep=waits.append, timeout_seconds=0.3)
    connector.check()
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.DELAY, delay_ms=1500, on_calls=(1,), path="/query")]
    )
    assert list(connector.pull_outcomes(Cursor()))
    assert len(waits) == 1
    # Let the abandoned request finish in the sandbox before it stops (no task left pending).
    deadline = time.monotonic() + 5
    while not any(c.fault == "delay" for c in salesforce_sandbox.calls()):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_retries_give_up_with_the_last_error(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = connector_for(salesforce_sandbox, sleep=lambda _: None)
    connector.check()
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, probability=1.0, path="/query")]
    )
    with pytest.raises(RateLimited, match="salesforce"):
        list(connector.pull_outcomes(Cursor()))
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=502, probability=1.0, path="/query")]
    )
    with pytest.raises(TransientError, match="502 SERVER_UNAVAILABLE"):
        list(connector.pull_outcomes(Cursor()))
    assert salesforce_sandbox.calls().count("GET query", status=502) == 4  # retry_attempts


def test_api_usage_counts_every_call_without_spending_one(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(salesforce_sandbox)
    assert connector.api_usage().calls == 0
    assert connector.api_usage().used is None
    connector.push_leads(_writes(2))
    usage = connector.api_usage()
    assert usage.calls == len(salesforce_sandbox.server.call_log)
    assert usage.limit == 100_000
    assert usage.used == salesforce_sandbox.emulator.budget.requests.used
    assert connector.api_usage().calls == usage.calls
