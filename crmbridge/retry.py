"""One retry policy for every connector, on tenacity.

Only :class:`~crmbridge.errors.RetriableError` is retried (connectors translate 429, 5xx, dropped
connections, timeouts and expired sessions into it); a 4xx that will fail again, a spent daily
quota (:class:`~crmbridge.errors.QuotaExhausted`) or bad credentials propagate at once. The wait
honours the system's ``Retry-After`` when it gave one, otherwise grows exponentially with full
jitter; a ``Retry-After`` longer than the policy waits within one call ends the call instead (the
next cycle comes back later, rather than asking early again); total time is bounded; every retry,
and every call given up for a long ``Retry-After``, is logged with the call and the wait.

Retry single calls (a page, a batch), never a generator: a generator consumed by a failed attempt
is not replayed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exception,
)
from tenacity.stop import stop_base

from crmbridge.errors import RateLimited, RetriableError

T = TypeVar("T")
log = logging.getLogger("crmbridge.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry.

    :param attempts: the most attempts of one call (the first included).
    :param max_seconds: the most time spent on one call, waits included.
    :param base: the first backoff, in seconds (doubled each attempt).
    :param cap: the longest backoff.
    :param max_retry_after: the longest ``Retry-After`` waited for within a call; a longer one
        fails the call at once (the daemon comes back next cycle rather than sleeping for
        minutes, and never asks again before the system said it may).
    :param jitter_seed: seed for the jitter, so tests can replay waits.
    """

    attempts: int = 6
    max_seconds: float = 120.0
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    jitter_seed: int | None = None

    def wait_for(self, exc: BaseException, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before the next attempt after ``exc``."""
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(retry_after)
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))

    def waits_too_long(self, exc: BaseException | None) -> bool:
        """Whether ``exc`` asks for a longer wait than this policy waits within one call."""
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and float(retry_after) > self.max_retry_after


NO_WAIT = RetryPolicy(base=0.0, cap=0.0, max_retry_after=0.0)


class _LongRetryAfter(stop_base):
    """Stop when the system asks for a longer wait than the policy allows (logged once)."""

    def __init__(self, policy: RetryPolicy, describe: str, out: logging.Logger) -> None:
        self.policy = policy
        self.describe = describe
        self.out = out

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if not isinstance(exc, RetriableError) or not self.policy.waits_too_long(exc):
            return False
        self.out.warning(
            "not retrying %s: %s asks to wait %.0f s, longer than the %.0f s crmbridge waits "
            "within a call; the next cycle tries again: %s",
            self.describe,
            exc.system or "the system",
            exc.retry_after,
            self.policy.max_retry_after,
            exc,
        )
        return True


def call_with_retry(
    policy: RetryPolicy,
    fn: Callable[[], T],
    *,
    describe: str,
    logger: logging.Logger | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, retrying :class:`RetriableError` under ``policy``.

    :param describe: what the call is, for the log (``"hubspot POST batch/upsert (100 contacts)"``).
    :param sleep: the sleep function (tests pass one that records instead of sleeping).
    """
    rng = random.Random(policy.jitter_seed)
    out = logger or log

    def wait(exc: BaseException) -> float:
        return policy.wait_for(exc, attempt_number[0], rng)

    attempt_number = [1]

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        seconds = state.upcoming_sleep
        kind = f" ({exc.policy})" if isinstance(exc, RateLimited) and exc.policy else ""
        out.warning(
            "retrying %s in %.1f s (attempt %d of %d) after %s%s: %s",
            describe,
            seconds,
            state.attempt_number + 1,
            policy.attempts,
            type(exc).__name__,
            kind,
            exc,
        )
        attempt_number[0] = state.attempt_number + 1

    retrying = Retrying(
        retry=retry_if_exception_type(RetriableError),
        wait=wait_exception(wait),
        stop=(
            _LongRetryAfter(policy, describe, out)
            | stop_after_attempt(policy.attempts)
            | stop_before_delay(policy.max_seconds)
        ),
        before_sleep=before_sleep,
        reraise=True,
        sleep=_sleep if sleep is None else sleep,
    )
    return retrying(fn)


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
