"""Scoring and disqualification rules: compiled from the definition, applied to a lead."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmbridge.textutil import listing, show

if TYPE_CHECKING:
    from crmbridge.definition import LeadDefinition
    from crmbridge.tomlreader import TomlReader

RULE_TESTS = ("equals", "in", "not_in", "matches", "gte", "lte", "between", "present", "absent")


@dataclass(frozen=True, slots=True)
class ScoreReason:
    """Points one rule gave (or took), and why."""

    rule: str
    dimension: str
    points: int
    detail: str

    def __str__(self) -> str:
        return f"{self.dimension} {self.points:+d} {self.rule}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ScoreCard:
    """A lead's score: fit, engagement, their total, and every reason."""

    fit: int
    engagement: int
    reasons: tuple[ScoreReason, ...] = ()

    @property
    def total(self) -> int:
        return self.fit + self.engagement

    @classmethod
    def from_reasons(cls, reasons: Iterable[ScoreReason]) -> ScoreCard:
        listed = tuple(reasons)
        fit = sum(r.points for r in listed if r.dimension == "fit")
        return cls(fit=fit, engagement=sum(r.points for r in listed) - fit, reasons=listed)


@dataclass(frozen=True, slots=True)
class ScoreRule:
    """One scoring (or disqualification) rule, compiled."""

    id: str
    dimension: str
    field: str
    test: str
    arg: Any
    points: int = 0
    per: float | None = None
    max: int | None = None
    reason: str | None = None
    check: Callable[[Any], bool] = dataclasses.field(
        default=lambda _v: False, compare=False, repr=False
    )
    phrase: str = dataclasses.field(default="", compare=False, repr=False)

    def apply(self, value: Any) -> ScoreReason | None:
        """The points this rule gives for ``value``, or ``None`` when it does not apply."""
        if self.per is not None:
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                return None
            units = int(value // self.per)
            if units <= 0:
                return None
            points = units * self.points
            if self.max is not None:
                points = min(points, self.max) if points > 0 else max(points, -self.max)
            capped = " (capped)" if self.max is not None and abs(points) == abs(self.max) else ""
            per = int(self.per) if self.per.is_integer() else self.per
            detail = f"{self.field} = {value}, {self.points:+d} per {per}{capped}"
            return ScoreReason(self.id, self.dimension, points, detail)
        if not self.check(value):
            return None
        return ScoreReason(self.id, self.dimension, self.points, self.describe(value))

    def describe(self, value: Any) -> str:
        phrase = self.phrase or rule_phrase(self.test, self.arg)
        return (
            f"{self.field} {show(value)!s} {phrase}"
            if value not in (None, "")
            else f"{self.field} {phrase}"
        )


def rule_phrase(test: str, arg: Any) -> str:
    """What a rule's test says, in words (``is one of Software, Healthcare``)."""
    shown = ", ".join(map(str, arg)) if isinstance(arg, list | tuple) else show(arg)
    return {
        "equals": f"is {shown}",
        "in": f"is one of {shown}",
        "not_in": f"is none of {shown}",
        "matches": f"matches /{shown}/",
        "gte": f"≥ {shown}",
        "lte": f"≤ {shown}",
        "between": f"is between {shown}",
        "present": "is present",
        "absent": "is absent",
        "per": "",
    }[test]


def compile_rule(
    r: TomlReader, d: LeadDefinition, spec: Any, key: str, dimension: str
) -> ScoreRule | None:
    if not isinstance(spec, Mapping):
        r.problem(key, "must be a table", "")
        return None
    r.unknown_keys(spec, key, {"id", "field", "points", "per", "max", "reason", *RULE_TESTS})
    rule_id = r.require_str(spec, "id", key) or key
    field_name = r.require_str(spec, "field", key) or ""
    if field_name and field_name not in d.fields:
        r.problem(
            f"{key}.field",
            f"field {field_name!r} is not in [fields]",
            f"use one of {listing(d.fields)}",
        )
    tests = [t for t in RULE_TESTS if t in spec]
    per = r.opt_number(spec, "per", key)
    points = r.opt_int(spec, "points", key)
    if dimension != "disqualify" and points is None:
        r.problem(f"{key}.points", "is missing", "set the points this rule gives")
    if per is None and len(tests) != 1:
        r.problem(
            key, f"needs exactly one test, found {len(tests)}", f"use one of {listing(RULE_TESTS)}"
        )
        return None
    if per is not None and per <= 0:
        r.problem(f"{key}.per", "must be positive", "e.g. per = 1")
        return None
    test = tests[0] if tests else "per"
    arg = spec.get(test)
    check = rule_check(r, f"{key}.{test}", test, arg) if tests else (lambda _v: False)
    if (
        dimension == "disqualify"
        and spec.get("reason") is not None
        and spec["reason"] not in d.reasons
    ):
        r.problem(
            f"{key}.reason",
            f"unknown reason {spec['reason']!r}",
            f"use one of {listing(d.reasons)}",
        )
    return ScoreRule(
        id=rule_id,
        dimension=dimension,
        field=field_name,
        test=test,
        arg=arg,
        points=points or 0,
        per=per,
        max=r.opt_int(spec, "max", key),
        reason=r.opt_str(spec, "reason", key),
        check=check,
        phrase=rule_phrase(test, arg),
    )


def rule_check(r: TomlReader, key: str, test: str, arg: Any) -> Callable[[Any], bool]:
    def fold(v: Any) -> Any:
        return v.casefold() if isinstance(v, str) else v

    def number(v: Any) -> float | None:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    if test == "equals":
        want = fold(arg)
        return lambda v: v is not None and fold(v) == want
    if test in ("in", "not_in"):
        if not isinstance(arg, list):
            r.problem(key, "must be a list", f'e.g. {test} = ["a", "b"]')
            return lambda _v: False
        options = frozenset(fold(a) for a in arg)
        if test == "in":
            return lambda v: v is not None and fold(v) in options
        return lambda v: v is not None and fold(v) not in options
    if test == "matches":
        try:
            pattern = re.compile(str(arg))
        except re.error as exc:
            r.problem(key, f"is not a valid regular expression: {exc}", "fix the pattern")
            return lambda _v: False
        return lambda v: v is not None and pattern.search(str(v)) is not None
    if test in ("gte", "lte"):
        bound = number(arg)
        if bound is None:
            r.problem(key, f"must be a number, not {arg!r}", "")
            return lambda _v: False
        if test == "gte":
            return lambda v: (n := number(v)) is not None and n >= bound
        return lambda v: (n := number(v)) is not None and n <= bound
    if test == "between":
        if not (
            isinstance(arg, list) and len(arg) == 2 and all(number(a) is not None for a in arg)
        ):
            r.problem(key, "must be a list of two numbers", "e.g. between = [50, 200]")
            return lambda _v: False
        low, high = float(arg[0]), float(arg[1])
        return lambda v: (n := number(v)) is not None and low <= n <= high
    if test == "present":
        return lambda v: v not in (None, "")
    return lambda v: v in (None, "")
