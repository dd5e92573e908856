"""Client-side pacing, so crmbridge stays under HubSpot's rate limits instead of meeting 429s.

HubSpot counts requests per portal in a rolling window (ten seconds, or one second for search),
shared by every app installed there. A :class:`RollingPacer` keeps the send times of this
connector's recent requests and waits before a request that would exceed the limit. After each
answer it learns from HubSpot's ``X-HubSpot-RateLimit-Max``, ``-Remaining`` and
``-Interval-Milliseconds`` headers: a smaller limit or window than configured is adopted, and
requests other apps made in the window are counted as if they were ours, so the portal's shared
budget is respected too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

# A request is counted by HubSpot when it arrives, a little after this side counted it; keeping
# the window this much longer than HubSpot's absorbs that delay.
SLACK = 0.05


class RollingPacer:
    """At most ``limit`` requests in any rolling ``window`` seconds.

    :param limit: requests allowed per window (the configured ceiling; headers only lower it).
    :param window: the window in seconds.
    :param clock: a monotonic clock; ``sleep`` waits (both replaceable in tests).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ceiling = limit
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0
        """Seconds spent waiting so far (for logs and tests)."""

    def _expire(self, now: float) -> None:
        horizon = now - self.window * (1 + SLACK)
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def acquire(self) -> float:
        """Wait until one more request fits in the window, count it, and return the wait."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                self._expire(now)
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self.waited += waited
                    return waited
                pause = self._sent[0] + self.window * (1 + SLACK) - now
                pause = max(pause, 0.001)
                self._sleep(pause)
                waited += pause

    def observe(self, limit: int | None, remaining: int | None, window: float | None) -> None:
        """Learn from HubSpot's view of the window after an answer.

        :param limit: ``X-HubSpot-RateLimit-Max``; adopted when below the configured ceiling.
        :param remaining: ``X-HubSpot-RateLimit-Remaining``; what is left for the whole portal.
        :param window: ``X-HubSpot-RateLimit-Interval-Milliseconds`` in seconds.
        """
        with self._lock:
            if window is not None and window > 0:
                self.window = window
            if limit is not None and limit > 0:
                self.limit = min(self.ceiling, limit)
            if remaining is None:
                return
            now = self._clock()
            self._expire(now)
            used_by_portal = self.limit - max(0, remaining)
            # Requests other apps made count against the same window: hold their places.
            for _ in range(used_by_portal - len(self._sent)):
                self._sent.append(now)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """:meth:`observe` with the values read from response headers (absent ones ignored)."""
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        self.observe(
            _int(headers.get("X-HubSpot-RateLimit-Max")),
            _int(headers.get("X-HubSpot-RateLimit-Remaining")),
            interval / 1000.0 if interval else None,
        )


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
