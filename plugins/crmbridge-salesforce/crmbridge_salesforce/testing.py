"""Helpers to test the Salesforce connector against the Salesforce sandbox.

:func:`connector_for` points a :class:`~crmbridge_salesforce.connector.SalesforceConnector` at a
sandbox org (from the sandbox's own ``env()``) with fast retries; :class:`SalesforceHarness`
drives an org for the connector conformance suite of :mod:`crmbridge.testing.conformance`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from crmbridge import OutcomeKind
from crmbridge.app import default_definition_path
from crmbridge.definition import LeadDefinition
from crmbridge.testing.conformance import ConformanceHarness
from crmbridge.testing.sandbox import FaultKind, FaultRule
from crmbridge_salesforce.connector import SalesforceConnector, SalesforceSettings
from crmbridge_salesforce.connector.records import REJECTION_REASONS
from crmbridge_salesforce.connector.schema import crmbridge_fields
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox

FAST_RETRIES: dict[str, Any] = {
    "retry_attempts": 4,
    "retry_base_seconds": 0.01,
    "retry_cap_seconds": 0.05,
    "max_retry_after_seconds": 0.05,
    "bulk_poll_seconds": 0.05,
}
"""Retry and polling settings for tests: the same policy, waits of milliseconds."""
PREFIX = "CRMBRIDGE_SALESFORCE__"


def default_definition() -> LeadDefinition:
    """The example lead definition that ships with crmbridge."""
    return LeadDefinition.load(default_definition_path())


def sandbox_settings(sandbox: SalesforceSandbox, **settings: Any) -> SalesforceSettings:
    """Settings from the sandbox's ``env()`` (client credentials) plus :data:`FAST_RETRIES`."""
    values: dict[str, Any] = {
        k.removeprefix(PREFIX).lower(): v for k, v in sandbox.env().items() if k.startswith(PREFIX)
    }
    values.update(FAST_RETRIES)
    values.update(settings)
    return SalesforceSettings.model_validate(values)


def connector_for(
    sandbox: SalesforceSandbox,
    *,
    definition: LeadDefinition | None = None,
    sleep: Callable[[float], None] | None = None,
    **settings: Any,
) -> SalesforceConnector:
    """A Salesforce connector for a sandbox org; ``settings`` override the defaults."""
    return SalesforceConnector(
        sandbox_settings(sandbox, **settings), definition or default_definition(), sleep=sleep
    )


class SalesforceHarness(ConformanceHarness):
    """Drives a sandbox org for the conformance suite; ``roles`` picks the roles tested."""

    page_size: ClassVar[int] = 200

    def __init__(
        self, sandbox: SalesforceSandbox, roles: frozenset[str] = frozenset({"sales"})
    ) -> None:
        self.sandbox = sandbox
        self.roles = roles  # type: ignore[misc]
        self._connector: SalesforceConnector | None = None
        self._definition = default_definition()
        self.mapping = self._definition.system("salesforce")

    def connector(self) -> SalesforceConnector:
        if self._connector is None:
            self._connector = connector_for(
                self.sandbox, definition=self._definition, query_page_size=self.page_size
            )
        return self._connector

    # -- acting as people ------------------------------------------------------------------

    def add_source_leads(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        records = []
        for row in rows:
            values = self.mapping.to_native({k: v for k, v in row.items() if k != "stage"})
            if row.get("stage"):
                values["Status"] = self.mapping.stage_to_native(str(row["stage"]))
            records.append(values)
        answer = self.sandbox.control.control("seed_records", object="Lead", records=records)
        return [str(i) for i in answer["ids"]]

    def edit_source_lead(self, native_id: str, fields: Mapping[str, Any]) -> None:
        values = self.mapping.to_native(fields)
        self.sandbox.control.control("edit_record", object="Lead", id=native_id, fields=values)

    def delete_source_lead(self, native_id: str) -> None:
        self.sandbox.control.control("delete_record", object="Lead", id=native_id)

    def give_outcome(self, native_id: str, kind: OutcomeKind, reason: str | None = None) -> None:
        give_outcome(self.sandbox, self.mapping, native_id, kind, reason)

    # -- reading the org -------------------------------------------------------------------

    def read_record(self, native_id: str) -> dict[str, Any]:
        record = dict(self.sandbox.emulator.org.get("Lead", native_id) or {})
        fields, _ = self.mapping.from_native(record)
        status = record.get("Status")
        stage = self.mapping.stage_from_native(str(status)) if status else None
        specs = crmbridge_fields(self.connector().salesforce_settings.external_id_field)
        annotations = {s.annotation: record[s.name] for s in specs if s.name in record}
        # Without crmbridge's outcome fields (a sales-side org), the verdict shows in Lead
        # Status and the rejection reason.
        if "outcome" not in annotations and status:
            kind = self.mapping.outcome_from_native(str(status))
            if kind is not None:
                annotations["outcome"] = str(kind)
        reason = self.mapping.reason_from_native(
            REJECTION_REASONS, record.get("Rejection_Reason__c")
        )
        if "outcome_reason" not in annotations and reason is not None:
            annotations["outcome_reason"] = self._definition.reasons[reason].label
        return {**fields, "stage": stage, "annotations": annotations}

    def record_count(self) -> int:
        store = self.sandbox.emulator.org.stores["Lead"]
        return sum(1 for r in list(store.records.values()) if not r.get("IsDeleted"))

    def inject_drift(self) -> str:
        statuses = [
            v.value
            for v in self.sandbox.emulator.schema.objects["Lead"].fields["Status"].picklist or ()
        ]
        self.sandbox.control.control(
            "set_picklist", field="Lead.Status", values=[*statuses, "Nurture"]
        )
        return "Nurture"

    def fail_next_write_partially(self) -> None:
        self.sandbox.set_faults(
            [
                FaultRule(
                    kind=FaultKind.PARTIAL,
                    method="PATCH",
                    path=r"/composite/sobjects",
                    probability=1.0,
                    times=1,
                    fail_share=0.5,
                )
            ]
        )

    def http_calls(self) -> int:
        return len(self.sandbox.server.call_log)


def give_outcome(
    sandbox: SalesforceSandbox,
    mapping: Any,
    lead_id: str,
    kind: OutcomeKind,
    reason: str | None = None,
    *,
    amount: float | None = None,
) -> dict[str, Any]:
    """A rep gives a verdict in the sandbox org; returns what the control action answered.

    Accepted, rejected and recycled set Lead Status (and the rejection reason); converted
    converts the lead (with an opportunity); won and lost convert it if needed and close the
    opportunity (with ``amount``, and the loss reason).
    """
    control = sandbox.control
    if kind in (OutcomeKind.ACCEPTED, OutcomeKind.REJECTED, OutcomeKind.RECYCLED):
        status = mapping.picklist("Lead.Status").write("outcome", str(kind))
        native_reason = (
            mapping.picklist(REJECTION_REASONS).write("reason", reason) if reason else None
        )
        return dict(control.control("set_lead_status", lead_id=lead_id, status=status,
                                    reason=native_reason))  # fmt: skip
    lead = sandbox.emulator.org.get("Lead", lead_id) or {}
    opportunity = lead.get("ConvertedOpportunityId")
    converted: dict[str, Any] = {}
    if not opportunity:
        converted = dict(control.control("convert_lead", lead_id=lead_id, amount=amount))
        opportunity = converted["opportunity_id"]
    if kind is OutcomeKind.CONVERTED:
        return converted
    loss = (
        mapping.picklist("Opportunity.Loss_Reason__c").write("reason", reason)
        if reason and kind is OutcomeKind.LOST
        else None
    )
    closed = control.control(
        "close_opportunity", opportunity_id=opportunity, won=kind is OutcomeKind.WON,
        amount=amount, loss_reason=loss,
    )  # fmt: skip
    return {**converted, **dict(closed)}
