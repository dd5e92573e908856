"""Auth, rate limits, injected faults and error bodies, as the real SDK sees them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox, SandboxFactory
from hubspot.crm.contacts import ApiException, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import ServiceException, UnauthorizedException
from urllib3.util import Retry

from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

EXAMPLES = json.loads(
    (Path(__file__).parent / "data" / "hubspot_public_error_examples.json").read_text()
)["examples"]
USAGE = "/account-info/v3/api-usage/daily/private-apps"


def body_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def get_page(sandbox: HubSpotSandbox, client: Any = None) -> Any:
    api = (client or sandbox.client).crm.contacts.basic_api
    return api.get_page_with_http_info(limit=1)


def example(status: int, fragment: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        e for e in EXAMPLES if e["http_status"] == status and fragment in e["case"]
    )
    return found


# -- auth ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["pat-not-issued", ""])
def test_a_missing_or_unknown_token_is_401(hubspot_sandbox: HubSpotSandbox, token: str) -> None:
    client = hubspot_sandbox.new_client(token=token or " ")
    with pytest.raises(UnauthorizedException) as exc:
        get_page(hubspot_sandbox, client)
    body = body_of(exc.value)
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["message"].startswith("Authentication credentials not found.")
    assert set(body) == {"status", "message", "correlationId", "category"}
    assert uuid.UUID(body["correlationId"])


def test_an_expired_token_is_401_expired_until_a_new_one_is_issued(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.control.control("expire_tokens")
    hubspot_sandbox.control.advance_clock(7)
    with pytest.raises(UnauthorizedException) as exc:
        get_page(hubspot_sandbox)
    body = body_of(exc.value)
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"] == "The OAuth token used to make this call expired 7 second(s) ago."
    hubspot_sandbox.control.control("add_token", token="pat-rotated")
    assert get_page(hubspot_sandbox, hubspot_sandbox.new_client(token="pat-rotated"))[1] == 200


def test_an_expire_session_fault_expires_the_token(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.set_faults([FaultRule(kind=FaultKind.EXPIRE_SESSION, on_calls=(2,))])
    get_page(hubspot_sandbox)
    with pytest.raises(UnauthorizedException):
        get_page(hubspot_sandbox)


# -- rate limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "ten_secondly", "daily"),
    [("starter", 100, 250_000), ("professional", 190, 650_000), ("enterprise", 190, 1_000_000)],
)
def test_rate_limit_headers_follow_the_tier(
    hubspot_sandbox_factory: SandboxFactory, tier: str, ten_secondly: int, daily: int
) -> None:
    sandbox = hubspot_sandbox_factory(tier=tier)
    _data, status, headers = get_page(sandbox)
    assert status == 200
    assert headers["X-HubSpot-RateLimit-Max"] == str(ten_secondly)
    assert headers["X-HubSpot-RateLimit-Remaining"] == str(ten_secondly - 1)
    assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert headers["X-HubSpot-RateLimit-Daily"] == str(daily)
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == str(daily - 1)


def test_the_starter_tier_refuses_the_101st_call_in_ten_seconds(
    hubspot_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = hubspot_sandbox_factory(tier="starter")
    for _ in range(100):
        get_page(sandbox)
    with pytest.raises(ApiException) as exc:
        get_page(sandbox)
    body = body_of(exc.value)
    assert exc.value.status == 429
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert 1 <= int(exc.value.headers["Retry-After"]) <= 10


def test_ten_secondly_429_has_the_real_body_and_clears_after_the_window(
    hubspot_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = hubspot_sandbox_factory(ten_secondly_limit=3, window_seconds=1.0)
    remaining = [get_page(sandbox)[2]["X-HubSpot-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    with pytest.raises(ApiException) as exc:
        get_page(sandbox)
    body = body_of(exc.value)
    assert set(body) == {
        "status", "message", "errorType", "correlationId", "policyName", "groupName",
    }  # fmt: skip
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert exc.value.headers["Retry-After"] == "1"
    time.sleep(1.05)
    assert get_page(sandbox)[1] == 200


def test_retry_after_can_be_left_out(hubspot_sandbox_factory: SandboxFactory) -> None:
    sandbox = hubspot_sandbox_factory(ten_secondly_limit=1, retry_after_header=False)
    get_page(sandbox)
    with pytest.raises(ApiException) as exc:
        get_page(sandbox)
    assert exc.value.status == 429
    assert "Retry-After" not in exc.value.headers


def test_the_daily_limit_refuses_until_midnight(hubspot_sandbox_factory: SandboxFactory) -> None:
    sandbox = hubspot_sandbox_factory(daily_limit=3)
    for _ in range(3):
        get_page(sandbox)
    with pytest.raises(ApiException) as exc:
        get_page(sandbox)
    body = body_of(exc.value)
    assert (exc.value.status, body["policyName"]) == (429, "DAILY")
    assert body["message"] == "You have reached your daily limit."
    assert 0 < int(exc.value.headers["Retry-After"]) <= 86_400
    sandbox.control.advance_clock(86_400)
    assert get_page(sandbox)[2]["X-HubSpot-RateLimit-Daily-Remaining"] == "2"


def test_api_usage_reports_the_days_calls(hubspot_sandbox: HubSpotSandbox) -> None:
    get_page(hubspot_sandbox)
    response = hubspot_sandbox.client.api_request(
        {"method": "GET", "path": USAGE, "base_url": hubspot_sandbox.url}
    )
    usage = response.json()["results"][0]
    assert usage["name"] == "private-apps-api-calls-daily"
    assert (usage["usageLimit"], usage["currentUsage"]) == (650_000, 2)
    assert usage["fetchStatus"] == "SUCCESS"
    assert usage["resetsAt"].endswith("T00:00:00.000Z")


def test_limits_can_be_switched_off(hubspot_sandbox_factory: SandboxFactory) -> None:
    sandbox = hubspot_sandbox_factory(rate_limits=False, ten_secondly_limit=1)
    for _ in range(3):
        _data, status, headers = get_page(sandbox)
        assert status == 200
        assert "X-HubSpot-RateLimit-Max" not in headers


# -- injected faults ----------------------------------------------------------------------------


def test_injected_5xx_reaches_the_sdk_as_service_exception(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1,), path="/crm/v3/objects")]
    )
    with pytest.raises(ServiceException) as exc:
        get_page(hubspot_sandbox)
    assert exc.value.status == 503
    assert body_of(exc.value)["status"] == "error"
    assert get_page(hubspot_sandbox)[1] == 200
    assert [c.fault for c in hubspot_sandbox.calls()] == ["status", None]


def test_an_injected_429_is_retried_by_urllib3_for_gets_after_retry_after(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, retry_after=1, on_calls=(1,))]
    )
    client = hubspot_sandbox.new_client(retry=Retry(total=2))
    started = time.monotonic()
    assert get_page(hubspot_sandbox, client)[1] == 200
    assert time.monotonic() - started >= 0.9
    assert [c.status for c in hubspot_sandbox.calls()] == [429, 200]


def test_an_injected_429_names_the_policy_given_as_code(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, code="SECONDLY", on_calls=(1,))]
    )
    with pytest.raises(ApiException) as exc:
        hubspot_sandbox.client.crm.contacts.search_api.do_search(
            public_object_search_request={"limit": 1}
        )
    assert body_of(exc.value)["policyName"] == "SECONDLY"


# -- error bodies against HubSpot's own ---------------------------------------------------------


def test_409_body_has_exactly_the_keys_hubspot_sends(hubspot_sandbox: HubSpotSandbox) -> None:
    api = hubspot_sandbox.client.crm.contacts.basic_api
    body = SimplePublicObjectInputForCreate(properties={"email": "twice@example.com"})
    api.create(simple_public_object_input_for_create=body)
    with pytest.raises(ApiException) as exc:
        api.create(simple_public_object_input_for_create=body)
    ours = body_of(exc.value)
    for case in ("already exists", "batch/create", "index lag"):
        real = example(409, case)["body"]
        assert set(ours) == set(real)
        assert (ours["status"], ours["category"]) == (real["status"], real["category"])
        prefix = real["message"].rsplit(":", 1)[0]
        assert ours["message"].startswith(prefix + ": ")
    assert exc.value.headers["Content-Type"] == "application/json;charset=utf-8"


def test_expired_401_body_carries_the_fields_hubspot_sends(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    hubspot_sandbox.control.control("expire_tokens")
    with pytest.raises(UnauthorizedException) as exc:
        get_page(hubspot_sandbox)
    ours = body_of(exc.value)
    seen = example(401, "Expired")["body_fields_seen"]
    assert set(seen) <= set(ours)
    assert ours["category"] == seen["category"]
    assert ours["message"].startswith("The OAuth token used to make this call expired")
    assert set(ours) == set(example(409, "already exists")["body"])
