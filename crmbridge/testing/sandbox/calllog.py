"""The call log: every request an emulator answered, for tests and benchmarks to read."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Call:
    """One request an emulator answered.

    ``endpoint`` is the route's canonical name (``"POST composite/sobjects"``), so tests can count
    calls per API family without parsing paths; ``records_in`` and ``records_out`` are how many
    records the request carried and the response returned, as the emulator counted them.
    """

    n: int
    method: str
    path: str
    endpoint: str
    status: int
    latency_ms: float
    records_in: int = 0
    records_out: int = 0
    fault: str | None = None
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Call:
        return cls(**data)


@dataclass
class CallLog:
    """A thread-safe, append-only list of :class:`Call`, with counts by endpoint and status."""

    _calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 1

    def next_number(self) -> int:
        with self._lock:
            n = self._next
            self._next += 1
            return n

    def append(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def extend(self, calls: Iterable[Call]) -> None:
        with self._lock:
            self._calls.extend(calls)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(self.snapshot())

    def by_endpoint(self) -> Counter[str]:
        return Counter(call.endpoint for call in self.snapshot())

    def by_status(self) -> Counter[int]:
        return Counter(call.status for call in self.snapshot())

    def count(self, endpoint_prefix: str = "", *, status: int | None = None) -> int:
        """How many calls' endpoint starts with ``endpoint_prefix`` (and had ``status``)."""
        return sum(
            1
            for call in self.snapshot()
            if call.endpoint.startswith(endpoint_prefix)
            and (status is None or call.status == status)
        )

    def records_in(self, endpoint_prefix: str = "") -> int:
        return sum(c.records_in for c in self.snapshot() if c.endpoint.startswith(endpoint_prefix))
