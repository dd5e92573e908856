"""The one retry policy every connector shares (``crmbridge.retry``): what it retries, how long it
waits, when it gives up, and what it logs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from crmbridge import (
    AuthenticationError,
    FatalError,
    QuotaExhausted,
    RateLimited,
    SessionExpired,
    TransientError,
    WriteRejected,
)
from crmbridge.retry import RetryPolicy, call_with_retry


class Failing:
    """A call that raises the given errors in turn, then answers ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(policy: RetryPolicy, fn: Callable[[], str], waits: list[float] | None = None) -> str:
    sleep = waits.append if waits is not None else lambda _: None
    return call_with_retry(
        policy, fn, describe="hubspot POST batch/upsert (3 contacts)", sleep=sleep
    )


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("rate limited", retry_after=0.1, policy="TEN_SECONDLY_ROLLING"),
        TransientError("HubSpot answered 503: Service Unavailable"),
        TransientError("the connection to HubSpot failed (ProtocolError)"),
        SessionExpired("the session expired"),
    ],
    ids=["429", "5xx", "dropped", "session"],
)
def test_what_is_retriable_is_retried(error: Exception) -> None:
    fn = Failing(error, error)
    assert run(RetryPolicy(), fn) == "ok"
    assert fn.calls == 3


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FatalError("HubSpot answered 400 VALIDATION_ERROR: bad"), "400 VALIDATION_ERROR: bad"),
        (AuthenticationError("HubSpot refused the access token"), "refused the access token"),
        (QuotaExhausted("HubSpot's daily API limit is spent"), "daily API limit is spent"),
        (WriteRejected("Salesforce refused lead a@example.com"), "refused lead a@example.com"),
        (ValueError("a bug, not a fault"), "a bug, not a fault"),
    ],
    ids=["4xx", "credentials", "daily-quota", "record", "programming-error"],
)
def test_what_would_fail_again_is_not_retried(error: Exception, message: str) -> None:
    fn = Failing(error)
    with pytest.raises(type(error), match=message):
        run(RetryPolicy(), fn)
    assert fn.calls == 1


def test_retry_after_is_waited_for_exactly() -> None:
    waits: list[float] = []
    fn = Failing(RateLimited("slow down", retry_after=2.5), TransientError("503", retry_after=7))
    assert run(RetryPolicy(max_retry_after=10), fn, waits) == "ok"
    assert waits == [2.5, 7.0]


def test_a_retry_after_longer_than_the_policy_waits_ends_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    fn = Failing(
        RateLimited("rate limited by HubSpot (SECONDLY)", retry_after=300, system="hubspot")
    )
    with pytest.raises(RateLimited, match="rate limited by HubSpot"):
        run(RetryPolicy(max_retry_after=120), fn, waits)
    assert (fn.calls, waits) == (1, []), "never asked again before the system said it may"
    assert (
        "not retrying hubspot POST batch/upsert (3 contacts): hubspot asks to wait 300 s, longer "
        "than the 120 s crmbridge waits within a call; the next cycle tries again" in caplog.text
    )


def test_without_retry_after_the_backoff_grows_with_full_jitter() -> None:
    waits: list[float] = []
    policy = RetryPolicy(attempts=6, base=0.5, cap=3.0, jitter_seed=1)
    fn = Failing(*(TransientError("503") for _ in range(5)))
    assert run(policy, fn, waits) == "ok"
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(waits) == 5
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True)), waits
    assert len(set(waits)) == 5, "jittered, not fixed"
    again: list[float] = []
    run(policy, Failing(*(TransientError("503") for _ in range(5))), again)
    assert again == waits, "the same seed waits the same"


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    fn = Failing(*(TransientError(f"HubSpot answered 502 (try {i})") for i in range(1, 10)))
    with pytest.raises(TransientError, match=r"502 \(try 4\)"):
        run(RetryPolicy(attempts=4), fn)
    assert fn.calls == 4


def test_total_time_is_bounded() -> None:
    fn = Failing(*(RateLimited("429", retry_after=0.15) for _ in range(10)))
    started = time.monotonic()
    with pytest.raises(RateLimited):
        call_with_retry(RetryPolicy(max_seconds=0.4), fn, describe="salesforce query Lead")
    # Waits of 0.15 s: a third would end after 0.45 s, past the bound, so it is not started.
    assert fn.calls == 3
    assert time.monotonic() - started < 0.4


def test_each_retry_is_logged_with_the_call_the_wait_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="crmbridge.retry")
    fn = Failing(
        RateLimited("rate limited by HubSpot", retry_after=1.5, policy="TEN_SECONDLY_ROLLING"),
        TransientError("HubSpot answered 503: Service Unavailable"),
    )
    run(RetryPolicy(attempts=5, base=0.0, cap=0.0), fn, [])
    assert [r.getMessage() for r in caplog.records] == [
        "retrying hubspot POST batch/upsert (3 contacts) in 1.5 s (attempt 2 of 5) after "
        "RateLimited (TEN_SECONDLY_ROLLING): rate limited by HubSpot",
        "retrying hubspot POST batch/upsert (3 contacts) in 0.0 s (attempt 3 of 5) after "
        "TransientError: HubSpot answered 503: Service Unavailable",
    ]
