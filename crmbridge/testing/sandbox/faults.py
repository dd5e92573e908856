"""Fault injection by rule: the failures real APIs produce, on demand and reproducibly.

A rule matches requests by method and path, and fires either with a probability drawn from a seeded
random generator or on exact call numbers (the n-th request that matches the rule). What firing does
depends on its kind; the vendor-specific parts (error bodies, which records of a batch fail) are
answered by the emulator, so a fault looks exactly like the vendor's own.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    STATUS = "status"
    """Answer with ``status`` and the vendor's error body, with ``Retry-After`` when set."""
    DROP = "drop"
    """Close the connection before the request is handled: nothing happened."""
    DROP_AFTER = "drop_after"
    """Handle the request (writes happen), then close the connection instead of answering."""
    DELAY = "delay"
    """Wait ``delay_ms`` before handling the request."""
    EXPIRE_SESSION = "expire_session"
    """Invalidate every session first, so the request is answered as an expired session."""
    PARTIAL = "partial"
    """Handle a batch request, failing ``fail_share`` of its records with the vendor's error."""


@dataclass
class FaultRule:
    """One fault and the requests it applies to.

    ``probability`` is the chance that a matching request fires the rule; ``on_calls`` lists the
    exact numbers (1-based, counted over the requests this rule matches) at which it fires.
    ``times`` caps how often it fires in all.
    """

    kind: FaultKind
    status: int = 503
    retry_after: float | None = None
    delay_ms: float = 0.0
    probability: float = 0.0
    on_calls: tuple[int, ...] = ()
    method: str | None = None
    path: str | None = None
    times: int | None = None
    fail_share: float = 0.5
    code: str | None = None
    matched: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        self.on_calls = tuple(self.on_calls)
        self._path_re = re.compile(self.path) if self.path else None
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability must be within 0..1, got {self.probability}")
        if not self.probability and not self.on_calls:
            raise ValueError("a fault rule needs a probability or on_calls")

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self._path_re and not self._path_re.search(path))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = str(self.kind)
        data["on_calls"] = list(self.on_calls)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {k: v for k, v in data.items() if k not in {"matched", "fired"}}
        return cls(**known)


@dataclass(frozen=True)
class Fault:
    """A rule that fired for one request, with the random source to pick failed records from."""

    rule: FaultRule
    rng: random.Random

    @property
    def kind(self) -> FaultKind:
        return self.rule.kind

    def failed_indexes(self, count: int) -> set[int]:
        """Which of a batch's ``count`` records fail (PARTIAL): at least one, never all but one."""
        if count <= 0:
            return set()
        chosen = {i for i in range(count) if self.rng.random() < self.rule.fail_share}
        return chosen or {self.rng.randrange(count)}


class FaultPlan:
    """The rules in force on one emulator, with a seeded generator so a run can be replayed."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.seed = seed
        self.rng = random.Random(seed)
        self.rules: list[FaultRule] = list(rules or [])

    def replace(self, rules: list[FaultRule], seed: int | None = None) -> None:
        with self._lock:
            self.rules = list(rules)
            if seed is not None:
                self.seed = seed
            self.rng = random.Random(self.seed)

    def pick(self, method: str, path: str) -> Fault | None:
        """The first rule that fires for this request, counting it as matched and fired."""
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, path):
                    continue
                rule.matched += 1
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if rule.matched in rule.on_calls or (
                    rule.probability and self.rng.random() < rule.probability
                ):
                    rule.fired += 1
                    return Fault(rule, random.Random(self.rng.random()))
            return None

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "rules": [r.to_dict() for r in self.rules]}
