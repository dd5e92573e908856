"""Rate limits as the vendors count them: rolling windows and daily budgets."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class RollingWindow:
    """At most ``limit`` events in any ``seconds``-long window (a sliding log).

    ``acquire()`` returns ``None`` when the event is allowed (and counts it), otherwise the number
    of seconds until the oldest event leaves the window, which is what a ``Retry-After`` would say.
    """

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit <= 0 or seconds <= 0:
            raise ValueError("a rolling window needs a positive limit and length")
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        horizon = now - self.seconds
        while self._events and self._events[0] <= horizon:
            self._events.popleft()

    def acquire(self) -> float | None:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._events) >= self.limit:
                return max(0.001, self._events[0] + self.seconds - now)
            self._events.append(now)
            return None

    def remaining(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return self.limit - len(self._events)


@dataclass
class DailyBudget:
    """A count of calls against a daily maximum (Salesforce's rolling 24 h, HubSpot's daily)."""

    limit: int
    used: int = 0

    def acquire(self) -> bool:
        """Count one call; False once the budget is spent (the call is refused, not counted)."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)
