"""Helpers to test the HubSpot connector against the HubSpot sandbox.

:func:`connector_for` points a :class:`~crmbridge_hubspot.connector.HubSpotConnector` at a sandbox
portal with fast retries; :mod:`crmbridge_hubspot.conformance` drives a portal for crmbridge's
connector conformance suite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmbridge import LeadDefinition
from crmbridge.app import default_definition_path
from crmbridge_hubspot.connector import HubSpotConnector, HubSpotSettings
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
