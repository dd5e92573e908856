"""The in-memory connectors pass the connector conformance suite (which checks the suite too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from crmbridge.app import default_definition_path
from crmbridge.connector import Connector
from crmbridge.definition import LeadDefinition
from crmbridge.lead import OutcomeKind
from crmbridge.testing import memory
from crmbridge.testing.conformance import ConformanceHarness, ConnectorConformance

DEFINITION = LeadDefinition.load(default_definition_path())


class MemoryHarness(ConformanceHarness):
    """Drives a memory world; ``side`` picks the marketing or the sales connector."""

    page_size: ClassVar[int] = 100

    def __init__(self, side: str) -> None:
        self.world = memory.memory_world(f"conformance-{side}", fresh=True)
        self.side_name = side
        self.cls = memory.MemoryMarketing if side == "marketing" else memory.MemorySales
        self.roles = frozenset({side})  # type: ignore[misc]
        self._connector: Connector | None = None

    def connector(self) -> Connector:
        if self._connector is None:
            settings = memory.MemorySettings(world=self.world.name)
            self._connector = self.cls(settings, DEFINITION)
        return self._connector

    @property
    def side(self) -> memory.MemorySide:
        return self.world.marketing if self.side_name == "marketing" else self.world.sales

    def add_source_leads(self, rows: Any) -> list[str]:
        mapping = DEFINITION.system("hubspot")
        ids = []
        for row in rows:
            values = mapping.to_native({k: v for k, v in row.items() if k != "stage"})
            if row.get("stage"):
                values["lifecyclestage"] = mapping.stage_to_native(row["stage"])
            ids.append(self.world.marketing_add(**values))
        return ids

    def edit_source_lead(self, native_id: str, fields: Any) -> None:
        values = DEFINITION.system("hubspot").to_native(fields)
        self.world.touch(self.world.marketing, native_id, values)

    def delete_source_lead(self, native_id: str) -> None:
        self.world.marketing.records[native_id].deleted = True
        self.world.touch(self.world.marketing, native_id, {})

    def give_outcome(self, native_id: str, kind: OutcomeKind, reason: str | None = None) -> None:
        mapping = DEFINITION.system("salesforce")
        status = mapping.picklist("Lead.Status").write("outcome", str(kind))
        values: dict[str, Any] = {"Status": status}
        if reason:
            values["Rejection_Reason__c"] = mapping.picklist("Lead.Rejection_Reason__c").write(
                "reason", reason
            )
        self.world.touch(self.world.sales, native_id, values)

    def read_record(self, native_id: str) -> dict[str, Any]:
        system = "hubspot" if self.side_name == "marketing" else "salesforce"
        mapping = DEFINITION.system(system)
        values = self.side.records[native_id].values
        fields, _ = mapping.from_native(values)
        native_stage = values.get(mapping.stage_field.split(".")[-1] if mapping.stage_field else "")
        prefix = "crmbridge_" if self.side_name == "marketing" else "CrmBridge_"
        annotations = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        stage = mapping.stage_from_native(native_stage) if native_stage else None
        return {**fields, "stage": stage, "annotations": annotations}

    def record_count(self) -> int:
        return sum(1 for r in self.side.records.values() if not r.deleted)

    def inject_drift(self) -> str:
        key = "lifecyclestage" if self.side_name == "marketing" else "Lead.Status"
        self.world.extra_values.setdefault(key, set()).add("Nurture")
        return "Nurture"

    def fail_next_write_partially(self) -> None:
        self.world.fail_next_write = True

    def http_calls(self) -> int:
        return self.side.calls


class TestMemoryMarketing(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness("marketing")


class TestMemorySales(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> MemoryHarness:
        return MemoryHarness("sales")


def test_default_definition_is_the_example_config() -> None:
    assert (
        default_definition_path().read_text()
        == (Path(__file__).parents[2] / "configs" / "lead-definition.toml").read_text()
    )
