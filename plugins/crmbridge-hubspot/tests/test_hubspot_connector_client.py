"""The HubSpot connector's calls through the real SDK against the sandbox: retries under
crmbridge's policy (429 with Retry-After, 5xx, dropped connections, timeouts), the daily quota,
refused tokens, one ApiClient per SDK package, pacing under the rate limits, and API usage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from crmbridge_hubspot.connector import HubSpotConnector
from crmbridge_hubspot.connector.errors import HubSpotRequestError
from crmbridge_hubspot.connector.pacing import RollingPacer
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import connector_for

from crmbridge import (
    AuthenticationError,
    Cursor,
    FatalError,
    LeadWrite,
    QuotaExhausted,
    RateLimited,
    TransientError,
)
from crmbridge.testing.sandbox import FaultKind, FaultRule

pytestmark = pytest.mark.sandbox

LIST = "GET /crm/v3/objects/contacts"


def seed(sandbox: HubSpotSandbox, count: int) -> list[str]:
    rows = [{"email": f"c{i}@example.com", "lastname": f"C{i}"} for i in range(count)]
    ids: list[str] = sandbox.control.control("seed_contacts", contacts=rows)
    return ids


def pull_all(connector: HubSpotConnector) -> int:
    return sum(len(batch.changes) for batch in connector.pull_changes(Cursor()))


def statuses(sandbox: HubSpotSandbox) -> list[int]:
    return [call.status for call in sandbox.calls()]


class Waits:
    """A sleep that records instead of sleeping."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def ready(sandbox: HubSpotSandbox, **settings: Any) -> HubSpotConnector:
    """A connector after ``setup``, with the call log emptied."""
    connector = connector_for(sandbox, **settings)
    connector.setup()
    sandbox.server.call_log.reset()
    return connector


def test_a_429_is_retried_after_its_retry_after(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 3)
    waits = Waits()
    connector = connector_for(hubspot_sandbox, sleep=waits, max_retry_after_seconds=10)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, retry_after=2, on_calls=(1,))]
    )
    assert pull_all(connector) == 3
    assert statuses(hubspot_sandbox) == [429, 200]
    assert waits.seconds == [2.0]


def test_a_429_without_retry_after_backs_off(
    hubspot_sandbox: HubSpotSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    seed(hubspot_sandbox, 1)
    waits = Waits()
    connector = connector_for(hubspot_sandbox, sleep=waits)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=429, on_calls=(1,), code="SECONDLY")]
    )
    assert pull_all(connector) == 1
    assert len(waits.seconds) == 1
    assert 0 <= waits.seconds[0] <= 0.05
    assert "RateLimited (SECONDLY)" in caplog.text


@pytest.mark.hubspot_sandbox(daily_limit=2)
def test_the_daily_limit_stops_without_retrying(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 250)
    waits = Waits()
    connector = connector_for(hubspot_sandbox, sleep=waits)
    with pytest.raises(QuotaExhausted) as caught:
        pull_all(connector)
    assert statuses(hubspot_sandbox) == [200, 200, 429]
    assert waits.seconds == []
    assert caught.value.resets_at is not None
    assert caught.value.resets_at > datetime.now(UTC)
    assert "daily" in str(caught.value)
    usage = connector.api_usage()
    assert usage.remaining == 0
    assert usage.calls == 3


def test_an_injected_daily_429_is_a_spent_quota(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    hubspot_sandbox.set_faults(
        [
            FaultRule(
                kind=FaultKind.STATUS, status=429, code="DAILY", retry_after=3600, on_calls=(1,)
            )
        ]
    )
    with pytest.raises(QuotaExhausted) as caught:
        pull_all(connector)
    assert caught.value.resets_at is not None
    assert caught.value.resets_at - datetime.now(UTC) > timedelta(minutes=59)
    assert len(hubspot_sandbox.calls()) == 1


def test_5xx_answers_are_retried_also_for_posts(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = ready(hubspot_sandbox)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.STATUS, status=503, on_calls=(1, 2), method="POST")]
    )
    [result] = connector.push_leads(
        [LeadWrite(email="p@example.com", crmbridge_id="cb-p", fields={"last_name": "P"})]
    )
    assert result.ok
    assert statuses(hubspot_sandbox) == [503, 503, 200]


def test_dropped_connections_are_retried(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 2)
    connector = connector_for(hubspot_sandbox)
    hubspot_sandbox.set_faults([FaultRule(kind=FaultKind.DROP, on_calls=(1,))])
    assert pull_all(connector) == 2
    assert [c.fault for c in hubspot_sandbox.calls()] == ["drop", None]


def test_a_write_whose_answer_was_lost_is_retried_without_duplicates(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = ready(hubspot_sandbox)
    hubspot_sandbox.set_faults(
        [FaultRule(kind=FaultKind.DROP_AFTER, on_calls=(1,), path="/batch/upsert")]
    )
    writes = [
        LeadWrite(email=f"d{i}@example.com", crmbridge_id=f"cb-d{i}", fields={"last_name": "D"})
        for i in range(5)
    ]
    results = connector.push_leads(writes)
    assert all(r.ok for r in results)
    assert hubspot_sandbox.emulator.portal.store.live_count() == 5
    assert [c.fault for c in hubspot_sandbox.calls()] == ["drop_after", None]


def test_retries_give_up_with_a_transient_error(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox, retry_attempts=3)
    hubspot_sandbox.set_faults([FaultRule(kind=FaultKind.STATUS, status=502, probability=1.0)])
    with pytest.raises(TransientError, match=r"GET objects/contacts .*502"):
        pull_all(connector)
    assert statuses(hubspot_sandbox) == [502, 502, 502]


def test_every_call_has_a_timeout(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 1)
    connector = ready(hubspot_sandbox, timeout_seconds=0.3)
    hubspot_sandbox.set_faults(
        [
            FaultRule(kind=FaultKind.DELAY, delay_ms=2000, on_calls=(1,), method="GET"),
            FaultRule(kind=FaultKind.DELAY, delay_ms=2000, on_calls=(1,), method="POST"),
        ]
    )
    started = time.monotonic()
    assert pull_all(connector) == 1
    [result] = connector.push_leads(
        [LeadWrite(email="t@example.com", crmbridge_id="cb-t", fields={"last_name": "T"})]
    )
    assert result.ok
    # Two calls gave up after 0.3 s each and were sent again, instead of waiting 2 s each.
    assert time.monotonic() - started < 1.9


def test_a_refused_token_is_an_authentication_error_not_retried(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = connector_for(hubspot_sandbox, access_token="pat-wrong")
    with pytest.raises(AuthenticationError) as caught:
        pull_all(connector)
    assert "CRMBRIDGE_HUBSPOT__ACCESS_TOKEN" in str(caught.value)
    assert statuses(hubspot_sandbox) == [401]
    report = connector.check()
    assert not report.ok
    [item] = report.items
    assert (item.level, item.subject) == ("error", "token")


def test_an_expired_token_says_so(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    hubspot_sandbox.control.control("expire_tokens")
    with pytest.raises(AuthenticationError, match="expired"):
        pull_all(connector)


def test_missing_scopes_are_fatal_and_named(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    hubspot_sandbox.set_faults([FaultRule(kind=FaultKind.STATUS, status=403, on_calls=(1,))])
    with pytest.raises(FatalError, match=r"crm\.objects\.contacts\.read"):
        pull_all(connector)


def test_other_refusals_name_the_call(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    hubspot_sandbox.set_faults([FaultRule(kind=FaultKind.STATUS, status=400, on_calls=(1,))])
    with pytest.raises(HubSpotRequestError) as caught:
        pull_all(connector)
    assert caught.value.status == 400
    assert caught.value.category == "VALIDATION_ERROR"
    assert "GET objects/contacts" in str(caught.value)
    assert not isinstance(caught.value, RateLimited)
    assert len(hubspot_sandbox.calls()) == 1


def test_one_api_client_per_sdk_package_for_the_connectors_life(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    seed(hubspot_sandbox, 5)
    connector = connector_for(hubspot_sandbox)
    connector.setup()
    connector.check()
    for _ in range(3):
        pull_all(connector)
    connector.push_leads(
        [
            LeadWrite(
                email="o@example.com", crmbridge_id="cb-o", owner="ava.stone@sandbox-sales.example"
            )
        ]
    )
    assert len(hubspot_sandbox.calls()) > 20
    # contacts, properties, owners: one ApiClient (and connection pool) each, however many calls.
    assert connector.client.api_clients_built == 3
    assert connector.client.batch_api is connector.client.batch_api
    connector.close()


# A window long enough that even a loaded machine sends its 10 calls inside it (and must wait).
@pytest.mark.hubspot_sandbox(ten_secondly_limit=10, window_seconds=1.0)
def test_requests_are_paced_under_the_limit_the_headers_announce(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    seed(hubspot_sandbox, 25)
    connector = connector_for(hubspot_sandbox, page_size=1)
    assert pull_all(connector) == 25
    assert set(statuses(hubspot_sandbox)) == {200}
    assert connector.client.pacer.limit == 10
    assert connector.client.pacer.window == 1.0
    assert connector.client.pacer.waited > 0


@pytest.mark.hubspot_sandbox(search_per_second=30)
def test_searches_are_paced_per_second(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 40)
    connector = connector_for(hubspot_sandbox, search_page_size=1, search_per_second=30)
    cursor = Cursor({"phase": "incremental", "since_ms": 0, "archived_since_ms": 0})
    assert sum(len(b.changes) for b in connector.pull_changes(cursor)) == 40
    assert set(statuses(hubspot_sandbox)) == {200}
    assert connector.client.search_pacer.waited > 0


def test_the_pacer_holds_the_places_other_apps_used() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = RollingPacer(190, 10.0, clock=lambda: now[0], sleep=sleep)
    pacer.acquire()
    pacer.observe_headers(
        {
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "2",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
    )
    assert pacer.limit == 100
    pacer.acquire()
    pacer.acquire()
    assert slept == []
    pacer.acquire()
    assert len(slept) == 1
    assert 9 < slept[0] <= 10.5


def test_api_usage_is_read_from_headers_without_spending_a_call(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    seed(hubspot_sandbox, 150)
    connector = connector_for(hubspot_sandbox)
    before = connector.api_usage()
    assert (before.calls, before.used, before.limit) == (0, None, None)
    pull_all(connector)
    usage = connector.api_usage()
    stats: dict[str, Any] = hubspot_sandbox.control.control("stats")
    assert usage.calls == len(hubspot_sandbox.calls()) == 2
    assert usage.limit == 650_000
    assert usage.used == stats["api_usage_today"]
    assert usage.window == "daily"
    assert len(hubspot_sandbox.calls()) == 2
