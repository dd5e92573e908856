"""Control actions (seeding, acting as a marketer or a person), persistence, and subprocess mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hubspot
import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox, SandboxFactory, no_retry
from crmbridge_hubspot.sandbox import DEFAULT_TOKEN, HubSpotEmulator
from crmbridge_hubspot.sandbox.catalog import LIFECYCLE_STAGES, parse_ms
from hubspot.crm.contacts import SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import NotFoundException

from crmbridge.testing.sandbox import SandboxControlError, SandboxProcess

pytestmark = pytest.mark.sandbox


def api_create(sandbox: HubSpotSandbox, **properties: str) -> Any:
    body = SimplePublicObjectInputForCreate(properties=properties)
    return sandbox.client.crm.contacts.basic_api.create(simple_public_object_input_for_create=body)


def api_update(sandbox: HubSpotSandbox, contact_id: str, **properties: str) -> Any:
    body = SimplePublicObjectInput(properties=properties)
    return sandbox.client.crm.contacts.basic_api.update(contact_id, simple_public_object_input=body)


def test_seed_demo_maps_the_demo_leads_to_hubspot_values(hubspot_sandbox: HubSpotSandbox) -> None:
    counts = hubspot_sandbox.control.control("seed_demo", count=400, seed=7)
    assert counts["created"] + counts["duplicates_merged"] + counts["not_in_marketing"] == 400
    contacts = hubspot_sandbox.client.crm.contacts.get_all(
        properties=["email", "lifecyclestage", "hs_lead_status", "lead_source", "numemployees"]
    )
    assert len(contacts) == counts["created"]
    stages = {c.properties["lifecyclestage"] for c in contacts}
    assert stages <= {value for value, _label in LIFECYCLE_STAGES}
    assert {"subscriber", "lead", "marketingqualifiedlead"} <= stages
    assert "BAD_TIMING" in {c.properties["hs_lead_status"] for c in contacts}
    assert {c.properties["lead_source"] for c in contacts} >= {"organic", "content_download"}
    # Imports carry the mess that API writes would refuse.
    emails = [c.properties["email"] for c in contacts]
    assert [e for e in emails if e != e.strip().lower() or e.count("@") != 1 or e.endswith("@")]
    again = hubspot_sandbox.control.control("get_contact", email=contacts[0].properties["email"])
    assert again["written_by"]["email"]["sourceType"] == "IMPORT"


def test_seed_contacts_can_commit_a_record_late(hubspot_sandbox: HubSpotSandbox) -> None:
    (late,) = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": "late@example.com"}],
        modified_at="2026-01-01T00:00:00Z",
    )
    found = hubspot_sandbox.client.crm.contacts.basic_api.get_by_id(late)
    assert found.properties["lastmodifieddate"] == "2026-01-01T00:00:00.000Z"
    assert found.updated_at.year == 2026


def test_seed_contacts_can_spread_modification_times(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": f"spread{i}@example.com"} for i in range(4)],
        modified_at="2026-01-01T00:00:40Z",
        spread_seconds=40,
    )
    api = hubspot_sandbox.client.crm.contacts.basic_api
    stamps = [api.get_by_id(i).properties["lastmodifieddate"] for i in ids]
    assert stamps == [
        "2026-01-01T00:00:05.000Z",
        "2026-01-01T00:00:15.000Z",
        "2026-01-01T00:00:25.000Z",
        "2026-01-01T00:00:35.000Z",
    ]
    with pytest.raises(SandboxControlError, match="spread_seconds must be > 0"):
        hubspot_sandbox.control.control("seed_contacts", contacts=[], spread_seconds=0)


def test_bulk_touch_spreads_modifications_over_a_window(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control("seed_bulk", count=10, within_seconds=86_400 * 30)
    window = hubspot_sandbox.control.control("bulk_touch", count=4, within_seconds=60)
    start, end = parse_ms(window["from"]), parse_ms(window["to"])
    assert start is not None
    assert end is not None
    stamps = sorted(
        parse_ms(c.properties["lastmodifieddate"]) or 0
        for c in hubspot_sandbox.client.crm.contacts.get_all()
    )
    assert len([s for s in stamps if start <= s <= end]) == 4
    assert len(set(stamps[-4:])) == 4


def test_form_submission_creates_then_counts_conversions(hubspot_sandbox: HubSpotSandbox) -> None:
    first = hubspot_sandbox.control.control(
        "submit_form", email="Lead@Example.com", properties={"firstname": "Lea"}
    )
    assert first["properties"]["email"] == "lead@example.com"
    assert first["properties"]["lifecyclestage"] == "lead"
    assert first["properties"]["lead_source"] == "demo_request"
    assert first["properties"]["num_conversion_events"] == "1"
    assert first["properties"]["recent_conversion_event_name"] == "Demo Request"
    assert first["written_by"]["firstname"]["sourceType"] == "FORM"
    second = hubspot_sandbox.control.control(
        "submit_form", email="lead@example.com", form="Webinar: Pipeline hygiene"
    )
    assert second["properties"]["num_conversion_events"] == "2"
    assert second["properties"]["lead_source"] == "demo_request"
    with pytest.raises(SandboxControlError, match="INVALID_EMAIL"):
        hubspot_sandbox.control.control("submit_form", email="no-at-sign")


def test_engagement_increments_analytics(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control("submit_form", email="e@example.com")
    hubspot_sandbox.control.control("add_engagement", email="e@example.com", page_views=3)
    after = hubspot_sandbox.control.control(
        "add_engagement", email="e@example.com", page_views=2, email_opens=1
    )
    assert after["properties"]["hs_analytics_num_page_views"] == "5"
    assert after["properties"]["hs_email_open"] == "1"
    assert after["written_by"]["hs_email_open"]["sourceType"] == "ANALYTICS"


def test_who_last_wrote_each_value(hubspot_sandbox: HubSpotSandbox) -> None:
    contact = api_create(hubspot_sandbox, email="w@example.com", jobtitle="CTO", company="Acme")
    hubspot_sandbox.control.advance_clock(60)
    edited = hubspot_sandbox.control.control(
        "edit_contact", email="w@example.com", properties={"jobtitle": "CEO"}
    )
    by = edited["written_by"]
    assert by["jobtitle"]["human"] is True
    assert by["jobtitle"]["sourceType"] == "CRM_UI"
    assert by["jobtitle"]["updatedByUserId"] == 9001
    assert by["company"]["human"] is False
    assert by["company"]["sourceType"] == "INTEGRATION"
    assert by["jobtitle"]["timestamp"] > by["company"]["timestamp"]
    assert edited["id"] == contact.id
    assert "lastmodifieddate" not in by
    assert edited["properties"]["lastmodifieddate"] == by["jobtitle"]["timestamp"]


def test_a_person_may_move_the_stage_backwards_an_integration_may_not(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    contact = api_create(hubspot_sandbox, email="s@example.com", lifecyclestage="opportunity")
    person = hubspot_sandbox.control.control(
        "set_lifecycle_stage", email="s@example.com", stage="lead"
    )
    assert person["properties"]["lifecyclestage"] == "lead"
    assert person["written_by"]["lifecyclestage"]["human"] is True
    api_update(hubspot_sandbox, contact.id, lifecyclestage="customer")
    assert api_update(hubspot_sandbox, contact.id, lifecyclestage="subscriber").properties[
        "lifecyclestage"
    ] == ("customer")
    with pytest.raises(SandboxControlError, match="INVALID_OPTION"):
        hubspot_sandbox.control.control("set_lifecycle_stage", email="s@example.com", stage="x")


def test_archive_and_merge_as_a_person(hubspot_sandbox: HubSpotSandbox) -> None:
    api_create(hubspot_sandbox, email="a@example.com")
    keep = api_create(hubspot_sandbox, email="keep@example.com")
    lose = api_create(hubspot_sandbox, email="lose@example.com")
    archived = hubspot_sandbox.control.control("archive_contact", email="a@example.com")
    assert archived["archived"] is True
    assert hubspot_sandbox.control.control("get_contact", email="a@example.com")["archived"]
    with pytest.raises(NotFoundException):
        hubspot_sandbox.client.crm.contacts.basic_api.get_by_id(archived["id"])
    merged = hubspot_sandbox.control.control(
        "merge_contacts", primary_email="keep@example.com", secondary_email="lose@example.com"
    )
    assert (merged["id"], merged["merged_id"]) == (keep.id, lose.id)
    assert merged["properties"]["hs_additional_emails"] == "lose@example.com"
    assert hubspot_sandbox.client.crm.contacts.basic_api.get_by_id(lose.id).id == keep.id


def test_control_errors_name_the_problem(hubspot_sandbox: HubSpotSandbox) -> None:
    with pytest.raises(SandboxControlError, match="no contact with email"):
        hubspot_sandbox.control.control("edit_contact", email="ghost@example.com", properties={})
    with pytest.raises(SandboxControlError, match="no control action 'nope'"):
        hubspot_sandbox.control.control("nope")
    with pytest.raises(SandboxControlError, match="not an enumeration"):
        hubspot_sandbox.control.control("set_property_options", name="email", options=["x"])


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        HubSpotEmulator({"teir": "starter"})
    with pytest.raises(ValueError, match="tier 'gold'"):
        HubSpotEmulator({"tier": "gold"})


def test_state_survives_a_restart(tmp_path: Path, hubspot_sandbox_factory: SandboxFactory) -> None:
    state = tmp_path / "hubspot.json"
    first = hubspot_sandbox_factory(state_path=state)
    contact = api_create(first, email="kept@example.com", firstname="Kept")
    api_update(first, contact.id, firstname="Still kept")
    first.client.crm.properties.core_api.create(
        "contacts",
        property_create={
            "name": "crmbridge_lead_id", "label": "Lead id", "type": "string",
            "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": True,
        },
    )  # fmt: skip
    first.control.control("archive_contact", email="kept@example.com")
    api_create(first, email="live@example.com", crmbridge_lead_id="L-1")
    first.server.stop()

    second = hubspot_sandbox_factory(state_path=state)
    api = second.client.crm.contacts.basic_api
    archived = api.get_page(archived=True, properties_with_history=["firstname"]).results[0]
    assert archived.id == contact.id
    assert [h.value for h in archived.properties_with_history["firstname"]] == [
        "Still kept",
        "Kept",
    ]
    live = api.get_by_id("L-1", id_property="crmbridge_lead_id")
    assert live.properties["email"] == "live@example.com"
    newer = api_create(second, email="after@example.com")
    assert int(newer.id) > int(live.id)


def test_the_fixture_takes_options_from_the_marker(request: pytest.FixtureRequest) -> None:
    marker = pytest.mark.hubspot_sandbox(tier="enterprise")
    request.node.add_marker(marker)
    sandbox: HubSpotSandbox = request.getfixturevalue("hubspot_sandbox")
    headers = sandbox.client.crm.contacts.basic_api.get_page_with_http_info()[2]
    assert headers["X-HubSpot-RateLimit-Daily"] == "1000000"
    assert sandbox.env()["CRMBRIDGE_HUBSPOT__ACCESS_TOKEN"] == DEFAULT_TOKEN


def test_subprocess_mode_serves_the_same_api() -> None:
    options = {"tokens": ["pat-in-a-process"], "tier": "starter"}
    with SandboxProcess(HubSpotEmulator, options=options) as proc:
        client = hubspot.Client.create(
            access_token="pat-in-a-process", host=proc.url, retry=no_retry()
        )
        body = SimplePublicObjectInputForCreate(properties={"email": "p@example.com"})
        created = client.crm.contacts.basic_api.create(simple_public_object_input_for_create=body)
        assert proc.control.control("get_contact", email="p@example.com")["id"] == created.id
        assert proc.control.calls().count("POST /crm/v3/objects/contacts", status=201) == 1
