"""The properties API and the owners API through the real SDK, and picklist drift."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox, SandboxFactory
from hubspot.crm.contacts import ApiException as ContactsApiException
from hubspot.crm.contacts import SimplePublicObjectInputForCreate
from hubspot.crm.properties import ApiException, PropertyCreate, PropertyUpdate
from hubspot.crm.properties.exceptions import NotFoundException

pytestmark = pytest.mark.sandbox

LIFECYCLE = [
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
    "customer", "evangelist", "other",
]  # fmt: skip
LEAD_STATUS = [
    "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT",
    "CONNECTED", "BAD_TIMING",
]  # fmt: skip


def core(sandbox: HubSpotSandbox) -> Any:
    return sandbox.client.crm.properties.core_api


def crmbridge_property(**overrides: Any) -> PropertyCreate:
    spec = {
        "name": "crmbridge_stage",
        "label": "crmbridge stage",
        "type": "enumeration",
        "field_type": "select",
        "group_name": "contactinformation",
        "options": [{"label": "MQL", "value": "mql"}, {"label": "SQL", "value": "sql"}],
    }
    return PropertyCreate(**{**spec, **overrides})


def create_contact(sandbox: HubSpotSandbox, **properties: str) -> Any:
    body = SimplePublicObjectInputForCreate(properties=properties)
    return sandbox.client.crm.contacts.basic_api.create(simple_public_object_input_for_create=body)


def test_default_contact_properties(hubspot_sandbox: HubSpotSandbox) -> None:
    props = {p.name: p for p in core(hubspot_sandbox).get_all("contacts").results}
    assert [o.value for o in props["lifecyclestage"].options] == LIFECYCLE
    assert [o.value for o in props["hs_lead_status"].options] == LEAD_STATUS
    assert props["lead_source"].hubspot_defined is False
    assert props["lead_source"].group_name == "contactinformation"
    assert props["email"].type == "string"
    assert props["lastmodifieddate"].type == "datetime"
    assert props["hs_object_id"].modification_metadata.read_only_value is True
    assert props["num_conversion_events"].modification_metadata.read_only_value is True
    assert [o.value for o in props["numemployees"].options][-1] == "1000+"
    assert not [name for name in props if name.startswith("crmbridge_")]


def test_create_get_and_list_a_custom_property(hubspot_sandbox: HubSpotSandbox) -> None:
    created = core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    assert (created.name, created.type, created.hubspot_defined) == (
        "crmbridge_stage",
        "enumeration",
        False,
    )
    assert created.created_at is not None
    fetched = core(hubspot_sandbox).get_by_name("contacts", "crmbridge_stage")
    assert [o.value for o in fetched.options] == ["mql", "sql"]
    names = [p.name for p in core(hubspot_sandbox).get_all("contacts").results]
    assert "crmbridge_stage" in names


def test_creating_an_existing_property_is_409(hubspot_sandbox: HubSpotSandbox) -> None:
    core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["category"]) == (409, "OBJECT_ALREADY_EXISTS")
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).create("contacts", property_create=crmbridge_property(name="email"))
    assert exc.value.status == 409


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"type": "color"}, "Invalid type"),
        ({"field_type": "text"}, "not valid for type"),
        ({"group_name": "nowhere"}, "does not exist"),
        ({"name": "Bad Name"}, "Invalid property name"),
        ({"name": "hs_mine"}, "hs_ prefix"),
        ({"label": None}, "Missing required"),
    ],
)
def test_invalid_property_definitions_are_400(
    hubspot_sandbox: HubSpotSandbox, overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).create("contacts", property_create=crmbridge_property(**overrides))
    assert exc.value.status == 400
    assert fragment in json.loads(exc.value.body)["message"]


def test_enumeration_values_are_validated_on_write(hubspot_sandbox: HubSpotSandbox) -> None:
    core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    assert create_contact(hubspot_sandbox, email="a@example.com", crmbridge_stage="mql")
    with pytest.raises(ContactsApiException) as exc:
        create_contact(hubspot_sandbox, email="b@example.com", crmbridge_stage="won")
    problems = json.loads(
        json.loads(exc.value.body)["message"].removeprefix("Property values were not valid: ")
    )
    assert problems[0]["error"] == "INVALID_OPTION"
    assert problems[0]["message"] == "won was not one of the allowed options: [mql, sql]"


def test_updating_options_changes_what_writes_accept(hubspot_sandbox: HubSpotSandbox) -> None:
    core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    update = PropertyUpdate(options=[{"label": "Won", "value": "won", "display_order": 0}])
    updated = core(hubspot_sandbox).update("contacts", "crmbridge_stage", property_update=update)
    assert [o.value for o in updated.options] == ["won"]
    assert create_contact(hubspot_sandbox, email="w@example.com", crmbridge_stage="won")
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).update(
            "contacts", "email", property_update=PropertyUpdate(label="E-mail")
        )
    assert "HubSpot-defined" in json.loads(exc.value.body)["message"]


def test_archived_properties_are_gone_for_writes_but_readable(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    core(hubspot_sandbox).archive("contacts", "crmbridge_stage")
    with pytest.raises(NotFoundException):
        core(hubspot_sandbox).get_by_name("contacts", "crmbridge_stage")
    assert core(hubspot_sandbox).get_by_name("contacts", "crmbridge_stage", archived=True).archived
    with pytest.raises(ContactsApiException) as exc:
        create_contact(hubspot_sandbox, email="x@example.com", crmbridge_stage="mql")
    assert "PROPERTY_DOESNT_EXIST" in json.loads(exc.value.body)["message"]
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).create("contacts", property_create=crmbridge_property())
    assert exc.value.status == 409
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).archive("contacts", "lifecyclestage")
    assert exc.value.status == 400


def test_property_groups(hubspot_sandbox: HubSpotSandbox) -> None:
    groups = hubspot_sandbox.client.crm.properties.groups_api
    groups.create("contacts", property_group_create={"name": "crmbridge", "label": "crmbridge"})
    assert "crmbridge" in [g.name for g in groups.get_all("contacts").results]
    prop = crmbridge_property(group_name="crmbridge")
    assert core(hubspot_sandbox).create("contacts", property_create=prop).group_name == "crmbridge"


def test_only_contacts_are_emulated(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(ApiException) as exc:
        core(hubspot_sandbox).get_all("deals")
    assert exc.value.status == 400


def test_drift_injected_through_options(hubspot_sandbox_factory: SandboxFactory) -> None:
    sandbox = hubspot_sandbox_factory(
        properties=[
            {
                "name": "lifecyclestage",
                "add_options": ["recycled"],
                "remove_options": ["evangelist"],
            },
            {"name": "hs_lead_status", "remove": True},
            {"name": "crmbridge_extra", "label": "Extra", "type": "string", "fieldType": "text"},
        ]
    )
    props = {p.name: p for p in core(sandbox).get_all("contacts").results}
    values = [o.value for o in props["lifecyclestage"].options]
    assert "recycled" in values
    assert "evangelist" not in values
    assert "hs_lead_status" not in props
    assert props["crmbridge_extra"].hubspot_defined is False
    contact = create_contact(sandbox, email="r@example.com", lifecyclestage="recycled")
    assert contact.properties["email"] == "r@example.com"


def test_drift_injected_by_an_admin_control_action(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control(
        "set_property_options", name="hs_lead_status", options=["NEW", "NURTURE"]
    )
    prop = core(hubspot_sandbox).get_by_name("contacts", "hs_lead_status")
    assert [o.value for o in prop.options] == ["NEW", "NURTURE"]
    with pytest.raises(ContactsApiException):
        create_contact(hubspot_sandbox, email="o@example.com", hs_lead_status="OPEN")


def test_owners_and_owner_validation(hubspot_sandbox: HubSpotSandbox) -> None:
    owners_api = hubspot_sandbox.client.crm.owners.owners_api
    owners = owners_api.get_page().results
    assert len(owners) == 3
    assert {o.type for o in owners} == {"PERSON"}
    first = owners[0]
    assert [o.id for o in owners_api.get_page(email=first.email).results] == [first.id]
    assert owners_api.get_by_id(first.id).last_name == first.last_name
    contact = create_contact(hubspot_sandbox, email="own@example.com", hubspot_owner_id=first.id)
    assert contact.properties["email"] == "own@example.com"
    with pytest.raises(ContactsApiException) as exc:
        create_contact(hubspot_sandbox, email="nobody@example.com", hubspot_owner_id="1")
    assert "INVALID_OWNER_ID" in json.loads(exc.value.body)["message"]
