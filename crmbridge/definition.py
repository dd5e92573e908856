"""The shared lead definition: load it, validate leads, score, qualify, judge stage changes, and
translate between the shared language and each system's own fields and picklist values.

The definition lives in one TOML file (``configs/lead-definition.toml``). Loading validates all of
it and reports every problem with the file, the key and the fix. Every decision made with it carries
its ``version`` and a hash of its content (:attr:`LeadDefinition.stamp`), so a decision can always
be traced to the rules that made it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from crmbridge.errors import DefinitionError, DefinitionProblem, MappingError
from crmbridge.lead import Lead, OutcomeKind, Stage, normalize_email

FIELD_TYPES = (
    "string",
    "email",
    "phone",
    "url",
    "integer",
    "number",
    "boolean",
    "datetime",
    "choice",
)
ROLES = ("marketing", "sales")
RULE_TESTS = ("equals", "in", "not_in", "matches", "gte", "lte", "between", "present", "absent")
MEANINGS = ("stage", "outcome", "reason", "value")

# -- the shapes the definition answers with -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """A lead breaking the definition: the field, the rule it broke, and a sentence about it."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (rule {self.rule})"


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
class Qualification:
    """The stage a lead qualifies for and the reasons, in words a person can check."""

    stage: str
    reasons: tuple[str, ...]
    disqualified_by: str | None = None


class Cause(StrEnum):
    """Why a stage change is asked for; the definition judges each differently."""

    QUALIFICATION = "qualification"
    """crmbridge's own scoring and qualification."""
    OUTCOME = "outcome"
    """Sales' verdict (accepted, rejected, recycled, converted, won, lost)."""
    SYSTEM = "system"
    """A stage read from a connected system (someone changed it there)."""
    MANUAL = "manual"
    """An operator, by hand, through crmbridge."""


@dataclass(frozen=True, slots=True)
class TransitionDecision:
    """Whether a stage change is allowed, and why (or why not)."""

    allowed: bool
    from_stage: str | None
    to_stage: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecycleHistory:
    """What the loop guard needs to know about a lead's past recycles."""

    recycles: int = 0
    last_recycled_at: datetime | None = None
    engaged_since: bool = False


# -- the parts of a definition -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A shared field: its type, constraints, the stage it is required from, and its owner."""

    name: str
    type: str
    required_at: str | None = None
    owner: str = "marketing"
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    label: str = ""


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
            detail = (
                f"{self.field} = {_show(value)}, {self.points:+d} per {_show(self.per)}{capped}"
            )
            return ScoreReason(self.id, self.dimension, points, detail)
        if not self.check(value):
            return None
        return ScoreReason(self.id, self.dimension, self.points, self.describe(value))

    def describe(self, value: Any) -> str:
        arg = self.arg
        shown = ", ".join(map(str, arg)) if isinstance(arg, list | tuple) else _show(arg)
        phrase = {
            "equals": f"is {shown}",
            "in": f"is one of {shown}",
            "not_in": f"is none of {shown}",
            "matches": f"matches /{shown}/",
            "gte": f"≥ {shown}",
            "lte": f"≤ {shown}",
            "between": f"is between {shown}",
            "present": "is present",
            "absent": "is absent",
        }[self.test]
        return (
            f"{self.field} {_show(value)!s} {phrase}"
            if value is not None
            else f"{self.field} {phrase}"
        )


@dataclass(frozen=True, slots=True)
class Threshold:
    """The score (and optionally fit and engagement) a lead needs to reach a stage."""

    stage: str
    score: int
    fit: int | None = None
    engagement: int | None = None


@dataclass(frozen=True, slots=True)
class HandoffSpec:
    """Where marketing hands the lead to sales, and how long sales has to answer."""

    stage: str
    sla_hours: float
    sla_hours_by_source: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class OutcomeSpec:
    """Where an outcome sends the lead."""

    kind: OutcomeKind
    stage: str
    stage_with_opportunity: str | None = None
    reason_required: bool = False


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    """A reason sales can give for a rejection or a loss."""

    code: str
    label: str
    applies_to: tuple[OutcomeKind, ...]
    stage: str | None = None


@dataclass(frozen=True, slots=True)
class RecycleSpec:
    """Recycling back to nurture, and the loop guard."""

    stage: str
    requalify_after_days: float
    max_recycles: int


@dataclass(frozen=True, slots=True)
class PicklistValue:
    """One native picklist value and what it means in the shared language."""

    native: str
    stage: str | None = None
    outcome: OutcomeKind | None = None
    reason: str | None = None
    value: str | None = None
    also: tuple[str, ...] = ()
    write: bool = True
    ignore: bool = False


@dataclass(frozen=True)
class Drift:
    """A difference between the definition and a system's real picklist."""

    system: str
    picklist: str
    value: str
    kind: str  # "unmapped" (in the system, not the definition) or "missing" (the reverse)
    message: str

    def __str__(self) -> str:
        return self.message


class Picklist:
    """A native picklist's values and their meanings, readable both ways."""

    def __init__(self, system: str, key: str, values: Sequence[PicklistValue], filename: str):
        self.system = system
        self.key = key
        self.filename = filename
        self.values = {v.native: v for v in values}
        self._folded = {v.native.casefold(): v for v in values}
        self._writers: dict[tuple[str, str], str] = {}
        for v in values:
            if v.ignore or not v.write:
                continue
            for kind, shared in _meanings_written(v):
                self._writers.setdefault((kind, shared), v.native)

    @property
    def field(self) -> str:
        """The native field name (``"Status"`` for ``"Lead.Status"``)."""
        return self.key.rsplit(".", 1)[-1]

    def read(self, native: str) -> PicklistValue:
        """The meaning of a native value; an unmapped value is a :class:`MappingError`."""
        found = self.values.get(native) or self._folded.get(str(native).casefold())
        if found is None:
            raise MappingError(
                f"{self.filename}: [systems.{self.system}.picklists.{_q(self.key)}] has no mapping "
                f"for {self.key} {native!r}",
                system=self.system,
                field=self.key,
                rule="picklist_mapping",
                hint="add it to the definition or mark it `ignore = true`",
            )
        return found

    def write(self, kind: str, shared: str) -> str:
        """The native value to write for a shared stage/outcome/reason/value."""
        native = self._writers.get((kind, shared))
        if native is None:
            raise MappingError(
                f"{self.filename}: [systems.{self.system}.picklists.{_q(self.key)}] has no value "
                f"written for {kind} {shared!r}",
                system=self.system,
                field=self.key,
                rule="picklist_mapping",
                hint=f"map a native value to {kind} = {shared!r} (or list it in `also`)",
            )
        return native

    def can_write(self, kind: str, shared: str) -> bool:
        return (kind, shared) in self._writers

    def drift(self, actual: Iterable[str]) -> list[Drift]:
        """Values the system has that the definition does not map, and the reverse."""
        actual_set = set(actual)
        where = f"[systems.{self.system}.picklists.{_q(self.key)}]"
        found = [
            Drift(
                self.system,
                self.key,
                value,
                "unmapped",
                f"{self.filename}: {where} has no mapping for {self.key} {value!r} (found in the "
                f"{self.system} picklist); add it or mark it `ignore = true`",
            )
            for value in sorted(actual_set - set(self.values))
        ]
        found += [
            Drift(
                self.system,
                self.key,
                value,
                "missing",
                f"{self.filename}: {where} maps {self.key} {value!r}, which the {self.system} "
                f"picklist does not have; add the value in {self.system} or remove it here",
            )
            for value in sorted(set(self.values) - actual_set)
        ]
        return found


def _meanings_written(v: PicklistValue) -> list[tuple[str, str]]:
    kind = next((k for k in MEANINGS if getattr(v, k) is not None), None)
    if kind is None:
        return []
    primary = str(getattr(v, kind))
    return [(kind, primary), *((kind, extra) for extra in v.also)]


class SystemMapping:
    """How one system spells the shared language: fields, picklists, and which role it plays."""

    def __init__(
        self,
        *,
        name: str,
        label: str,
        role: str,
        fields: Mapping[str, str],
        picklists: Mapping[str, Picklist],
        stage_field: str | None,
        outcome_field: str | None,
        definition: LeadDefinition,
    ) -> None:
        self.name = name
        self.label = label
        self.role = role
        self.fields = dict(fields)
        self.native_to_shared = {v: k for k, v in self.fields.items()}
        self.picklists = dict(picklists)
        self.stage_field = stage_field
        self.outcome_field = outcome_field
        self._definition = definition

    def picklist(self, key: str) -> Picklist:
        found = self.picklists.get(key)
        if found is None:
            raise MappingError(
                f"{self._definition.filename}: [systems.{self.name}.picklists] has no picklist "
                f"{key!r}",
                system=self.name,
                field=key,
                rule="picklist_mapping",
            )
        return found

    def picklist_for_field(self, native_field: str) -> Picklist | None:
        """The picklist of a native field (``"LeadSource"`` finds ``"Lead.LeadSource"``)."""
        for key, picklist in self.picklists.items():
            if key == native_field or key.endswith("." + native_field):
                return picklist
        return None

    # -- stages and outcomes -----------------------------------------------------------------

    def stage_to_native(self, stage: str) -> str:
        if self.stage_field is None:
            raise MappingError(f"system {self.name} has no stage_field", system=self.name)
        return self.picklist(self.stage_field).write("stage", stage)

    def stage_from_native(self, value: str) -> str | None:
        """The shared stage a native stage value means (``None`` for an ignored value)."""
        if self.stage_field is None:
            return None
        return self.picklist(self.stage_field).read(value).stage

    def outcome_to_native(self, kind: OutcomeKind) -> str:
        if self.outcome_field is None:
            raise MappingError(f"system {self.name} has no outcome_field", system=self.name)
        return self.picklist(self.outcome_field).write("outcome", str(kind))

    def outcome_from_native(self, value: str, picklist: str | None = None) -> OutcomeKind | None:
        key = picklist or self.outcome_field
        if key is None:
            return None
        return self.picklist(key).read(value).outcome

    def reason_from_native(self, picklist: str, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        return self.picklist(picklist).read(str(value)).reason

    # -- fields ----------------------------------------------------------------------------

    def from_native(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
        """Shared fields from a native record, coerced to their types, with the problems found.

        Fields the system does not map are absent; a choice field's native value goes through its
        picklist (an unmapped value is a problem, never passed through).
        """
        out: dict[str, Any] = {}
        problems: list[Problem] = []
        specs = self._definition.fields
        for native, shared in self.native_to_shared.items():
            if native not in record:
                continue
            raw = record[native]
            if raw is None or raw == "":
                out[shared] = None
                continue
            picklist = self.picklist_for_field(native)
            if picklist is not None:
                try:
                    meaning = picklist.read(str(raw))
                except MappingError as exc:
                    problems.append(Problem(shared, "picklist_mapping", exc.message))
                    continue
                out[shared] = None if meaning.ignore else (meaning.value or str(raw))
                continue
            value, problem = coerce(specs[shared], raw)
            if problem is not None:
                problems.append(problem)
            else:
                out[shared] = value
        return out, problems

    def to_native(
        self, fields: Mapping[str, Any], *, only: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Native field values for shared ``fields`` (restricted to ``only`` when given).

        A choice value with no native value to write is a :class:`MappingError`.
        """
        wanted = set(only) if only is not None else None
        out: dict[str, Any] = {}
        for shared, native in self.fields.items():
            if shared not in fields or (wanted is not None and shared not in wanted):
                continue
            value = fields[shared]
            picklist = self.picklist_for_field(native)
            if picklist is not None and value not in (None, ""):
                value = picklist.write("value", str(value))
            out[native] = value
        return out

    def writable_fields(self, *, creating: bool) -> list[str]:
        """Shared fields crmbridge may write to this system: those it does not own.

        A field owned by this system (or its role) is never overwritten; when ``creating`` a
        record there is nothing to overwrite, so every mapped field may be written.
        """
        if creating:
            return list(self.fields)
        return [f for f in self.fields if not self._definition.owned_by(f, self)]


# -- the definition ------------------------------------------------------------------------------


class LeadDefinition:
    """The loaded, validated lead definition. Build it with :meth:`load` or :meth:`from_text`."""

    def __init__(self, data: Mapping[str, Any], *, filename: str, path: Path | None) -> None:
        self.filename = filename
        self.path = path
        self.data = data
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        self.content_hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        reader = _Reader(filename)
        self.version: str = reader.require_str(data, "version") or ""
        self.name: str = reader.opt_str(data, "name") or ""
        self._build(reader, data)
        reader.raise_if_any()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> LeadDefinition:
        """Read and validate a definition file; :class:`DefinitionError` lists every problem."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise DefinitionError(
                file.name,
                [DefinitionProblem("file", f"cannot be read ({exc.strerror})", f"check {file}")],
            ) from exc
        return cls.from_text(text, filename=file.name, path=file)

    @classmethod
    def from_text(
        cls, text: str, *, filename: str = "lead-definition.toml", path: Path | None = None
    ) -> LeadDefinition:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DefinitionError(
                filename, [DefinitionProblem("file", f"is not valid TOML: {exc}", "fix the syntax")]
            ) from exc
        return cls(data, filename=filename, path=path)

    def _build(self, r: _Reader, data: Mapping[str, Any]) -> None:
        self._build_stages(r, data)
        self._build_fields(r, data)
        self._build_reasons(r, data)
        self.fit_rules = self._build_rules(r, data, "scoring.fit", "fit")
        self.engagement_rules = self._build_rules(r, data, "scoring.engagement", "engagement")
        self.disqualify_rules = self._build_rules(r, data, "disqualify", "disqualify")
        self._build_handoff(r, data)
        self._build_thresholds(r, data)
        self._build_outcomes(r, data)
        self._build_recycle(r, data)
        self._build_systems(r, data)
        r.unknown_keys(
            data,
            "",
            {
                "version", "name", "stages", "fields", "scoring", "thresholds", "disqualify",
                "handoff", "outcomes", "reasons", "recycle", "systems",
            },
        )  # fmt: skip

    def _build_stages(self, r: _Reader, data: Mapping[str, Any]) -> None:
        table = r.require_table(data, "stages")
        funnel = r.str_list(table, "stages.funnel", required=True)
        side = r.str_list(table, "stages.side")
        labels = r.table(table, "stages.labels")
        self.stages: dict[str, Stage] = {}
        for i, name in enumerate(funnel):
            self._add_stage(r, Stage(name, i, str(labels.get(name, name))), "stages.funnel")
        for name in side:
            self._add_stage(r, Stage(name, None, str(labels.get(name, name))), "stages.side")
        if not funnel:
            r.problem("stages.funnel", "is empty", "list the funnel stages in order")
        self.funnel = [self.stages[s] for s in funnel if s in self.stages]
        for name in labels:
            r.check_stage(self, "stages.labels", name)

    def _add_stage(self, r: _Reader, stage: Stage, key: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", stage.name):
            r.problem(key, f"stage name {stage.name!r} is not a lower-case identifier", "rename it")
        if stage.name in self.stages:
            r.problem(key, f"stage {stage.name!r} is listed twice", "list each stage once")
            return
        self.stages[stage.name] = stage

    def _build_fields(self, r: _Reader, data: Mapping[str, Any]) -> None:
        self.fields: dict[str, FieldSpec] = {}
        for name, spec in r.require_table(data, "fields").items():
            key = f"fields.{name}"
            if not isinstance(spec, Mapping):
                r.problem(key, "must be a table", f"write [{key}] with a `type`")
                continue
            r.unknown_keys(
                spec,
                key,
                {"type", "required_at", "owner", "max_length", "min", "max", "choices", "label"},
            )
            ftype = r.require_str(spec, "type", key)
            if ftype and ftype not in FIELD_TYPES:
                r.problem(
                    f"{key}.type", f"unknown type {ftype!r}", f"use one of {_list(FIELD_TYPES)}"
                )
            required_at = r.opt_str(spec, "required_at", key)
            if required_at is not None:
                r.check_stage(self, f"{key}.required_at", required_at, funnel_only=True)
            owner = r.opt_str(spec, "owner", key) or "marketing"
            choices = tuple(r.str_list(spec, f"{key}.choices"))
            if ftype == "choice" and not choices:
                r.problem(f"{key}.choices", "is missing for a choice field", "list the choices")
            self.fields[name] = FieldSpec(
                name=name,
                type=ftype or "string",
                required_at=required_at,
                owner=owner,
                max_length=r.opt_int(spec, "max_length", key),
                min=r.opt_number(spec, "min", key),
                max=r.opt_number(spec, "max", key),
                choices=choices,
                label=r.opt_str(spec, "label", key) or name,
            )
        if "email" not in self.fields:
            r.problem("fields.email", "is missing; the email is every lead's identity", "add it")
        elif self.fields["email"].type != "email":
            r.problem("fields.email.type", "must be `email`", 'set type = "email"')

    def _build_rules(
        self, r: _Reader, data: Mapping[str, Any], dotted: str, dimension: str
    ) -> list[ScoreRule]:
        node: Any = data
        for part in dotted.split("."):
            node = node.get(part, []) if isinstance(node, Mapping) else []
        if not isinstance(node, list):
            r.problem(dotted, "must be an array of tables", f"write each rule as [[{dotted}]]")
            return []
        rules: list[ScoreRule] = []
        seen: set[str] = set()
        for i, spec in enumerate(node):
            rule = _compile_rule(r, self, spec, f"{dotted}[{i}]", dimension)
            if rule is None:
                continue
            if rule.id in seen:
                r.problem(f"{dotted}[{i}].id", f"rule id {rule.id!r} is used twice", "rename one")
            seen.add(rule.id)
            rules.append(rule)
        return rules

    def _build_handoff(self, r: _Reader, data: Mapping[str, Any]) -> None:
        table = r.require_table(data, "handoff")
        r.unknown_keys(table, "handoff", {"stage", "sla_hours", "sla_hours_by_source"})
        stage = r.require_str(table, "stage", "handoff") or ""
        r.check_stage(self, "handoff.stage", stage, funnel_only=True)
        hours = r.opt_number(table, "sla_hours", "handoff")
        if hours is None or hours <= 0:
            r.problem("handoff.sla_hours", "must be a positive number of hours", "e.g. 24")
        by_source: dict[str, float] = {}
        for source, value in r.table(table, "handoff.sla_hours_by_source").items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                r.problem(
                    f"handoff.sla_hours_by_source.{source}",
                    f"must be a positive number of hours, not {value!r}",
                    "e.g. 1",
                )
                continue
            by_source[source] = float(value)
            choices = self.fields.get("lead_source", FieldSpec("lead_source", "choice")).choices
            if choices and source not in choices:
                r.problem(
                    f"handoff.sla_hours_by_source.{source}",
                    f"{source!r} is not a lead_source choice",
                    f"use one of {_list(choices)}",
                )
        self.handoff = HandoffSpec(stage, float(hours or 24), by_source)

    def _build_thresholds(self, r: _Reader, data: Mapping[str, Any]) -> None:
        self.thresholds: dict[str, Threshold] = {}
        handoff = self.stages.get(self.handoff.stage)
        for stage, spec in r.table(data, "thresholds").items():
            key = f"thresholds.{stage}"
            if not r.check_stage(self, key, stage, funnel_only=True):
                continue
            position = self.stages[stage].position
            if handoff and handoff.position is not None and (position or 0) > handoff.position:
                r.problem(
                    key,
                    f"stage {stage!r} comes after the handoff stage {handoff.name!r}; stages after "
                    "the handoff are given by sales' outcomes, not by score",
                    f"remove [{key}]",
                )
                continue
            if not isinstance(spec, Mapping):
                r.problem(key, "must be a table", f"write [{key}] with score = N")
                continue
            r.unknown_keys(spec, key, {"score", "fit", "engagement"})
            score = r.opt_int(spec, "score", key)
            if score is None:
                r.problem(f"{key}.score", "is missing", "set the total score needed")
            self.thresholds[stage] = Threshold(
                stage, score or 0, r.opt_int(spec, "fit", key), r.opt_int(spec, "engagement", key)
            )
        if handoff and handoff.name not in self.thresholds:
            r.problem(
                f"thresholds.{handoff.name}",
                f"is missing; the handoff stage {handoff.name!r} needs a score threshold",
                f"add [thresholds.{handoff.name}] score = N",
            )

    def _build_reasons(self, r: _Reader, data: Mapping[str, Any]) -> None:
        self.reasons: dict[str, ReasonSpec] = {}
        for code, spec in r.table(data, "reasons").items():
            key = f"reasons.{code}"
            if not isinstance(spec, Mapping):
                r.problem(key, "must be a table", f"write [{key}] with a label")
                continue
            r.unknown_keys(spec, key, {"label", "applies_to", "stage"})
            applies = []
            for kind in r.str_list(spec, f"{key}.applies_to", required=True):
                if kind not in OutcomeKind.__members__.values():
                    r.problem(
                        f"{key}.applies_to",
                        f"unknown outcome {kind!r}",
                        f"use {_list(OutcomeKind)}",
                    )
                else:
                    applies.append(OutcomeKind(kind))
            stage = r.opt_str(spec, "stage", key)
            if stage is not None:
                r.check_stage(self, f"{key}.stage", stage)
            self.reasons[code] = ReasonSpec(
                code, r.opt_str(spec, "label", key) or code, tuple(applies), stage
            )

    def _build_outcomes(self, r: _Reader, data: Mapping[str, Any]) -> None:
        table = r.require_table(data, "outcomes")
        self.outcomes: dict[OutcomeKind, OutcomeSpec] = {}
        for kind in OutcomeKind:
            key = f"outcomes.{kind}"
            spec = table.get(str(kind))
            if not isinstance(spec, Mapping):
                r.problem(key, "is missing", f"add [{key}] with the stage this outcome leads to")
                continue
            r.unknown_keys(spec, key, {"stage", "stage_with_opportunity", "reason_required"})
            stage = r.require_str(spec, "stage", key) or ""
            r.check_stage(self, f"{key}.stage", stage)
            with_opp = r.opt_str(spec, "stage_with_opportunity", key)
            if with_opp is not None:
                r.check_stage(self, f"{key}.stage_with_opportunity", with_opp)
            required = bool(spec.get("reason_required", False))
            if required and not any(kind in rs.applies_to for rs in self.reasons.values()):
                r.problem(
                    f"{key}.reason_required",
                    f"is true but no [reasons.*] applies to {kind}",
                    f'add a reason with applies_to = ["{kind}"]',
                )
            self.outcomes[kind] = OutcomeSpec(kind, stage, with_opp, required)
        for name in table:
            if name not in OutcomeKind.__members__.values():
                r.problem(f"outcomes.{name}", "is not an outcome", f"use {_list(OutcomeKind)}")

    def _build_recycle(self, r: _Reader, data: Mapping[str, Any]) -> None:
        table = r.require_table(data, "recycle")
        r.unknown_keys(table, "recycle", {"stage", "requalify_after_days", "max_recycles"})
        stage = r.require_str(table, "stage", "recycle") or "recycled"
        if r.check_stage(self, "recycle.stage", stage) and not self.stages[stage].side:
            r.problem("recycle.stage", f"{stage!r} is a funnel stage", "name a side state")
        days = r.opt_number(table, "requalify_after_days", "recycle")
        max_recycles = r.opt_int(table, "max_recycles", "recycle")
        if max_recycles is None or max_recycles < 1:
            r.problem("recycle.max_recycles", "must be a whole number ≥ 1", "e.g. 3")
        self.recycle = RecycleSpec(stage, float(days or 0), max_recycles or 1)

    def _build_systems(self, r: _Reader, data: Mapping[str, Any]) -> None:
        self.systems: dict[str, SystemMapping] = {}
        for name, spec in r.require_table(data, "systems").items():
            key = f"systems.{name}"
            if not isinstance(spec, Mapping):
                r.problem(key, "must be a table", f"write [{key}]")
                continue
            r.unknown_keys(
                spec, key, {"label", "role", "fields", "picklists", "stage_field", "outcome_field"}
            )
            role = r.require_str(spec, "role", key) or ""
            if role and role not in ROLES:
                r.problem(f"{key}.role", f"unknown role {role!r}", f"use {_list(ROLES)}")
            fields: dict[str, str] = {}
            for shared, native in r.table(spec, f"{key}.fields").items():
                if shared not in self.fields:
                    r.problem(
                        f"{key}.fields.{shared}",
                        f"maps {shared!r}, which is not a field of the definition",
                        f"add [fields.{shared}] or remove the mapping",
                    )
                elif not isinstance(native, str) or not native:
                    r.problem(f"{key}.fields.{shared}", "must be a native field name", "")
                else:
                    fields[shared] = native
            if "email" not in fields:
                r.problem(f"{key}.fields.email", "is missing", "map the email field")
            picklists = {
                pk: Picklist(
                    name, pk, self._picklist_values(r, f"{key}.picklists", pk, pv), self.filename
                )
                for pk, pv in r.table(spec, f"{key}.picklists").items()
            }
            mapping = SystemMapping(
                name=name,
                label=r.opt_str(spec, "label", key) or name,
                role=role,
                fields=fields,
                picklists=picklists,
                stage_field=r.opt_str(spec, "stage_field", key),
                outcome_field=r.opt_str(spec, "outcome_field", key),
                definition=self,
            )
            self._check_system(r, key, mapping)
            self.systems[name] = mapping
        for fname, fspec in self.fields.items():
            if fspec.owner not in ROLES and fspec.owner not in self.systems:
                r.problem(
                    f"fields.{fname}.owner",
                    f"unknown owner {fspec.owner!r}",
                    f"use a role ({_list(ROLES)}) or a system ({_list(self.systems)})",
                )

    def _picklist_values(
        self, r: _Reader, key: str, picklist: str, values: Any
    ) -> list[PicklistValue]:
        where = f"{key}.{_q(picklist)}"
        if not isinstance(values, Mapping):
            r.problem(where, "must be a table of native value = { meaning }", "")
            return []
        out = []
        for native, meaning in values.items():
            vkey = f"{where}.{_q(native)}"
            if not isinstance(meaning, Mapping):
                r.problem(vkey, 'must be a table such as { stage = "mql" }', "")
                continue
            r.unknown_keys(meaning, vkey, {*MEANINGS, "also", "write", "ignore"})
            given = [m for m in MEANINGS if m in meaning]
            ignore = bool(meaning.get("ignore", False))
            if not given and not ignore:
                r.problem(
                    vkey,
                    f"says nothing about native value {native!r}",
                    f"give one of {_list(MEANINGS)} or ignore = true",
                )
            stage = meaning.get("stage")
            if stage is not None:
                r.check_stage(self, f"{vkey}.stage", str(stage))
            outcome = meaning.get("outcome")
            if outcome is not None and outcome not in OutcomeKind.__members__.values():
                r.problem(
                    f"{vkey}.outcome", f"unknown outcome {outcome!r}", f"use {_list(OutcomeKind)}"
                )
                outcome = None
            reason = meaning.get("reason")
            if reason is not None and reason not in self.reasons:
                r.problem(
                    f"{vkey}.reason",
                    f"unknown reason {reason!r}",
                    f"add [reasons.{reason}] or use one of {_list(self.reasons)}",
                )
            also = tuple(r.str_list(meaning, f"{vkey}.also"))
            for extra in also:
                if stage is not None:
                    r.check_stage(self, f"{vkey}.also", extra)
                elif outcome is not None and extra not in OutcomeKind.__members__.values():
                    r.problem(
                        f"{vkey}.also", f"unknown outcome {extra!r}", f"use {_list(OutcomeKind)}"
                    )
            out.append(
                PicklistValue(
                    native=str(native),
                    stage=None if stage is None else str(stage),
                    outcome=None if outcome is None else OutcomeKind(outcome),
                    reason=None if reason is None else str(reason),
                    value=None if meaning.get("value") is None else str(meaning["value"]),
                    also=also,
                    write=bool(meaning.get("write", True)),
                    ignore=ignore,
                )
            )
        writers: dict[tuple[str, str], str] = {}
        for v in out:
            if v.ignore or not v.write:
                continue
            for pair in _meanings_written(v):
                if pair in writers:
                    r.problem(
                        f"{where}.{_q(v.native)}",
                        f"{pair[0]} {pair[1]!r} is written as both {writers[pair]!r} and "
                        f"{v.native!r}",
                        "mark one of them write = false",
                    )
                writers[pair] = v.native
        return out

    def _check_system(self, r: _Reader, key: str, m: SystemMapping) -> None:
        for attr in ("stage_field", "outcome_field"):
            pk = getattr(m, attr)
            if pk is not None and pk not in m.picklists:
                r.problem(
                    f"{key}.{attr}",
                    f"names picklist {pk!r}, which is not under [{key}.picklists]",
                    f'add [{key}.picklists."{pk}"]',
                )
        for shared, native in m.fields.items():
            spec = self.fields[shared]
            picklist = m.picklist_for_field(native)
            if spec.type == "choice" and picklist is not None:
                for v in picklist.values.values():
                    if v.value is not None and v.value not in spec.choices:
                        r.problem(
                            f"{key}.picklists.{_q(picklist.key)}.{_q(v.native)}.value",
                            f"{v.value!r} is not a choice of field {shared!r}",
                            f"use one of {_list(spec.choices)}",
                        )
        if m.role == "marketing" and m.stage_field in m.picklists:
            stage_list = m.picklists[m.stage_field]
            for stage in self.stages:
                if not stage_list.can_write("stage", stage):
                    r.problem(
                        f"{key}.picklists.{_q(m.stage_field)}",
                        f"no native value is written for stage {stage!r}; the marketing system "
                        "must be able to show every stage",
                        f'map a value with stage = "{stage}" or list it in `also`',
                    )
        if m.role == "marketing" and m.outcome_field in m.picklists:
            status = m.picklists[m.outcome_field]
            for kind in OutcomeKind:
                if not status.can_write("outcome", str(kind)):
                    r.problem(
                        f"{key}.picklists.{_q(m.outcome_field)}",
                        f"no native value is written for outcome {str(kind)!r}; marketing must see "
                        "every verdict",
                        f'map a value with outcome = "{kind}" or list it in `also`',
                    )
        if m.role == "sales" and m.stage_field in m.picklists:
            handoff = self.handoff.stage
            if not m.picklists[m.stage_field].can_write("stage", handoff):
                r.problem(
                    f"{key}.picklists.{_q(m.stage_field)}",
                    f"no native value is written for the handoff stage {handoff!r}",
                    f'map the status a new handoff gets with stage = "{handoff}"',
                )

    # -- reading it ----------------------------------------------------------------------------

    @property
    def stamp(self) -> dict[str, str]:
        """The definition's version and content hash, recorded with every decision."""
        return {"version": self.version, "hash": self.content_hash}

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            raise MappingError(
                f"stage {name!r} is not in {self.filename} [stages]; known: {_list(self.stages)}",
                rule="stage",
            ) from None

    def system(self, name: str) -> SystemMapping:
        try:
            return self.systems[name]
        except KeyError:
            raise MappingError(
                f"{self.filename} has no [systems.{name}]; known systems: {_list(self.systems)}",
                system=name,
                hint=f"add [systems.{name}] with its fields and picklists",
            ) from None

    def owned_by(self, field_name: str, system: SystemMapping) -> bool:
        """Whether ``system`` (by name or by role) owns the shared field."""
        owner = self.fields[field_name].owner
        return owner in (system.name, system.role)

    # -- validation, scoring, qualification --------------------------------------------------

    def validate(self, lead: Lead) -> list[Problem]:
        """Every way the lead breaks the definition's types and formats (a quarantine matter).

        Fields required at the first stage are checked here too; fields required later only
        keep a lead from qualifying for that stage (see :meth:`missing_for`).
        """
        problems: list[Problem] = []
        first = self.funnel[0].name if self.funnel else None
        for name, spec in self.fields.items():
            value = lead.email if name == "email" else lead.fields.get(name)
            if name == "email" and not value:
                value = lead.fields.get("email")
            if value is None or value == "":
                if spec.required_at == first:
                    problems.append(
                        Problem(name, "required", f"is missing; it is required from {first}")
                    )
                continue
            problem = check_value(spec, value)
            if problem is not None:
                problems.append(problem)
        return problems

    def missing_for(self, lead: Lead, stage: str) -> list[str]:
        """Fields the lead lacks that are required at ``stage`` (or an earlier stage)."""
        target = self.stages[stage].position
        if target is None:
            return []
        missing = []
        for name, spec in self.fields.items():
            if spec.required_at is None:
                continue
            at = self.stages[spec.required_at].position
            if at is not None and at <= target and lead.fields.get(name) in (None, ""):
                if name == "email" and lead.email:
                    continue
                missing.append(name)
        return missing

    def score(self, lead: Lead) -> ScoreCard:
        """Fit and engagement points from the definition's rules, with a reason per rule."""
        reasons = []
        for rule in (*self.fit_rules, *self.engagement_rules):
            value = lead.email if rule.field == "email" else lead.fields.get(rule.field)
            reason = rule.apply(value)
            if reason is not None:
                reasons.append(reason)
        return ScoreCard.from_reasons(reasons)

    def qualify(self, lead: Lead, card: ScoreCard) -> Qualification:
        """The highest stage up to the handoff the lead's score and fields earn, with reasons."""
        for rule in self.disqualify_rules:
            value = lead.email if rule.field == "email" else lead.fields.get(rule.field)
            if rule.check(value):
                return Qualification(
                    self._side("disqualified"),
                    (f"disqualified by rule {rule.id}: {rule.describe(value)}",),
                    disqualified_by=rule.reason or rule.id,
                )
        handoff_pos = self.stages[self.handoff.stage].position or 0
        reached = self.funnel[0].name
        reasons = [f"{reached}: every lead starts here"]
        for stage in self.funnel[1 : handoff_pos + 1]:
            threshold = self.thresholds.get(stage.name)
            if threshold is None:
                continue
            shortfalls = _shortfalls(threshold, card)
            missing = self.missing_for(lead, stage.name)
            if shortfalls or missing:
                why = shortfalls + ([f"missing {', '.join(missing)}"] if missing else [])
                reasons.append(f"not {stage.name}: {'; '.join(why)}")
                break
            reached = stage.name
            reasons.append(f"{stage.name}: {_met(threshold, card)}")
        return Qualification(reached, tuple(reasons))

    def _side(self, preferred: str) -> str:
        if preferred in self.stages:
            return preferred
        return next(s.name for s in self.stages.values() if s.side)

    # -- stage changes -------------------------------------------------------------------------

    def check_transition(
        self,
        current: str | None,
        target: str,
        cause: Cause,
        *,
        history: RecycleHistory | None = None,
        now: datetime | None = None,
    ) -> TransitionDecision:
        """Judge a stage change: forward moves are allowed, backward ones need a reason.

        * forward along the funnel: allowed for every cause;
        * to a side state (recycled, disqualified): allowed, except recycling by score;
        * backward in the funnel: only by hand (``Cause.MANUAL``), never silently;
        * out of recycled, by score: after ``requalify_after_days`` with new engagement, and
          fewer than ``max_recycles`` recycles (the loop guard);
        * out of disqualified: only by hand or by sales' verdict.
        """
        history = history or RecycleHistory()

        def decide(allowed: bool, reason: str) -> TransitionDecision:
            return TransitionDecision(allowed, current, target, reason)

        if target not in self.stages:
            return decide(False, f"{target!r} is not a stage of the definition")
        if current is None or current not in self.stages:
            return decide(True, f"first stage: {target}")
        if current == target:
            return decide(True, "no change")
        src, dst = self.stages[current], self.stages[target]
        if cause is Cause.MANUAL:
            return decide(True, f"{current} → {target} by hand")
        if dst.side:
            if cause is Cause.QUALIFICATION and target == self.recycle.stage:
                return decide(False, "score alone never recycles a lead; sales does")
            return decide(True, f"{current} → {target} ({cause})")
        if src.side and src.name != self.recycle.stage:
            if cause is Cause.OUTCOME:
                return decide(True, f"{current} → {target}: sales' verdict")
            return decide(
                False,
                f"{current} leads come back only by hand or by sales' verdict, not by {cause}",
            )
        if src.side:
            return self._out_of_recycle(current, target, cause, history, now, decide)
        if (dst.position or 0) > (src.position or 0):
            return decide(True, f"{current} → {target}: forward")
        return decide(
            False,
            f"{current} → {target} moves backwards; the definition allows that only through "
            f"sales' verdict (recycle) or by hand, not by {cause}",
        )

    def _out_of_recycle(
        self,
        current: str,
        target: str,
        cause: Cause,
        history: RecycleHistory,
        now: datetime | None,
        decide: Callable[[bool, str], TransitionDecision],
    ) -> TransitionDecision:
        if cause is Cause.OUTCOME:
            return decide(True, f"{current} → {target}: sales' verdict")
        if history.recycles >= self.recycle.max_recycles:
            return decide(
                False,
                f"loop guard: recycled {history.recycles} times (max_recycles = "
                f"{self.recycle.max_recycles}); hand it off by hand if it deserves another try",
            )
        handoff_pos = self.stages[self.handoff.stage].position or 0
        if (self.stages[target].position or 0) < handoff_pos:
            return decide(True, f"{current} → {target}: back in nurture")
        if history.last_recycled_at is not None and now is not None:
            ready = history.last_recycled_at + timedelta(days=self.recycle.requalify_after_days)
            if now < ready:
                return decide(
                    False,
                    f"recycled {history.last_recycled_at:%Y-%m-%d}; may be handed off again from "
                    f"{ready:%Y-%m-%d} (requalify_after_days = "
                    f"{self.recycle.requalify_after_days:g})",
                )
        if not history.engaged_since:
            return decide(False, "recycled and no new engagement since; not handed off again yet")
        return decide(
            True, f"{current} → {target}: re-qualified after recycling with new engagement"
        )

    def outcome_stage(
        self, kind: OutcomeKind, reason: str | None = None, *, has_opportunity: bool = False
    ) -> str:
        """The stage an outcome (with its reason) moves the lead to."""
        spec = self.outcomes[kind]
        if reason is not None and reason in self.reasons and self.reasons[reason].stage:
            return str(self.reasons[reason].stage)
        if has_opportunity and spec.stage_with_opportunity:
            return spec.stage_with_opportunity
        return spec.stage

    def sla_due(self, lead: Lead, handed_off_at: datetime) -> datetime:
        """When sales must have answered a lead handed off at ``handed_off_at``."""
        source = lead.fields.get("lead_source")
        hours = self.handoff.sla_hours_by_source.get(str(source), self.handoff.sla_hours)
        return handed_off_at + timedelta(hours=hours)

    def is_forward(self, current: str | None, target: str) -> bool:
        if current is None:
            return True
        a, b = self.stages[current].position, self.stages[target].position
        return a is not None and b is not None and b > a


# -- values: coercion and checks -----------------------------------------------------------------

_EMAIL_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+"
_EMAIL_LOCAL = re.compile(rf'(?:{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*|"(?:[^"\\\r\n]|\\.)*")')
_LABEL = r"(?!-)[A-Za-z0-9\u0080-\U0010ffff-]{1,63}(?<!-)"
_EMAIL_DOMAIN = re.compile(
    rf"(?:{_LABEL}(?:\.{_LABEL})*\.[A-Za-z\u0080-\U0010ffff]{{2,63}}|\[[^\]\s]+\])"
)
_PHONE = re.compile(r"^\+?[0-9 ()./\-]{5,}(?:\s*(?:x|ext\.?)\s*[0-9]{1,6})?$", re.IGNORECASE)
_URL = re.compile(r"^(?:https?://)?[^\s/$.?#][^\s]*\.[^\s]{2,}$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_RANGE = re.compile(r"^\s*([0-9][0-9,._ ]*)\s*(?:[-\u2013+].*)?$")


def is_valid_email(text: str) -> bool:
    """An RFC 5321/5322 addr-spec (dot-atom or quoted local part; a domain with a TLD, or a
    literal), with the length limits of RFC 5321; UTF-8 allowed as RFC 6531 does."""
    if len(text) > 254 or "@" not in text:
        return False
    local, _, domain = text.rpartition("@")
    if not local or len(local.encode()) > 64 or not domain:
        return False
    return bool(_EMAIL_LOCAL.fullmatch(local) and _EMAIL_DOMAIN.fullmatch(domain))


def check_value(spec: FieldSpec, value: Any) -> Problem | None:
    """The first way ``value`` breaks ``spec``, or ``None``."""
    kind = spec.type
    if kind in ("string", "email", "phone", "url", "choice"):
        if not isinstance(value, str):
            return Problem(spec.name, "type", f"must be text, got {type(value).__name__}")
        if _CONTROL.search(value):
            return Problem(spec.name, "control_characters", "contains control characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            return Problem(
                spec.name,
                "max_length",
                f"is {len(value)} characters long; at most {spec.max_length}",
            )
        if kind == "email" and not is_valid_email(normalize_email(value)):
            return Problem(
                spec.name, "email_format", f"{_clip(value)!r} is not a valid email address"
            )
        if kind == "phone" and not _PHONE.match(value.strip()):
            return Problem(spec.name, "phone_format", f"{_clip(value)!r} is not a phone number")
        if kind == "url" and not _URL.match(value.strip()):
            return Problem(spec.name, "url_format", f"{_clip(value)!r} is not a web address")
        if kind == "choice" and value not in spec.choices:
            return Problem(
                spec.name, "choice", f"{_clip(value)!r} is not one of {_list(spec.choices)}"
            )
        return None
    if kind in ("integer", "number"):
        wanted = int if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            return Problem(spec.name, "type", f"must be a {kind}, got {_clip(repr(value))}")
        if spec.min is not None and value < spec.min:
            return Problem(spec.name, "min", f"is {value}; at least {spec.min:g}")
        if spec.max is not None and value > spec.max:
            return Problem(spec.name, "max", f"is {value}; at most {spec.max:g}")
        return None
    if kind == "boolean" and not isinstance(value, bool):
        return Problem(spec.name, "type", f"must be true or false, got {_clip(repr(value))}")
    if kind == "datetime" and not isinstance(value, datetime):
        return Problem(spec.name, "type", f"must be a date and time, got {_clip(repr(value))}")
    return None


def coerce(spec: FieldSpec, raw: Any) -> tuple[Any, Problem | None]:
    """A native value converted to the shared field's type (``"100-500"`` employees → 100)."""
    kind = spec.type
    try:
        if kind == "integer":
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, int):
                return raw, None
            if isinstance(raw, float):
                if not raw.is_integer():
                    raise ValueError
                return int(raw), None
            match = _RANGE.match(str(raw))
            if match is None:
                raise ValueError
            return int(float(re.sub(r"[,_ ]", "", match.group(1)))), None
        if kind == "number":
            if isinstance(raw, bool):
                raise ValueError
            return (raw if isinstance(raw, int | float) else float(str(raw).replace(",", ""))), None
        if kind == "boolean":
            if isinstance(raw, bool):
                return raw, None
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes"):
                return True, None
            if text in ("false", "0", "no"):
                return False, None
            raise ValueError
        if kind == "datetime":
            if isinstance(raw, datetime):
                return raw, None
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00")), None
    except (ValueError, OverflowError):
        return None, Problem(spec.name, "type", f"{_clip(repr(raw))} cannot be read as a {kind}")
    return (raw if isinstance(raw, str) else str(raw)), None


def _compile_rule(
    r: _Reader, d: LeadDefinition, spec: Any, key: str, dimension: str
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
            f"use one of {_list(d.fields)}",
        )
    tests = [t for t in RULE_TESTS if t in spec]
    per = r.opt_number(spec, "per", key)
    points = r.opt_int(spec, "points", key)
    if dimension != "disqualify" and points is None:
        r.problem(f"{key}.points", "is missing", "set the points this rule gives")
    if per is None and len(tests) != 1:
        r.problem(
            key, f"needs exactly one test, found {len(tests)}", f"use one of {_list(RULE_TESTS)}"
        )
        return None
    if per is not None and per <= 0:
        r.problem(f"{key}.per", "must be positive", "e.g. per = 1")
        return None
    test = tests[0] if tests else "per"
    arg = spec.get(test)
    check = _rule_check(r, f"{key}.{test}", test, arg) if tests else (lambda _v: False)
    if (
        dimension == "disqualify"
        and spec.get("reason") is not None
        and spec["reason"] not in d.reasons
    ):
        r.problem(
            f"{key}.reason", f"unknown reason {spec['reason']!r}", f"use one of {_list(d.reasons)}"
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
    )


def _rule_check(r: _Reader, key: str, test: str, arg: Any) -> Callable[[Any], bool]:
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


def _shortfalls(t: Threshold, card: ScoreCard) -> list[str]:
    out = []
    if card.total < t.score:
        out.append(f"score {card.total} < {t.score}")
    if t.fit is not None and card.fit < t.fit:
        out.append(f"fit {card.fit} < {t.fit}")
    if t.engagement is not None and card.engagement < t.engagement:
        out.append(f"engagement {card.engagement} < {t.engagement}")
    return out


def _met(t: Threshold, card: ScoreCard) -> str:
    parts = [f"score {card.total} ≥ {t.score}"]
    if t.fit is not None:
        parts.append(f"fit {card.fit} ≥ {t.fit}")
    if t.engagement is not None:
        parts.append(f"engagement {card.engagement} ≥ {t.engagement}")
    return ", ".join(parts)


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _clip(str(value))


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _list(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items)


def _q(key: str) -> str:
    """A TOML key as written in a table header: quoted when it is not a bare key."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


class _Reader:
    """Reads TOML tables, collecting every problem with its dotted key."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[DefinitionProblem] = []

    def problem(self, key: str, message: str, fix: str = "") -> None:
        self.problems.append(DefinitionProblem(key, message, fix))

    def raise_if_any(self) -> None:
        if self.problems:
            raise DefinitionError(self.filename, self.problems)

    def _key(self, parent: str, name: str) -> str:
        return f"{parent}.{name}" if parent else name

    def require_table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            self.problem(key, "is missing" if value is None else "must be a table", f"add [{key}]")
            return {}
        return value

    def table(self, data: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
        value = data.get(dotted.rsplit(".", 1)[-1], {})
        if not isinstance(value, Mapping):
            self.problem(dotted, "must be a table", f"write [{dotted}]")
            return {}
        return value

    def require_str(self, data: Mapping[str, Any], name: str, parent: str = "") -> str | None:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            key = self._key(parent, name)
            self.problem(
                key,
                "is missing" if value is None else "must be non-empty text",
                f'set {name} = "..."',
            )
            return None
        return value

    def opt_str(self, data: Mapping[str, Any], name: str, parent: str = "") -> str | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(self._key(parent, name), f"must be text, not {value!r}", "quote it")
            return None
        return value

    def opt_int(self, data: Mapping[str, Any], name: str, parent: str = "") -> int | None:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(self._key(parent, name), f"must be a whole number, not {value!r}", "")
            return None
        return value

    def opt_number(self, data: Mapping[str, Any], name: str, parent: str = "") -> float | None:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(self._key(parent, name), f"must be a number, not {value!r}", "")
            return None
        return float(value)

    def str_list(
        self, data: Mapping[str, Any], dotted: str, *, required: bool = False
    ) -> list[str]:
        value = data.get(dotted.rsplit(".", 1)[-1])
        if value is None:
            if required:
                self.problem(dotted, "is missing", "list the values")
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(dotted, "must be a list of text values", 'e.g. ["a", "b"]')
            return []
        return list(value)

    def unknown_keys(self, data: Mapping[str, Any], parent: str, known: set[str]) -> None:
        for name in data:
            if name not in known:
                close = [k for k in sorted(known) if k[:3] == str(name)[:3]]
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known keys: {_list(sorted(known))}"
                )
                self.problem(self._key(parent, _q(str(name))), "is not a known key", hint)

    def check_stage(
        self, d: LeadDefinition, key: str, name: str, *, funnel_only: bool = False
    ) -> bool:
        stage = d.stages.get(name)
        if stage is None:
            self.problem(
                key,
                f"refers to stage {name!r}, which is not in [stages]",
                f"use one of {_list(d.stages)}",
            )
            return False
        if funnel_only and stage.side:
            self.problem(
                key,
                f"refers to side state {name!r}; a funnel stage is needed here",
                f"use one of {_list(s.name for s in d.funnel)}",
            )
            return False
        return True
