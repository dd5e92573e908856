"""The HubSpot sandbox driven for crmbridge's connector conformance suite
(:mod:`crmbridge.testing.conformance`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from crmbridge import ANNOTATIONS, OutcomeKind
from crmbridge.testing.conformance import ConformanceHarness
from crmbridge.testing.sandbox import FaultKind, FaultRule
from crmbridge_hubspot.connector import HubSpotConnector
from crmbridge_hubspot.connector.schema import property_name
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import add_option, connector_for, definition_with_reasons


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
