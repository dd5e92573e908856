"""Helpers to test the HubSpot connector against the HubSpot sandbox.

:func:`connector_for` points a :class:`~crmbridge_hubspot.connector.HubSpotConnector` at a sandbox
portal with fast retries; :class:`HubSpotHarness` drives a portal for the connector conformance
suite of :mod:`crmbridge.testing.conformance`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from crmbridge import ANNOTATIONS, LeadDefinition, OutcomeKind
from crmbridge.app import default_definition_path
from crmbridge.testing.conformance import ConformanceHarness
from crmbridge.testing.sandbox import FaultKind, FaultRule
from crmbridge_hubspot.connector import HubSpotConnector, HubSpotSettings
from crmbridge_hubspot.connector.schema import property_name
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox

FAST_RETRIES: dict[str, Any] = {
    "retry_attempts": 4,
    "retry_base_seconds": 0.01,
    "retry_cap_seconds": 0.05,
    "max_retry_after_seconds": 0.05,
}
"""Retry settings for tests: the same policy, waits of milliseconds."""

REASON_PICKLIST = """
[systems.hubspot.picklists.rejection_reason]
no_budget = { reason = "no_budget" }
bad_timing = { reason = "bad_timing" }
not_a_fit = { reason = "not_a_fit" }
"""
"""A rejection-reason picklist for HubSpot as the sales system (HubSpot has no standard one)."""

REASON_PROPERTY: dict[str, Any] = {
    "name": "rejection_reason",
    "label": "Rejection reason",
    "type": "enumeration",
    "fieldType": "select",
    "options": [
        {"value": "no_budget", "label": "No budget"},
        {"value": "bad_timing", "label": "Bad timing"},
        {"value": "not_a_fit", "label": "Not a fit"},
    ],
}
"""The sandbox property option (``properties=[REASON_PROPERTY]``) that goes with it."""


def default_definition() -> LeadDefinition:
    """The example lead definition that ships with crmbridge."""
    return LeadDefinition.load(default_definition_path())


def definition_with_reasons() -> LeadDefinition:
    """The example definition plus :data:`REASON_PICKLIST`."""
    text = default_definition_path().read_text(encoding="utf-8")
    return LeadDefinition.from_text(text + REASON_PICKLIST)


def add_option(sandbox: HubSpotSandbox, prop: str, value: str) -> None:
    """An admin adds ``value`` to the options of enumeration ``prop`` (picklist drift)."""
    current = sandbox.emulator.portal.catalog.get(prop)
    assert current is not None, f"no property {prop}"
    options = [{"value": o["value"], "label": o["label"]} for o in current.options]
    sandbox.control.control(
        "set_property_options", name=prop, options=[*options, {"value": value, "label": value}]
    )


def connector_for(
    sandbox: HubSpotSandbox,
    *,
    definition: LeadDefinition | None = None,
    sleep: Callable[[float], None] | None = None,
    **settings: Any,
) -> HubSpotConnector:
    """A HubSpot connector for a sandbox portal; ``settings`` override :data:`FAST_RETRIES`."""
    values: dict[str, Any] = {
        "access_token": sandbox.token,
        "base_url": sandbox.url,
        **FAST_RETRIES,
        **settings,
    }
    return HubSpotConnector(
        HubSpotSettings.model_validate(values), definition or default_definition(), sleep=sleep
    )


class HubSpotHarness(ConformanceHarness):
    """Drives a sandbox portal for the conformance suite; ``roles`` says which roles to test."""

    page_size: ClassVar[int] = 100

    def __init__(self, sandbox: HubSpotSandbox, roles: frozenset[str]) -> None:
        self.sandbox = sandbox
        self.roles = roles  # type: ignore[misc]
        self._connector: HubSpotConnector | None = None

    def connector(self) -> HubSpotConnector:
        """One connector for the portal (the example definition plus a reason picklist)."""
        if self._connector is None:
            self._connector = connector_for(self.sandbox, definition=definition_with_reasons())
        return self._connector

    @property
    def _mapping(self) -> Any:
        return self.connector().mapping

    def _native(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        values = self._mapping.to_native({k: v for k, v in fields.items() if k != "stage"})
        if fields.get("stage"):
            values["lifecyclestage"] = self._mapping.stage_to_native(fields["stage"])
        return {k: v for k, v in values.items() if v is not None}

    def add_source_leads(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Import contacts (as a HubSpot import does); their ids."""
        ids: list[str] = self.sandbox.control.control(
            "seed_contacts", contacts=[self._native(r) for r in rows]
        )
        return ids

    def _email(self, native_id: str) -> str:
        contact = self.sandbox.emulator.portal.store.get(native_id)
        assert contact is not None, f"no contact {native_id}"
        return str(contact.props["email"])

    def edit_source_lead(self, native_id: str, fields: Mapping[str, Any]) -> None:
        """A person edits the contact in HubSpot's UI."""
        self.sandbox.control.control(
            "edit_contact", email=self._email(native_id), properties=self._native(fields)
        )

    def delete_source_lead(self, native_id: str) -> None:
        """A person deletes the contact (HubSpot archives it)."""
        self.sandbox.control.control("archive_contact", email=self._email(native_id))

    def give_outcome(self, native_id: str, kind: OutcomeKind, reason: str | None = None) -> None:
        """A rep sets the lead status (and the rejection reason) in HubSpot's UI."""
        mapping = self._mapping
        values = {"hs_lead_status": mapping.outcome_to_native(kind)}
        if reason:
            values["rejection_reason"] = mapping.picklist("rejection_reason").write(
                "reason", reason
            )
        self.sandbox.control.control(
            "edit_contact", email=self._email(native_id), properties=values
        )

    def read_record(self, native_id: str) -> dict[str, Any]:
        """The contact's shared fields, its stage, and crmbridge's properties by annotation."""
        contact = self.sandbox.emulator.portal.store.get(native_id)
        assert contact is not None, f"no contact {native_id}"
        props = dict(contact.props)
        fields, _problems = self._mapping.from_native(props)
        stage = props.get("lifecyclestage")
        annotations = {
            name: props[property_name(name)]
            for name in ANNOTATIONS
            if props.get(property_name(name))
        }
        return {
            **fields,
            "stage": self._mapping.stage_from_native(stage) if stage else None,
            "annotations": annotations,
        }

    def record_count(self) -> int:
        """Live contacts in the portal."""
        return int(self.sandbox.emulator.portal.store.live_count())

    def inject_drift(self) -> str:
        """An admin adds a lifecycle stage the definition does not map."""
        add_option(self.sandbox, "lifecyclestage", "recycled")
        return "recycled"

    def fail_next_write_partially(self) -> None:
        """The next batch write fails for some of its records (a PARTIAL fault)."""
        rule = FaultRule(
            kind=FaultKind.PARTIAL, on_calls=(1,), method="POST", path="/batch/", fail_share=0.3
        )
        self.sandbox.set_faults([rule], seed=7)

    def http_calls(self) -> int:
        """API calls the portal answered."""
        return len(self.sandbox.calls())
