"""``setup`` and ``check`` of the HubSpot connector against the sandbox: crmbridge's properties
created once, and the portal's properties and picklists checked against the lead definition."""

from __future__ import annotations

import pytest
from crmbridge_hubspot.connector.schema import CRMBRIDGE_PROPERTIES
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import connector_for
from hubspot.crm.properties import PropertyCreate

from crmbridge import ANNOTATIONS

pytestmark = pytest.mark.sandbox

WRITES = ("POST", "PATCH", "PUT", "DELETE")


def writes(sandbox: HubSpotSandbox) -> list[str]:
    return [c.endpoint for c in sandbox.calls() if c.method in WRITES]


def test_setup_creates_the_group_and_a_property_per_annotation(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = connector_for(hubspot_sandbox)
    report = connector.setup()
    names = {spec.name for spec in CRMBRIDGE_PROPERTIES}
    assert len(names) == len(ANNOTATIONS)
    assert "crmbridge_id" in names
    assert "crmbridge_sla_breached" in names
    assert report.created[0] == "property group crmbridge"
    assert len(report.created) == 1 + len(ANNOTATIONS)
    catalog = hubspot_sandbox.emulator.portal.catalog
    assert "crmbridge" in catalog.groups
    outcome = catalog.get("crmbridge_outcome")
    assert outcome is not None
    assert outcome.type == "enumeration"
    assert outcome.option_values() == [
        "accepted", "rejected", "recycled", "converted", "won", "lost"
    ]  # fmt: skip
    breached = catalog.get("crmbridge_sla_breached")
    assert breached is not None
    assert breached.type == "bool"
    due = catalog.get("crmbridge_sla_due_at")
    assert due is not None
    assert due.type == "datetime"
    score = catalog.get("crmbridge_score")
    assert score is not None
    assert score.type == "number"
    assert score.group_name == "crmbridge"


def test_setup_twice_changes_nothing(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    connector.setup()
    hubspot_sandbox.server.call_log.reset()
    second = connector.setup()
    assert second.created == []
    assert not second.changed
    assert len(second.existing) == 1 + len(ANNOTATIONS)
    assert writes(hubspot_sandbox) == []
    report = connector.check()
    assert report.ok, [str(i) for i in report.items] + [str(d) for d in report.drift]
    assert report.drift == []


def test_setup_dry_run_says_what_it_would_create_and_creates_nothing(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    report = connector_for(hubspot_sandbox).setup(dry_run=True)
    assert len(report.created) == 1 + len(ANNOTATIONS)
    assert writes(hubspot_sandbox) == []
    assert hubspot_sandbox.emulator.portal.catalog.get("crmbridge_id") is None


@pytest.mark.hubspot_sandbox(
    properties=[
        {
            "name": "crmbridge_outcome",
            "type": "enumeration",
            "fieldType": "select",
            "options": [{"value": "accepted", "label": "Taken by sales"}],
        },
        {"name": "crmbridge_score", "type": "string", "fieldType": "text"},
        {"name": "lead_source", "remove": True},
    ]
)
def test_setup_completes_options_and_says_what_a_person_must_do(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = connector_for(hubspot_sandbox)
    report = connector.setup()
    assert (
        "options rejected, recycled, converted, won, lost of contact property "
        + ("crmbridge_outcome")
        in report.created
    )
    prop = hubspot_sandbox.emulator.portal.catalog.get("crmbridge_outcome")
    assert prop is not None
    assert prop.option_values()[:2] == ["accepted", "rejected"]
    assert [o["label"] for o in prop.options[:2]] == ["Taken by sales", "Rejected"]
    assert any("crmbridge_score is of type string" in m for m in report.manual)
    assert any(m.startswith("contact property lead_source (") for m in report.manual)
    assert connector.setup().created == []


def test_setup_names_an_archived_property_that_holds_a_name(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    api = hubspot_sandbox.client.crm.properties.core_api
    api.create(
        "contacts",
        PropertyCreate(
            name="crmbridge_why", label="Why", type="string", field_type="text",
            group_name="contactinformation",
        ),
    )  # fmt: skip
    api.archive("contacts", "crmbridge_why")
    report = connector_for(hubspot_sandbox).setup()
    assert any(
        m.startswith("contact property crmbridge_why: a deleted (archived) property")
        for m in report.manual
    )


def test_check_before_setup_names_the_missing_properties_and_the_fix(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    report = connector_for(hubspot_sandbox).check()
    assert not report.ok
    [item] = [i for i in report.items if i.subject == "crmbridge properties"]
    assert item.level == "error"
    assert "crmbridge_id" in item.message
    assert "crmbridge_definition_version" in item.message
    assert item.fix == "run `crmbridge setup`"
    assert report.drift == []
    assert writes(hubspot_sandbox) == []


@pytest.mark.hubspot_sandbox(
    properties=[
        {"name": "lifecyclestage", "add_options": ["recycled"]},
        {"name": "hs_lead_status", "remove_options": ["BAD_TIMING"]},
    ]
)
def test_check_reports_picklist_drift_by_value(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    connector.setup()
    report = connector.check()
    assert not report.ok
    found = {(d.picklist, d.value, d.kind) for d in report.drift}
    assert found == {
        ("lifecyclestage", "recycled", "unmapped"),
        ("hs_lead_status", "BAD_TIMING", "missing"),
    }
    unmapped = next(d for d in report.drift if d.value == "recycled")
    assert "[systems.hubspot.picklists.lifecyclestage]" in unmapped.message
    assert "'recycled'" in unmapped.message


@pytest.mark.hubspot_sandbox(properties=[{"name": "lead_source", "remove": True}])
def test_check_reports_a_mapped_property_hubspot_lacks(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    connector.setup()
    report = connector.check()
    errors = {i.subject: i for i in report.items if i.level == "error"}
    assert set(errors) == {"property lead_source", "picklist lead_source"}
    assert (
        "[systems.hubspot.fields] maps field lead_source" in errors["property lead_source"].message
    )


def test_check_warns_of_a_number_mapped_to_an_enumeration(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox)
    connector.setup()
    report = connector.check()
    [warning] = [i for i in report.items if i.level == "warning"]
    assert warning.subject == "property numemployees"
    assert "1-5" in warning.message
    assert report.ok
