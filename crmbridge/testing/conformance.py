"""The connector conformance suite: the tests every connector gets for free.

A connector's tests subclass :class:`ConnectorConformance` and provide one fixture, ``harness``,
returning a :class:`ConformanceHarness` that drives the connector's system (its sandbox): seed
records, act as a person, read a record back, inject drift or a partial failure. The suite then
checks the contract of DESIGN.md through the connector's public methods only: round trips,
idempotent replay, paging, partial failures, drift, setup, usage counting.

.. code-block:: python

    class TestMyConnector(ConnectorConformance):
        @pytest.fixture
        def harness(self, my_sandbox):
            return MyHarness(my_sandbox)

Tests of a role the connector does not play are skipped with the reason.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest

from crmbridge.connector import Change, ChangeKind, Connector, Cursor, LeadWrite
from crmbridge.definition import LeadDefinition
from crmbridge.lead import Lead, OutcomeKind
from crmbridge.store.store import crmbridge_id_for


class ConformanceHarness(abc.ABC):
    """How the suite drives one connector's system. Field names are the lead definition's."""

    #: the roles the connector plays (``marketing``, ``sales``).
    roles: ClassVar[frozenset[str]] = frozenset({"marketing", "sales"})
    #: the most records one read page returns (the suite seeds more, to cross a page).
    page_size: ClassVar[int] = 100

    @abc.abstractmethod
    def connector(self) -> Connector:
        """A ready connector pointed at a fresh system."""

    @property
    def definition(self) -> LeadDefinition:
        return self.connector().definition

    # -- marketing role ------------------------------------------------------------------------

    def add_source_leads(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Create records in the marketing system from shared fields (plus ``stage``); ids."""
        raise NotImplementedError

    def edit_source_lead(self, native_id: str, fields: Mapping[str, Any]) -> None:
        """A person edits a marketing record."""
        raise NotImplementedError

    def delete_source_lead(self, native_id: str) -> None:
        """A person deletes (archives) a marketing record."""
        raise NotImplementedError

    # -- sales role ----------------------------------------------------------------------------

    def give_outcome(self, native_id: str, kind: OutcomeKind, reason: str | None = None) -> None:
        """A sales rep gives a verdict on a lead (``reason`` is a shared reason code)."""
        raise NotImplementedError

    # -- both ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def read_record(self, native_id: str) -> dict[str, Any]:
        """A record's shared fields as the system holds them, plus ``"stage"`` (shared) when the
        system shows one and ``"annotations"`` (crmbridge's own fields, by annotation name)."""

    @abc.abstractmethod
    def record_count(self) -> int:
        """How many live lead records the system holds."""

    @abc.abstractmethod
    def inject_drift(self) -> str:
        """Add a picklist value the definition does not map; return the value."""

    @abc.abstractmethod
    def fail_next_write_partially(self) -> None:
        """Make the next batch write fail for some of its records (and only for them)."""

    @abc.abstractmethod
    def http_calls(self) -> int:
        """HTTP calls the system has answered so far."""


def sample_leads(count: int, prefix: str = "conformance") -> list[dict[str, Any]]:
    """Valid, distinct leads in the default definition's shared fields."""
    return [
        {
            "email": f"{prefix}.{i}@example-{i % 7}.com",
            "first_name": f"Ada{i}",
            "last_name": f"Lovelace{i}",
            "company": f"Analytical Engines {i % 13}",
            "job_title": "Head of Research" if i % 3 == 0 else "Analyst",
            "country": "GB",
            "industry": "Software",
            "lead_source": "webinar",
        }
        for i in range(count)
    ]


def _drain_changes(connector: Connector, cursor: Cursor) -> tuple[list[Any], Cursor]:
    changes: list[Change] = []
    last = cursor
    for batch in connector.pull_changes(cursor):
        changes.extend(batch.changes)
        last = batch.cursor
    return changes, last


def _write(lead: Mapping[str, Any], **kw: Any) -> LeadWrite:
    return LeadWrite(
        email=str(lead["email"]).lower(),
        crmbridge_id=crmbridge_id_for(str(lead["email"]).lower()),
        fields={k: v for k, v in lead.items() if k != "stage"},
        **kw,
    )


class ConnectorConformance:
    """The suite. Subclass it in a test module and provide the ``harness`` fixture."""

    @pytest.fixture
    def harness(self) -> Iterator[ConformanceHarness]:  # pragma: no cover - overridden
        raise NotImplementedError("provide a `harness` fixture returning a ConformanceHarness")

    @staticmethod
    def _needs(harness: ConformanceHarness, role: str) -> None:
        if role not in harness.roles:
            pytest.skip(f"the connector does not play the {role} role")

    # -- both roles ----------------------------------------------------------------------------

    def test_declares_the_contract(self, harness: ConformanceHarness) -> None:
        connector = harness.connector()
        type(connector).validate_class()
        assert connector.system_name() in connector.definition.systems
        assert harness.roles <= connector.roles

    def test_setup_is_idempotent_and_check_passes(self, harness: ConformanceHarness) -> None:
        connector = harness.connector()
        connector.setup()
        second = connector.setup()
        assert second.created == [], f"second setup created {second.created}"
        report = connector.check()
        assert report.ok, [str(i) for i in report.items if i.level == "error"] + [
            str(d) for d in report.drift
        ]

    def test_check_reports_injected_drift_by_value(self, harness: ConformanceHarness) -> None:
        connector = harness.connector()
        connector.setup()
        value = harness.inject_drift()
        report = connector.check()
        assert not report.ok
        assert any(d.value == value and d.kind == "unmapped" for d in report.drift), report.drift
        assert any(value in d.message for d in report.drift)

    def test_api_usage_counts_the_calls_made(self, harness: ConformanceHarness) -> None:
        connector = harness.connector()
        before_calls, before_http = connector.api_usage().calls, harness.http_calls()
        connector.check()
        made = harness.http_calls() - before_http
        assert made > 0
        assert connector.api_usage().calls - before_calls == made

    # -- marketing role ------------------------------------------------------------------------

    def test_pull_changes_reads_every_record_once_across_pages(
        self, harness: ConformanceHarness
    ) -> None:
        self._needs(harness, "marketing")
        leads = sample_leads(harness.page_size * 2 + 7)
        ids = harness.add_source_leads(leads)
        changes, _cursor = _drain_changes(harness.connector(), Cursor())
        upserts = [c for c in changes if c.kind is ChangeKind.UPSERT and c.native_id in ids]
        assert sorted(c.native_id for c in upserts) == sorted(ids)
        by_id = {c.native_id: c for c in upserts}
        for native_id, lead in zip(ids, leads, strict=True):
            change = by_id[native_id]
            assert isinstance(change.lead, Lead)
            assert change.lead.email == lead["email"].lower()
            assert change.lead.fields["company"] == lead["company"]
            assert change.modified_at.tzinfo is not None
            assert not change.problems

    def test_incremental_pull_sees_edits_and_deletes(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "marketing")
        ids = harness.add_source_leads(sample_leads(5, "incremental"))
        connector = harness.connector()
        _changes, cursor = _drain_changes(connector, Cursor())
        harness.edit_source_lead(ids[0], {"company": "Babbage & Co"})
        harness.delete_source_lead(ids[1])
        changes, _ = _drain_changes(connector, cursor)
        edited = [c for c in changes if c.native_id == ids[0] and c.kind is ChangeKind.UPSERT]
        assert edited
        assert edited[-1].lead is not None
        assert edited[-1].lead.fields["company"] == "Babbage & Co"
        assert any(c.native_id == ids[1] and c.kind is ChangeKind.DELETE for c in changes)

    def test_replaying_a_cursor_reads_the_same_records(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "marketing")
        ids = harness.add_source_leads(sample_leads(3, "replay"))
        connector = harness.connector()
        first, _ = _drain_changes(connector, Cursor())
        again, _ = _drain_changes(connector, Cursor())
        assert {c.native_id for c in first} >= set(ids)
        assert {c.native_id for c in again} == {c.native_id for c in first}

    def test_write_outcomes_round_trip_and_replay(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "marketing")
        leads = sample_leads(3, "writeback")
        ids = harness.add_source_leads([{**lead, "stage": "mql"} for lead in leads])
        connector = harness.connector()
        connector.setup()
        writes = [
            _write(
                lead,
                native_id=native_id,
                stage="recycled",
                stage_backwards=True,
                outcome=OutcomeKind.REJECTED,
                annotations={"outcome": "rejected", "outcome_reason": "No budget", "score": 42},
                create=False,
            )
            for lead, native_id in zip(leads, ids, strict=True)
        ]
        first = connector.write_outcomes(writes)
        assert [r.ok for r in first] == [True] * 3, [str(r.error) for r in first]
        snapshot = [harness.read_record(i) for i in ids]
        again = connector.write_outcomes(writes)
        assert all(r.ok for r in again)
        assert [harness.read_record(i) for i in ids] == snapshot
        for record in snapshot:
            assert record["stage"] == "recycled" or record["stage"] in _spelled_alike(
                connector, "recycled"
            )
            assert record["annotations"]["outcome"] == "rejected"
            assert record["annotations"]["outcome_reason"] == "No budget"

    def test_write_outcomes_partial_failure_is_per_record(
        self, harness: ConformanceHarness
    ) -> None:
        self._needs(harness, "marketing")
        leads = sample_leads(10, "partial-mkt")
        ids = harness.add_source_leads(leads)
        connector = harness.connector()
        connector.setup()
        harness.fail_next_write_partially()
        writes = [
            _write(lead, native_id=i, annotations={"score": 7}, create=False)
            for lead, i in zip(leads, ids, strict=True)
        ]
        results = connector.write_outcomes(writes)
        assert len(results) == len(writes)
        failed = [r for r in results if not r.ok]
        assert 0 < len(failed) < len(writes)
        assert all(r.error is not None and str(r.error) for r in failed)
        assert {r.key for r in results} == {w.key for w in writes}

    # -- sales role ----------------------------------------------------------------------------

    def test_push_leads_is_an_idempotent_upsert(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "sales")
        connector = harness.connector()
        connector.setup()
        leads = sample_leads(5, "push")
        before = harness.record_count()
        writes = [_write(lead, stage="mql", annotations={"score": 70}) for lead in leads]
        first = connector.push_leads(writes)
        assert all(r.ok for r in first), [str(r.error) for r in first]
        assert harness.record_count() == before + 5
        second = connector.push_leads(writes)
        assert all(r.ok for r in second)
        assert harness.record_count() == before + 5, "a replayed push created duplicates"
        assert [r.native_id for r in second] == [r.native_id for r in first]
        for result, lead in zip(first, leads, strict=True):
            assert result.native_id is not None
            record = harness.read_record(result.native_id)
            assert record["company"] == lead["company"]

    def test_push_leads_partial_failure_is_per_record(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "sales")
        connector = harness.connector()
        connector.setup()
        harness.fail_next_write_partially()
        writes = [_write(lead, stage="mql") for lead in sample_leads(10, "partial-sales")]
        results = connector.push_leads(writes)
        assert len(results) == len(writes)
        failed = [r for r in results if not r.ok]
        assert 0 < len(failed) < len(writes)
        assert all(r.error is not None for r in failed)

    def test_pull_outcomes_reads_a_reps_verdict_once(self, harness: ConformanceHarness) -> None:
        self._needs(harness, "sales")
        connector = harness.connector()
        connector.setup()
        lead = sample_leads(1, "verdict")[0]
        [result] = connector.push_leads([_write(lead, stage="mql")])
        assert result.ok
        assert result.native_id
        cursor = Cursor()
        for batch in connector.pull_outcomes(cursor):
            cursor = batch.cursor
        harness.give_outcome(result.native_id, OutcomeKind.REJECTED, "no_budget")
        outcomes = [o for batch in connector.pull_outcomes(cursor) for o in batch.outcomes]
        mine = [o for o in outcomes if o.native_id == result.native_id]
        assert [o.kind for o in mine] == [OutcomeKind.REJECTED]
        assert mine[0].reason == "no_budget"
        assert mine[0].email == lead["email"].lower()
        keys = {o.key for o in mine}
        replay = [o for batch in connector.pull_outcomes(cursor) for o in batch.outcomes]
        assert {o.key for o in replay if o.native_id == result.native_id} <= keys


def _spelled_alike(connector: Connector, stage: str) -> set[str]:
    """Shared stages the system writes with the same native value as ``stage``."""
    mapping = connector.mapping
    if mapping.stage_field is None:
        return set()
    picklist = mapping.picklist(mapping.stage_field)
    native = picklist.write("stage", stage)
    return {
        s
        for s in connector.definition.stages
        if picklist.can_write("stage", s) and picklist.write("stage", s) == native
    }
