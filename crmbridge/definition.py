"""The shared lead definition: load it, validate leads, score, qualify, judge stage changes, and
translate between the shared language and each system's own fields and picklist values.

The definition lives in one TOML file (``configs/lead-definition.toml``). Loading validates all of
it and reports every problem with the file, the key and the fix. Every decision made with it carries
its ``version`` and a hash of its content (:attr:`LeadDefinition.stamp`), so a decision can always
be traced to the rules that made it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from crmbridge.errors import DefinitionError, DefinitionProblem, MappingError
from crmbridge.lead import Lead, OutcomeKind, Stage
from crmbridge.mapping import (
    MEANINGS,
    Drift,
    Picklist,
    PicklistValue,
    SystemMapping,
    meanings_written,
)
from crmbridge.rules import ScoreCard, ScoreReason, ScoreRule, compile_rule
from crmbridge.textutil import listing, toml_key
from crmbridge.tomlreader import TomlReader
from crmbridge.values import Problem, check_value, coerce, is_valid_email

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

__all__ = [
    "Cause",
    "Drift",
    "FieldSpec",
    "LeadDefinition",
    "Picklist",
    "PicklistValue",
    "Problem",
    "Qualification",
    "RecycleHistory",
    "ScoreCard",
    "ScoreReason",
    "ScoreRule",
    "SystemMapping",
    "TransitionDecision",
    "check_value",
    "coerce",
    "is_valid_email",
]

# -- the shapes the definition answers with -----------------------------------------------------


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


# -- the definition ------------------------------------------------------------------------------


class LeadDefinition:
    """The loaded, validated lead definition. Build it with :meth:`load` or :meth:`from_text`."""

    def __init__(self, data: Mapping[str, Any], *, filename: str, path: Path | None) -> None:
        self.filename = filename
        self.path = path
        self.data = data
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        self.content_hash = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        reader = TomlReader(filename)
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

    def _build(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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

    def _build_stages(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
            r.check_stage(self, f"stages.labels.{toml_key(name)}", name)

    def _add_stage(self, r: TomlReader, stage: Stage, key: str) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", stage.name):
            r.problem(key, f"stage name {stage.name!r} is not a lower-case identifier", "rename it")
        if stage.name in self.stages:
            r.problem(key, f"stage {stage.name!r} is listed twice", "list each stage once")
            return
        self.stages[stage.name] = stage

    def _build_fields(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
                    f"{key}.type", f"unknown type {ftype!r}", f"use one of {listing(FIELD_TYPES)}"
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
        self, r: TomlReader, data: Mapping[str, Any], dotted: str, dimension: str
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
            rule = compile_rule(r, self, spec, f"{dotted}[{i}]", dimension)
            if rule is None:
                continue
            if rule.id in seen:
                r.problem(f"{dotted}[{i}].id", f"rule id {rule.id!r} is used twice", "rename one")
            seen.add(rule.id)
            rules.append(rule)
        return rules

    def _build_handoff(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
                    f"use one of {listing(choices)}",
                )
        self.handoff = HandoffSpec(stage, float(hours or 24), by_source)

    def _handoff_stage(self) -> Stage | None:
        """The handoff stage, or ``None`` while it is not a funnel stage (already reported)."""
        stage = self.stages.get(self.handoff.stage)
        return stage if stage is not None and not stage.side else None

    def _build_thresholds(self, r: TomlReader, data: Mapping[str, Any]) -> None:
        self.thresholds: dict[str, Threshold] = {}
        handoff = self._handoff_stage()
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

    def _build_reasons(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
                        f"use {listing(OutcomeKind)}",
                    )
                else:
                    applies.append(OutcomeKind(kind))
            stage = r.opt_str(spec, "stage", key)
            if stage is not None:
                r.check_stage(self, f"{key}.stage", stage)
            self.reasons[code] = ReasonSpec(
                code, r.opt_str(spec, "label", key) or code, tuple(applies), stage
            )

    def _build_outcomes(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
                r.problem(f"outcomes.{name}", "is not an outcome", f"use {listing(OutcomeKind)}")

    def _build_recycle(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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

    def _build_systems(self, r: TomlReader, data: Mapping[str, Any]) -> None:
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
                r.problem(f"{key}.role", f"unknown role {role!r}", f"use {listing(ROLES)}")
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
                    f"use a role ({listing(ROLES)}) or a system ({listing(self.systems)})",
                )

    def _picklist_values(
        self, r: TomlReader, key: str, picklist: str, values: Any
    ) -> list[PicklistValue]:
        where = f"{key}.{toml_key(picklist)}"
        if not isinstance(values, Mapping):
            r.problem(where, "must be a table of native value = { meaning }", "")
            return []
        out = []
        for native, meaning in values.items():
            vkey = f"{where}.{toml_key(native)}"
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
                    f"give one of {listing(MEANINGS)} or ignore = true",
                )
            stage = meaning.get("stage")
            if stage is not None:
                r.check_stage(self, f"{vkey}.stage", str(stage))
            outcome = meaning.get("outcome")
            if outcome is not None and outcome not in OutcomeKind.__members__.values():
                r.problem(
                    f"{vkey}.outcome", f"unknown outcome {outcome!r}", f"use {listing(OutcomeKind)}"
                )
                outcome = None
            reason = meaning.get("reason")
            if reason is not None and reason not in self.reasons:
                r.problem(
                    f"{vkey}.reason",
                    f"unknown reason {reason!r}",
                    f"add [reasons.{reason}] or use one of {listing(self.reasons)}",
                )
            also = tuple(r.str_list(meaning, f"{vkey}.also"))
            for extra in also:
                if stage is not None:
                    r.check_stage(self, f"{vkey}.also", extra)
                elif outcome is not None and extra not in OutcomeKind.__members__.values():
                    r.problem(
                        f"{vkey}.also", f"unknown outcome {extra!r}", f"use {listing(OutcomeKind)}"
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
            for pair in meanings_written(v):
                if pair in writers:
                    r.problem(
                        f"{where}.{toml_key(v.native)}",
                        f"{pair[0]} {pair[1]!r} is written as both {writers[pair]!r} and "
                        f"{v.native!r}",
                        "mark one of them write = false",
                    )
                writers[pair] = v.native
        return out

    def _check_system(self, r: TomlReader, key: str, m: SystemMapping) -> None:
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
            if spec.type == "choice" and spec.choices and picklist is not None:
                for v in picklist.values.values():
                    if v.value is not None and v.value not in spec.choices:
                        r.problem(
                            f"{key}.picklists.{toml_key(picklist.key)}.{toml_key(v.native)}.value",
                            f"{v.value!r} is not a choice of field {shared!r}",
                            f"use one of {listing(spec.choices)}",
                        )
        if m.role == "marketing" and m.stage_field in m.picklists:
            stage_list = m.picklists[m.stage_field]
            for stage in self.stages:
                if not stage_list.can_write("stage", stage):
                    r.problem(
                        f"{key}.picklists.{toml_key(m.stage_field)}",
                        f"no native value is written for stage {stage!r}; the marketing system "
                        "must be able to show every stage",
                        f'map a value with stage = "{stage}" or list it in `also`',
                    )
        if m.role == "marketing" and m.outcome_field in m.picklists:
            status = m.picklists[m.outcome_field]
            for kind in OutcomeKind:
                if not status.can_write("outcome", str(kind)):
                    r.problem(
                        f"{key}.picklists.{toml_key(m.outcome_field)}",
                        f"no native value is written for outcome {str(kind)!r}; marketing must see "
                        "every verdict",
                        f'map a value with outcome = "{kind}" or list it in `also`',
                    )
        if m.role == "sales" and m.stage_field in m.picklists and self._handoff_stage():
            handoff = self.handoff.stage
            if not m.picklists[m.stage_field].can_write("stage", handoff):
                r.problem(
                    f"{key}.picklists.{toml_key(m.stage_field)}",
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
                f"stage {name!r} is not in {self.filename} [stages]; known: {listing(self.stages)}",
                rule="stage",
            ) from None

    def system(self, name: str) -> SystemMapping:
        try:
            return self.systems[name]
        except KeyError:
            raise MappingError(
                f"{self.filename} has no [systems.{name}]; known systems: {listing(self.systems)}",
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
            value = lead.fields.get(name)
            if name == "email" and not value:
                value = lead.raw_email or lead.email
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
          fewer than ``max_recycles`` recycles (the loop guard); the same holds when a lead that
          was recycled before reaches the handoff stage again through nurture (recycled → lead,
          later lead → mql), so the guard cannot be stepped around;
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
            if history.recycles and cause is not Cause.OUTCOME and self._crosses_handoff(src, dst):
                return self._out_of_recycle(current, target, cause, history, now, decide)
            return decide(True, f"{current} → {target}: forward")
        return decide(
            False,
            f"{current} → {target} moves backwards; the definition allows that only through "
            f"sales' verdict (recycle) or by hand, not by {cause}",
        )

    def _crosses_handoff(self, src: Stage, dst: Stage) -> bool:
        handoff_pos = self.stages[self.handoff.stage].position or 0
        return (src.position or 0) < handoff_pos <= (dst.position or 0)

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
