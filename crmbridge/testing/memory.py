"""In-memory connectors: a marketing system and a sales system with no HTTP, for testing the
engine and plugins fast, and for measuring the engine alone.

They implement the whole Connector contract against a :class:`MemoryWorld` (records, a change
sequence, picklists, call counts), and they spell records the way the lead definition's systems
do (``hubspot`` and ``salesforce`` field names by default), so the same definition drives them.
A test acts as people through the world: ``world.sales_set_status(...)``,
``world.marketing_edit(...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from crmbridge.connector import (
    ApiUsage,
    Change,
    ChangeBatch,
    ChangeKind,
    CheckReport,
    Connector,
    ConnectorSettings,
    Cursor,
    LeadWrite,
    OutcomeBatch,
    SetupReport,
    WriteResult,
)
from crmbridge.errors import MappingError, WriteRejected
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Lead, Outcome, OutcomeKind, normalize_email

_worlds: dict[str, MemoryWorld] = {}
_lock = threading.Lock()


@dataclass
class MemoryRecord:
    """One native record: its values, when it changed, and in which change of the world."""

    id: str
    values: dict[str, Any]
    modified_at: datetime
    seq: int
    deleted: bool = False


@dataclass
class MemorySide:
    """One system of the world (marketing or sales)."""

    records: dict[str, MemoryRecord] = field(default_factory=dict)
    calls: int = 0
    next_id: int = 1

    def by(self, key: str, value: Any) -> MemoryRecord | None:
        wanted = normalize_email(value) if key in ("email", "Email") else value
        for record in self.records.values():
            got = record.values.get(key)
            if (normalize_email(got) if key in ("email", "Email") else got) == wanted:
                return record
        return None


class MemoryWorld:
    """The state the memory connectors share; get one with :func:`memory_world`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.marketing = MemorySide()
        self.sales = MemorySide()
        self.seq = 0
        self.offset = timedelta()
        self.fail_emails: set[str] = set()
        self.fail_next_write = False
        self.extra_values: dict[str, set[str]] = {}
        self.quota: tuple[int, int] | None = None
        self.lock = threading.RLock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def touch(
        self, side: MemorySide, record_id: str | None, values: Mapping[str, Any]
    ) -> MemoryRecord:
        with self.lock:
            self.seq += 1
            now = self.now()
            if record_id is None or record_id not in side.records:
                record_id = record_id or str(side.next_id)
                side.next_id += 1
                side.records[record_id] = MemoryRecord(record_id, dict(values), now, self.seq)
            else:
                record = side.records[record_id]
                record.values.update(values)
                record.modified_at = now
                record.seq = self.seq
            return side.records[record_id]

    # -- acting as people ------------------------------------------------------------------

    def marketing_add(self, **values: Any) -> str:
        """A contact appears in marketing (a form, an import); its id."""
        return self.touch(self.marketing, None, values).id

    def marketing_edit(self, email: str, **values: Any) -> None:
        record = self.marketing.by("email", email)
        if record is None:
            raise KeyError(f"no marketing contact {email}")
        self.touch(self.marketing, record.id, values)

    def marketing_delete(self, email: str) -> None:
        record = self.marketing.by("email", email)
        if record is None:
            raise KeyError(f"no marketing contact {email}")
        record.deleted = True
        self.touch(self.marketing, record.id, {})

    def marketing_get(self, email: str) -> dict[str, Any]:
        record = self.marketing.by("email", email)
        if record is None:
            raise KeyError(f"no marketing contact {email}")
        return dict(record.values)

    def sales_get(self, email: str) -> dict[str, Any]:
        record = self.sales.by("Email", email)
        if record is None:
            raise KeyError(f"no sales lead {email}")
        return {"Id": record.id, **record.values}

    def sales_count(self) -> int:
        return len(self.sales.records)

    def sales_set_status(self, email: str, status: str, reason: str | None = None) -> None:
        """A rep changes the lead's status (and gives a rejection reason)."""
        values: dict[str, Any] = {"Status": status}
        if reason is not None:
            values["Rejection_Reason__c"] = reason
        self.sales_edit(email, **values)

    def sales_edit(self, email: str, **values: Any) -> None:
        record = self.sales.by("Email", email)
        if record is None:
            raise KeyError(f"no sales lead {email}")
        self.touch(self.sales, record.id, values)

    def sales_convert(self, email: str, *, opportunity: str | None = "Prospecting") -> None:
        values: dict[str, Any] = {"Status": "Closed - Converted", "IsConverted": True}
        if opportunity is not None:
            values.update(ConvertedOpportunityId="006" + email, StageName=opportunity)
        self.sales_edit(email, **values)

    def sales_close(
        self, email: str, *, won: bool, amount: float | None = None, reason: str | None = None
    ) -> None:
        values: dict[str, Any] = {
            "StageName": "Closed Won" if won else "Closed Lost",
            "Amount": amount,
        }
        if reason is not None:
            values["Loss_Reason__c"] = reason
        self.sales_edit(email, **values)


def memory_world(name: str = "default", *, fresh: bool = False) -> MemoryWorld:
    """The world called ``name`` (a new one when ``fresh`` or when none exists)."""
    with _lock:
        if fresh or name not in _worlds:
            _worlds[name] = MemoryWorld(name)
        return _worlds[name]


class MemorySettings(ConnectorSettings):
    """Settings of the memory connectors: which world they live in, and their page size."""

    world: str = "default"
    page_size: int = 100


class _MemoryConnector(Connector):
    settings_class: ClassVar[type[ConnectorSettings]] = MemorySettings
    side_name: ClassVar[str]

    @property
    def world(self) -> MemoryWorld:
        settings = self.settings
        assert isinstance(settings, MemorySettings)
        return memory_world(settings.world)

    @property
    def side(self) -> MemorySide:
        return self.world.marketing if self.side_name == "marketing" else self.world.sales

    def _call(self) -> None:
        self.side.calls += 1

    def _pages(self, cursor: Cursor) -> Iterator[tuple[list[MemoryRecord], Cursor]]:
        settings = self.settings
        assert isinstance(settings, MemorySettings)
        after = int(cursor.get("seq", 0))
        while True:
            self._call()
            with self.world.lock:
                page = sorted(
                    (r for r in self.side.records.values() if r.seq > after), key=lambda r: r.seq
                )[: settings.page_size]
            if not page:
                return
            after = page[-1].seq
            yield page, Cursor({"seq": after})

    def check(self) -> CheckReport:
        self._call()
        report = CheckReport(self.system_name())
        report.add("ok", "connection", f"memory world {self.world.name!r}")
        for key, picklist in self.mapping.picklists.items():
            actual = set(picklist.values) | self.world.extra_values.get(key, set())
            report.drift.extend(picklist.drift(actual))
        return report

    def _failing(self, count: int) -> set[int]:
        """Indexes of a write batch to fail (every other one) when a test asked for it."""
        if not self.world.fail_next_write:
            return set()
        self.world.fail_next_write = False
        return set(range(0, count, 2))

    def _refused(self, write: LeadWrite, why: str, field_name: str, code: str) -> WriteResult:
        error = WriteRejected(
            why, system=self.system_name(), record=write.email, field=field_name, code=code
        )
        return WriteResult(write.key, ok=False, error=error)

    def setup(self, *, dry_run: bool = False) -> SetupReport:
        return SetupReport(self.system_name(), existing=["crmbridge fields (memory)"])

    def api_usage(self) -> ApiUsage:
        quota = self.world.quota
        used, limit = quota if quota else (None, None)
        return ApiUsage(self.system_name(), used=used, limit=limit, calls=self.side.calls)

    def _annotate(self, values: dict[str, Any], write: LeadWrite, prefix: str) -> None:
        for key, value in write.annotations.items():
            values[f"{prefix}{key}"] = value


class MemoryMarketing(_MemoryConnector):
    """A marketing system in memory, spelled like the definition's ``hubspot`` system."""

    name = "memory_marketing"
    system = "hubspot"
    label = "Marketing (memory)"
    roles = frozenset({"marketing"})
    side_name = "marketing"

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        for page, next_cursor in self._pages(cursor):
            yield ChangeBatch([self._change(r) for r in page], next_cursor)

    def fetch(self, native_ids: Sequence[str]) -> list[Change]:
        self._call()
        return [self._change(self.side.records[i]) for i in native_ids if i in self.side.records]

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        for page, next_cursor in self._pages(cursor):
            inside = [
                r
                for r in page
                if (since is None or r.modified_at >= since)
                and (until is None or r.modified_at < until)
            ]
            yield ChangeBatch([self._change(r) for r in inside], next_cursor)

    def count_range(self, since: datetime | None, until: datetime | None) -> int | None:
        return sum(
            1
            for r in self.side.records.values()
            if (since is None or r.modified_at >= since)
            and (until is None or r.modified_at < until)
        )

    def _change(self, record: MemoryRecord) -> Change:
        system = self.system_name()
        if record.deleted:
            return Change(system, record.id, ChangeKind.DELETE, record.modified_at)
        fields, problems = self.mapping.from_native(record.values)
        stage = None
        native_stage = record.values.get(self.mapping.stage_field or "")
        if native_stage:
            try:
                stage = self.mapping.stage_from_native(str(native_stage))
            except MappingError as exc:
                problems.append(_problem(self.mapping.stage_field or "stage", exc))
        lead = Lead.from_fields(fields, source=system, system_id=record.id, stage=stage)
        return Change(
            system,
            record.id,
            ChangeKind.UPSERT,
            record.modified_at,
            lead=lead,
            raw=dict(record.values),
            problems=tuple(problems),
        )

    def write_outcomes(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        self._call()
        results = []
        failing = self._failing(len(writes))
        for i, write in enumerate(writes):
            record = self.side.records.get(write.native_id or "")
            if i in failing:
                results.append(self._refused(write, "record locked", "email", "LOCKED"))
                continue
            if record is None or record.deleted:
                why = f"contact {write.native_id} does not exist"
                results.append(self._refused(write, why, "id", "OBJECT_NOT_FOUND"))
                continue
            values = self.mapping.to_native(write.fields)
            if write.stage:
                values[self.mapping.stage_field or "stage"] = self.mapping.stage_to_native(
                    write.stage
                )
            if write.outcome:
                values[self.mapping.outcome_field or "status"] = self.mapping.outcome_to_native(
                    write.outcome
                )
            self._annotate(values, write, "crmbridge_")
            touched = self.world.touch(self.side, record.id, values)
            results.append(
                WriteResult(
                    write.key, ok=True, native_id=record.id, modified_at=touched.modified_at
                )
            )
        return results


class MemorySales(_MemoryConnector):
    """A sales system in memory, spelled like the definition's ``salesforce`` system."""

    name = "memory_sales"
    system = "salesforce"
    label = "Sales (memory)"
    roles = frozenset({"sales"})
    side_name = "sales"
    batch_size = 200

    def push_leads(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        self._call()
        results = []
        failing = self._failing(len(writes))
        for i, write in enumerate(writes):
            if write.email in self.world.fail_emails or i in failing:
                why = "Required fields are missing: [Company]"
                results.append(self._refused(write, why, "Company", "REQUIRED_FIELD_MISSING"))
                continue
            record = self.side.by("CrmBridge_Id__c", write.crmbridge_id) or (
                self.side.records.get(write.native_id or "")
            )
            if record is None and not write.create:
                results.append(WriteResult(write.key, ok=False, skipped="no such lead"))
                continue
            values = self.mapping.to_native(write.fields)
            values["CrmBridge_Id__c"] = write.crmbridge_id
            if write.stage and record is None:
                values["Status"] = self.mapping.stage_to_native(write.stage)
            if write.owner and not (record is not None and write.may_exist):
                values["OwnerId"] = write.owner  # a re-sent handoff leaves sales' owner alone
            self._annotate(values, write, "CrmBridge_")
            created = record is None
            touched = self.world.touch(self.side, record.id if record else None, values)
            results.append(WriteResult(write.key, ok=True, native_id=touched.id, created=created))
        return results

    def pull_outcomes(self, cursor: Cursor) -> Iterator[OutcomeBatch]:
        for page, next_cursor in self._pages(cursor):
            outcomes: list[Outcome] = []
            observations: list[Change] = []
            problems: list[Change] = []
            for record in page:
                change, found = self._read(record)
                (problems if change.problems else observations).append(change)
                outcomes.extend(found)
            yield OutcomeBatch(outcomes, next_cursor, observations, problems)

    def _read(self, record: MemoryRecord) -> tuple[Change, list[Outcome]]:
        system = self.system_name()
        values = record.values
        fields, problems = self.mapping.from_native(values)
        lead = Lead.from_fields(fields, source=system, system_id=record.id)
        change = Change(
            system,
            record.id,
            ChangeKind.UPSERT,
            record.modified_at,
            lead,
            dict(values),
            tuple(problems),
        )
        found: list[Outcome] = []
        common: dict[str, Any] = {
            "system": system,
            "native_id": record.id,
            "occurred_at": record.modified_at,
            "email": lead.email,
            "crmbridge_id": values.get("CrmBridge_Id__c"),
            "owner": values.get("OwnerId"),
        }
        status = values.get("Status")
        try:
            kind = self.mapping.outcome_from_native(str(status)) if status else None
            if kind is not None:
                reason = self.mapping.reason_from_native(
                    "Lead.Rejection_Reason__c", values.get("Rejection_Reason__c")
                )
                details = {}
                if values.get("ConvertedOpportunityId"):
                    details["opportunity_id"] = values["ConvertedOpportunityId"]
                found.append(
                    Outcome(
                        kind, native_value=str(status), reason=reason, details=details, **common
                    )
                )
            stage_name = values.get("StageName")
            if stage_name:
                deal = self.mapping.outcome_from_native(str(stage_name), "Opportunity.StageName")
                if deal in (OutcomeKind.WON, OutcomeKind.LOST):
                    reason = self.mapping.reason_from_native(
                        "Opportunity.Loss_Reason__c", values.get("Loss_Reason__c")
                    )
                    found.append(
                        Outcome(
                            deal,
                            native_value=str(stage_name),
                            reason=reason,
                            amount=values.get("Amount"),
                            **common,
                        )
                    )
        except MappingError as exc:
            change = Change(
                system,
                record.id,
                ChangeKind.UPSERT,
                record.modified_at,
                lead,
                dict(values),
                (_problem(exc.field or "status", exc),),
            )
            return change, []
        return change, found


def _problem(field_name: str, exc: MappingError) -> Any:
    from crmbridge.values import Problem

    return Problem(field_name, exc.rule or "picklist_mapping", exc.message)


@hookimpl
def crm_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """This module is a plugin too: ``make_plugin_manager(extra=[("memory", memory)])``."""
    register(MemoryMarketing)
    register(MemorySales)
