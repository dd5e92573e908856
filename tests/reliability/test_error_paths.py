"""Every retriable and non-retriable error path of both connectors, through the real SDKs and the
sandboxes: which crmbridge error each answer becomes, how many times the call is made, and the
message a person reads.

Retriable answers (429, 5xx, dropped connections, timeouts, a login during an outage) are tried
``retry_attempts`` times and then raised with the last answer; answers that would come again (a
4xx, refused credentials, a spent daily quota) are raised after one call.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from crmbridge_hubspot.connector.errors import HubSpotRequestError
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import connector_for as hubspot_connector
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import connector_for as salesforce_connector

from crmbridge import (
    AuthenticationError,
    CrmBridgeError,
    Cursor,
    FatalError,
    LeadWrite,
    QuotaExhausted,
    RateLimited,
    TransientError,
    TransientRecordError,
    WriteRejected,
)
from crmbridge.store.store import crmbridge_id_for
from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

ATTEMPTS = 3
RETRIES: dict[str, Any] = {
    "retry_attempts": ATTEMPTS,
    "max_retry_after_seconds": 5,
    "timeout_seconds": 0.3,
}


def always(kind: FaultKind, **rule: Any) -> FaultRule:
    return FaultRule(kind=kind, probability=1.0, **rule)


def writes(count: int) -> list[LeadWrite]:
    out = []
    for i in range(count):
        email = f"paths.{i}@example.com"
        out.append(
            LeadWrite(
                email=email,
                crmbridge_id=crmbridge_id_for(email),
                fields={"email": email, "last_name": f"Path{i}", "company": "Acme"},
                stage="mql",
            )
        )
    return out


# -- HubSpot -------------------------------------------------------------------------------------

HUBSPOT_LIST = "GET objects/contacts (contacts, after start)"


@pytest.mark.parametrize(
    ("rule", "error", "message", "calls"),
    [
        (
            always(FaultKind.STATUS, status=429, retry_after=1),
            RateLimited,
            f"{HUBSPOT_LIST}: rate limited by HubSpot (TEN_SECONDLY_ROLLING): You "
            "have reached your ten_secondly_rolling limit",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=503),
            TransientError,
            f"{HUBSPOT_LIST}: HubSpot answered 503: Service Unavailable",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=500),
            TransientError,
            "HubSpot answered 500: internal error",
            ATTEMPTS,
        ),
        (
            always(FaultKind.DROP),
            TransientError,
            f"{HUBSPOT_LIST}: the connection to HubSpot failed (",
            ATTEMPTS,
        ),
        (
            always(FaultKind.DELAY, delay_ms=1500),
            TransientError,
            f"{HUBSPOT_LIST}: HubSpot did not answer in time",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=429, code="DAILY", retry_after=3600),
            QuotaExhausted,
            "HubSpot's daily API limit is spent",
            1,
        ),
        (
            always(FaultKind.STATUS, status=401),
            AuthenticationError,
            "HubSpot refused the access token",
            1,
        ),
        (
            always(FaultKind.STATUS, status=403),
            FatalError,
            "HubSpot refused the request",
            1,
        ),
        (
            always(FaultKind.STATUS, status=400),
            HubSpotRequestError,
            f"{HUBSPOT_LIST}: HubSpot answered 400 VALIDATION_ERROR: Injected",
            1,
        ),
        (
            always(FaultKind.STATUS, status=404, code="OBJECT_NOT_FOUND"),
            HubSpotRequestError,
            "HubSpot answered 404 OBJECT_NOT_FOUND",
            1,
        ),
    ],
    ids=["429", "503", "500", "dropped", "timeout", "daily", "401", "403", "400", "404"],
)
def test_hubspot_reads(
    hubspot_sandbox: HubSpotSandbox,
    rule: FaultRule,
    error: type[CrmBridgeError],
    message: str,
    calls: int,
) -> None:
    hubspot_sandbox.control.control("seed_contacts", contacts=[{"email": "a@example.com"}])
    waits: list[float] = []
    connector = hubspot_connector(hubspot_sandbox, sleep=waits.append, **RETRIES)
    hubspot_sandbox.set_faults([rule])
    with pytest.raises(error) as caught:
        list(connector.pull_changes(Cursor()))
    assert message in str(caught.value)
    assert type(caught.value) is error
    # Calls the connector sent (a timed-out one shows in the sandbox's log only once it ends).
    assert connector.api_usage().calls == calls
    assert len(waits) == calls - 1
    if rule.retry_after and calls > 1:
        assert waits == [rule.retry_after] * (calls - 1), "Retry-After is honoured"
    _settle(hubspot_sandbox)


def test_hubspot_write_retried_after_5xx_then_a_record_failing_just_now_is_transient(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = hubspot_connector(hubspot_sandbox, sleep=lambda _: None, **RETRIES)
    connector.setup()
    hubspot_sandbox.set_faults(
        [
            FaultRule(kind=FaultKind.STATUS, status=502, on_calls=(1,), path="batch/upsert"),
            FaultRule(kind=FaultKind.PARTIAL, on_calls=(1,), path="batch/upsert", fail_share=1.0),
        ]
    )
    [result] = connector.push_leads(writes(1))
    assert not result.ok
    assert isinstance(result.error, TransientRecordError)
    assert str(result.error) == (
        "plugin hubspot; system hubspot: HubSpot refused the upsert of contact "
        "paths.0@example.com: The write of this record failed; retry it."
    )
    assert result.error.code == "INTERNAL_ERROR"


def test_hubspot_record_refusal_that_would_come_again_is_not_transient(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = hubspot_connector(hubspot_sandbox, sleep=lambda _: None, **RETRIES)
    connector.setup()
    hubspot_sandbox.set_faults(
        [always(FaultKind.PARTIAL, path="batch/upsert", fail_share=1.0, code="VALIDATION_ERROR")]
    )
    [result] = connector.push_leads(writes(1))
    assert isinstance(result.error, WriteRejected)
    assert not isinstance(result.error, TransientRecordError)
    assert "HubSpot refused the upsert of contact paths.0@example.com" in str(result.error)


# -- Salesforce ----------------------------------------------------------------------------------

QUERY = r"/query"


@pytest.mark.parametrize(
    ("rule", "error", "message", "calls"),
    [
        (
            always(FaultKind.STATUS, status=429, retry_after=2, path=QUERY),
            RateLimited,
            "Salesforce answered 429 REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=503, path=QUERY),
            TransientError,
            "Salesforce answered 503 SERVER_UNAVAILABLE: Server temporarily unavailable",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=500, path=QUERY),
            TransientError,
            "Salesforce answered 500 UNKNOWN_EXCEPTION: An unexpected error occurred",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=409, path=QUERY),
            TransientError,
            "Salesforce answered 409 UNABLE_TO_LOCK_ROW",
            ATTEMPTS,
        ),
        (
            always(FaultKind.DROP, path=QUERY),
            TransientError,
            ": the connection failed (ConnectionError:",
            ATTEMPTS,
        ),
        (
            always(FaultKind.DELAY, delay_ms=1500, path=QUERY),
            TransientError,
            " timed out: ",
            ATTEMPTS,
        ),
        (
            always(FaultKind.STATUS, status=403, path=QUERY),
            QuotaExhausted,
            "Salesforce answered 403 REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.",
            1,
        ),
        (
            always(FaultKind.STATUS, status=403, code="INSUFFICIENT_ACCESS", path=QUERY),
            FatalError,
            "Salesforce answered 403 INSUFFICIENT_ACCESS",
            1,
        ),
        (
            always(FaultKind.STATUS, status=400, path=QUERY),
            FatalError,
            "Salesforce answered 400 INVALID_INPUT: The request was rejected",
            1,
        ),
        (
            always(FaultKind.STATUS, status=404, path=QUERY),
            FatalError,
            "Salesforce answered 404 NOT_FOUND",
            1,
        ),
    ],
    ids=["429", "503", "500", "409-lock", "dropped", "timeout", "quota", "403", "400", "404"],
)
def test_salesforce_reads(
    salesforce_sandbox: SalesforceSandbox,
    rule: FaultRule,
    error: type[CrmBridgeError],
    message: str,
    calls: int,
) -> None:
    waits: list[float] = []
    connector = salesforce_connector(salesforce_sandbox, sleep=waits.append, **RETRIES)
    connector.check()
    salesforce_sandbox.set_faults([rule])
    before = connector.api_usage().calls
    with pytest.raises(error) as caught:
        list(connector.pull_outcomes(Cursor()))
    assert message in str(caught.value)
    assert type(caught.value) is error
    assert connector.api_usage().calls - before == calls
    assert len(waits) == calls - 1
    if rule.retry_after and calls > 1:
        assert waits == [rule.retry_after] * (calls - 1), "Retry-After is honoured"
    if error is FatalError:
        assert caught.value.hint, "a refusal says what to do"
    _settle(salesforce_sandbox)


@pytest.mark.parametrize("status", [503, 429])
def test_salesforce_login_during_an_outage_is_retried_not_refused(
    salesforce_sandbox: SalesforceSandbox, status: int
) -> None:
    waits: list[float] = []
    connector = salesforce_connector(salesforce_sandbox, sleep=waits.append, **RETRIES)
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=status, on_calls=(1,), path="oauth2/token")]
    )
    assert connector.push_leads(writes(1))[0].ok
    assert len(waits) == 1
    salesforce_sandbox.set_faults([always(FaultKind.STATUS, status=status, path="oauth2/token")])
    with pytest.raises(RateLimited if status == 429 else TransientError) as caught:
        salesforce_connector(salesforce_sandbox, sleep=waits.append, **RETRIES).push_leads(
            writes(1)
        )
    assert (
        f"the client_credentials login: logging in (client_credentials), Salesforce answered "
        f"{status}" in str(caught.value)
    )


def test_salesforce_sdk_relogin_during_an_outage_is_retried(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    waits: list[float] = []
    connector = salesforce_connector(salesforce_sandbox, sleep=waits.append, **RETRIES)
    connector.check()
    # The session expires; the SDK logs in again by itself and meets a 503 on the first try.
    salesforce_sandbox.set_faults(
        [
            FaultRule(kind=FaultKind.EXPIRE_SESSION, on_calls=(1,), path=QUERY),
            FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1,), path="oauth2/token"),
        ]
    )
    assert list(connector.pull_outcomes(Cursor())) is not None
    assert len(waits) == 1


def test_salesforce_refused_login_is_not_retried(salesforce_sandbox: SalesforceSandbox) -> None:
    connector = salesforce_connector(
        salesforce_sandbox, sleep=lambda _: None, client_secret="wrong", **RETRIES
    )
    with pytest.raises(AuthenticationError) as caught:
        connector.push_leads(writes(1))
    assert "Salesforce refused the client_credentials login (invalid_client" in str(caught.value)
    assert "CRMBRIDGE_SALESFORCE__DOMAIN" in str(caught.value)
    assert salesforce_sandbox.calls().count("POST oauth2/token") == 1


def test_salesforce_record_locked_is_transient_and_the_rest_flow_on(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = salesforce_connector(salesforce_sandbox, sleep=lambda _: None, **RETRIES)
    connector.check()
    salesforce_sandbox.set_faults(
        [
            FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1,), path="composite"),
            FaultRule(kind=FaultKind.PARTIAL, on_calls=(1,), path="composite", fail_share=0.5),
        ]
    )
    results = connector.push_leads(writes(6))
    failed = [r for r in results if not r.ok]
    assert failed
    assert len(failed) < 6, "the rest of the batch went through"
    for result in failed:
        assert isinstance(result.error, TransientRecordError)
        assert "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record" in str(
            result.error
        )
        assert str(result.error.record).startswith("paths.")


def test_salesforce_record_refusal_that_would_come_again_is_not_transient(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = salesforce_connector(salesforce_sandbox, sleep=lambda _: None, **RETRIES)
    connector.check()
    salesforce_sandbox.set_faults(
        [
            always(
                FaultKind.PARTIAL,
                path="composite",
                fail_share=1.0,
                code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
            )
        ]
    )
    [result] = connector.push_leads(writes(1))
    assert type(result.error) is WriteRejected
    assert (
        "Salesforce refused lead paths.0@example.com (crmbridge id "
        f"{crmbridge_id_for('paths.0@example.com')}): FIELD_CUSTOM_VALIDATION_EXCEPTION"
    ) in str(result.error)


def _settle(sandbox: HubSpotSandbox | SalesforceSandbox) -> None:
    """Let delayed requests the client gave up on finish before the sandbox stops."""
    sandbox.set_faults([])
    time.sleep(0.05 if not any(c.fault == "delay" for c in sandbox.calls()) else 1.6)
