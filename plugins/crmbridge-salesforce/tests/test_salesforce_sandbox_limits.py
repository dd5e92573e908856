"""The daily API budget, ``Sforce-Limit-Info``, and injected faults in Salesforce's own shapes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox


def test_api_usage_is_reported_on_every_response(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    sf.query("SELECT Id FROM Lead")
    usage = sf.api_usage["api-usage"]
    assert (usage.used, usage.total) == (1, 100_000)
    sf.limits()
    assert sf.api_usage["api-usage"].used == 2
    answer = sf.session.get(
        "https://crmbridge-sandbox.my.salesforce.com/services/data/v59.0/sobjects/Lead/nope",
        headers=sf.headers,
    )
    assert answer.status_code == 404
    assert answer.headers["Sforce-Limit-Info"] == "api-usage=3/100000"
    limits = sf.limits()["DailyApiRequests"]
    assert limits == {"Max": 100_000, "Remaining": 100_000 - 4}


def test_the_spent_budget_refuses_calls_with_403(
    salesforce_sandbox_factory: Callable[..., SalesforceSandbox],
) -> None:
    sandbox = salesforce_sandbox_factory(daily_api_limit=5)
    sf = sandbox.sf
    for _ in range(5):
        sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 5
    with pytest.raises(SalesforceRefusedRequest) as refused:
        sf.query("SELECT Id FROM Lead")
    assert refused.value.status == 403
    assert refused.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    sandbox.control.advance_clock(24 * 3600)
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 1


@pytest.mark.salesforce_sandbox(daily_api_limit=1000)
def test_the_marker_gives_the_fixture_options(salesforce_sandbox: SalesforceSandbox) -> None:
    assert salesforce_sandbox.sf.limits()["DailyApiRequests"] == {"Max": 1000, "Remaining": 999}
    env = salesforce_sandbox.env()
    assert env["CRMBRIDGE_SALESFORCE__CLIENT_ID"] == "crmbridge-sandbox-key"
    assert env["CRMBRIDGE_SALESFORCE__CLIENT_SECRET"] == "crmbridge-sandbox-secret"
    assert "CRMBRIDGE_SALESFORCE__CONSUMER_KEY" not in env


def test_set_api_usage(salesforce_sandbox: SalesforceSandbox) -> None:
    assert salesforce_sandbox.control.control("set_api_usage", used=99_998) == {
        "used": 99_998,
        "max": 100_000,
    }
    sf = salesforce_sandbox.sf
    sf.query("SELECT Id FROM Lead")
    sf.query("SELECT Id FROM Lead")
    assert sf.api_usage["api-usage"].used == 100_000
    with pytest.raises(SalesforceRefusedRequest, match="REQUEST_LIMIT_EXCEEDED"):
        sf.Lead.create({"LastName": "Too", "Company": "Late"})
    with pytest.raises(Exception, match="cannot be negative"):
        salesforce_sandbox.control.control("set_api_usage", used=-1)


def test_injected_503_answers_salesforce_error_array(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    salesforce_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1,), path="/query")]
    )
    with pytest.raises(SalesforceGeneralError) as unavailable:
        sf.query("SELECT Id FROM Lead")
    assert unavailable.value.status == 503
    assert unavailable.value.content == [
        {
            "message": "Server temporarily unavailable. Please try again later.",
            "errorCode": "SERVER_UNAVAILABLE",
        }
    ]
    assert sf.query("SELECT Id FROM Lead")["totalSize"] == 0
    assert [c.fault for c in salesforce_sandbox.calls() if c.endpoint == "GET query"] == [
        "status",
        None,
    ]


def test_injected_429_with_retry_after(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.sf
    sf.query("SELECT Id FROM Lead")  # log in first; the fault is for the data call
    salesforce_sandbox.control.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, retry_after=3, on_calls=(1,), path="/query")]
    )
    answer = sf.session.get(
        "https://crmbridge-sandbox.my.salesforce.com/services/data/v59.0/query/",
        params={"q": "SELECT Id FROM Lead"},
        headers=sf.headers,
    )
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert answer.json() == [
        {
            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
        }
    ]


def test_injected_fault_with_a_custom_code(salesforce_sandbox: SalesforceSandbox) -> None:
    salesforce_sandbox.control.set_faults(
        [
            FaultRule(
                kind=FaultKind.STATUS,
                status=400,
                code="UNABLE_TO_LOCK_ROW",
                on_calls=(1,),
                path="sobjects/Lead",
            )
        ]
    )
    with pytest.raises(SalesforceMalformedRequest) as locked:
        salesforce_sandbox.sf.Lead.create({"LastName": "L", "Company": "C"})
    assert locked.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_dropped_connection_after_a_write(
    salesforce_sandbox: SalesforceSandbox, new_lead: Callable[..., str]
) -> None:
    import requests

    lead_id = new_lead()
    salesforce_sandbox.control.set_faults(
        [FaultRule(kind=FaultKind.DROP_AFTER, on_calls=(1,), method="PATCH")]
    )
    with pytest.raises(requests.ConnectionError):
        salesforce_sandbox.sf.Lead.update(lead_id, {"Title": "Saved anyway"})
    assert salesforce_sandbox.sf.Lead.get(lead_id)["Title"] == "Saved anyway"
