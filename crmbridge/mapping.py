"""How one system spells the shared language: its fields and its picklist values, both ways."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crmbridge.errors import MappingError
from crmbridge.lead import OutcomeKind
from crmbridge.textutil import clip, toml_key
from crmbridge.values import Problem, coerce

if TYPE_CHECKING:
    from crmbridge.definition import LeadDefinition

MEANINGS = ("stage", "outcome", "reason", "value")


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
            for kind, shared in meanings_written(v):
                self._writers.setdefault((kind, shared), v.native)

    @property
    def where(self) -> str:
        """The picklist's table header in the definition file."""
        return f"[systems.{self.system}.picklists.{toml_key(self.key)}]"

    @property
    def field(self) -> str:
        """The native field name (``"Status"`` for ``"Lead.Status"``)."""
        return self.key.rsplit(".", 1)[-1]

    def read(self, native: str) -> PicklistValue:
        """The meaning of a native value; an unmapped value is a :class:`MappingError`."""
        found = self.values.get(native) or self._folded.get(str(native).casefold())
        if found is None:
            raise MappingError(
                # Clipped: the value came from a system and may be a megabyte of anything.
                f"{self.filename}: {self.where} has no mapping for {self.key} "
                f"{clip(str(native), 80)!r}",
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
                f"{self.filename}: {self.where} has no value written for {kind} "
                f"{clip(str(shared), 80)!r}",
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
        where = self.where
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


def meanings_written(v: PicklistValue) -> list[tuple[str, str]]:
    """Every (kind, shared value) this native value is written for.

    A value may mean several things at once (a Lead Status that is both a stage and an outcome);
    ``also`` adds values of its first meaning (``stage = "recycled", also = ["disqualified"]``).
    """
    kinds = [k for k in MEANINGS if getattr(v, k) is not None]
    if not kinds:
        return []
    pairs = [(k, str(getattr(v, k))) for k in kinds]
    return [*pairs, *((kinds[0], extra) for extra in v.also)]


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
        self._by_field: dict[str, Picklist | None] = {}
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
        try:
            return self._by_field[native_field]
        except KeyError:
            found = next(
                (
                    p
                    for key, p in self.picklists.items()
                    if key == native_field or key.endswith("." + native_field)
                ),
                None,
            )
            self._by_field[native_field] = found
            return found

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
