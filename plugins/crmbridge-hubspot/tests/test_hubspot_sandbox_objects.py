"""The contacts object API through the real hubspot-api-client: paging, CRUD, merge, lifecycle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from hubspot.crm.contacts import (
    ApiException,
    PublicMergeInput,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import NotFoundException

pytestmark = pytest.mark.sandbox


def create(sandbox: HubSpotSandbox, **properties: str) -> Any:
    body = SimplePublicObjectInputForCreate(properties=properties)
    return sandbox.client.crm.contacts.basic_api.create(simple_public_object_input_for_create=body)


def update(sandbox: HubSpotSandbox, contact_id: str, **properties: str) -> Any:
    body = SimplePublicObjectInput(properties=properties)
    return sandbox.client.crm.contacts.basic_api.update(contact_id, simple_public_object_input=body)


def error_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_list_pages_follow_the_after_cursor(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control("seed_bulk", count=25, within_seconds=60)
    api = hubspot_sandbox.client.crm.contacts.basic_api
    first = api.get_page(limit=10, properties=["email", "lifecyclestage"])
    assert len(first.results) == 10
    assert first.results[0].properties["lifecyclestage"] == "lead"
    assert set(first.results[0].properties) >= {"email", "hs_object_id", "createdate"}
    seen = [r.id for r in first.results]
    after = first.paging.next.after
    while after:
        page = api.get_page(limit=10, after=after)
        seen += [r.id for r in page.results]
        after = page.paging.next.after if page.paging else None
    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen, key=int)


def test_get_all_reads_every_contact_in_pages_of_100(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control("seed_bulk", count=250, within_seconds=60)
    contacts = hubspot_sandbox.client.crm.contacts.get_all(properties=["email"])
    assert len({c.id for c in contacts}) == 250
    calls = hubspot_sandbox.calls()
    assert calls.count("GET /crm/v3/objects/contacts") == 3
    assert calls.snapshot()[-1].records_out == 50


def test_list_parameters_repeated_or_comma_separated_and_python_booleans(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    create(hubspot_sandbox, email="ana@acme.example", firstname="Ana", company="Acme")
    api = hubspot_sandbox.client.crm.contacts.basic_api
    page = api.get_page(properties=["firstname,company"], archived=False)
    assert page.results[0].properties["company"] == "Acme"
    assert page.results[0].properties["firstname"] == "Ana"
    with pytest.raises(ApiException) as exc:
        api.get_page(limit=101)
    assert exc.value.status == 400


def test_create_returns_201_with_normalised_values(hubspot_sandbox: HubSpotSandbox) -> None:
    contact = create(hubspot_sandbox, email="  Mixed.Case@Example.COM ", firstname="Mo")
    assert contact.id.isdigit()
    assert contact.properties["email"] == "mixed.case@example.com"
    assert contact.properties["hs_object_id"] == contact.id
    assert contact.created_at == contact.updated_at
    assert hubspot_sandbox.calls().snapshot()[-1].status == 201


def test_duplicate_email_is_409_naming_the_existing_id(hubspot_sandbox: HubSpotSandbox) -> None:
    first = create(hubspot_sandbox, email="dup@example.com")
    with pytest.raises(ApiException) as exc:
        create(hubspot_sandbox, email="DUP@example.com")
    body = error_of(exc.value)
    assert exc.value.status == 409
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {first.id}"


def test_invalid_email_and_unknown_property_are_validation_errors(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    with pytest.raises(ApiException) as exc:
        create(hubspot_sandbox, email="not-an-email@", nope="x")
    body = error_of(exc.value)
    assert (exc.value.status, body["category"]) == (400, "VALIDATION_ERROR")
    packed = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert {p["error"] for p in packed} == {"INVALID_EMAIL", "PROPERTY_DOESNT_EXIST"}
    assert all(p["isValid"] is False and p["portalId"] for p in packed)


def test_get_by_email_id_property_decodes_the_path(hubspot_sandbox: HubSpotSandbox) -> None:
    contact = create(hubspot_sandbox, email="o'neil+tag@example.com", lastname="O'Neil")
    api = hubspot_sandbox.client.crm.contacts.basic_api
    found = api.get_by_id("O'Neil+tag@example.com", id_property="email", properties=["lastname"])
    assert found.id == contact.id
    assert found.properties["lastname"] == "O'Neil"
    # The SDK sent %40 and %2B; the emulator matched the decoded, case-insensitive email.
    assert hubspot_sandbox.calls().snapshot()[-1].path.endswith("/O'Neil+tag@example.com")
    with pytest.raises(NotFoundException) as exc:
        api.get_by_id("nobody@example.com", id_property="email")
    assert error_of(exc.value)["category"] == "OBJECT_NOT_FOUND"


def test_get_by_id_with_properties_with_history(hubspot_sandbox: HubSpotSandbox) -> None:
    contact = create(hubspot_sandbox, email="h@example.com", firstname="One")
    update(hubspot_sandbox, contact.id, firstname="Two")
    found = hubspot_sandbox.client.crm.contacts.basic_api.get_by_id(
        contact.id, properties_with_history=["firstname"]
    )
    history = found.properties_with_history["firstname"]
    assert [h.value for h in history] == ["Two", "One"]
    assert history[0].source_type == "INTEGRATION"


def test_update_clears_with_empty_string_and_refuses_read_only(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    contact = create(hubspot_sandbox, email="u@example.com", company="Acme", jobtitle="CTO")
    updated = update(hubspot_sandbox, contact.id, company="", jobtitle="CEO")
    assert updated.properties["company"] is None
    assert updated.properties["jobtitle"] == "CEO"
    assert updated.updated_at > contact.updated_at
    with pytest.raises(ApiException) as exc:
        update(hubspot_sandbox, contact.id, hs_analytics_num_page_views="99")
    assert "READ_ONLY_VALUE" in error_of(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        update(hubspot_sandbox, contact.id, lifecyclestage="zombie")
    assert "was not one of the allowed options" in error_of(exc.value)["message"]


def test_an_update_that_changes_nothing_keeps_lastmodifieddate(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    contact = create(hubspot_sandbox, email="same@example.com", firstname="Same")
    hubspot_sandbox.control.advance_clock(5)
    again = update(hubspot_sandbox, contact.id, firstname="Same")
    assert again.properties["lastmodifieddate"] == contact.properties["lastmodifieddate"]


def test_archive_hides_the_contact_and_lists_it_as_archived(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    contact = create(hubspot_sandbox, email="gone@example.com")
    api = hubspot_sandbox.client.crm.contacts.basic_api
    api.archive(contact.id)
    api.archive(contact.id)  # already gone: still 204
    with pytest.raises(NotFoundException):
        api.get_by_id(contact.id)
    assert api.get_page().results == []
    archived = api.get_page(archived=True).results
    assert [c.id for c in archived] == [contact.id]
    assert archived[0].archived is True
    assert archived[0].archived_at is not None
    assert api.get_by_id(contact.id, archived=True).archived is True
    assert create(hubspot_sandbox, email="gone@example.com").id != contact.id


def test_lifecycle_stage_never_moves_backwards_until_cleared(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    contact = create(
        hubspot_sandbox, email="mql@example.com", lifecyclestage="marketingqualifiedlead"
    )
    back = update(hubspot_sandbox, contact.id, lifecyclestage="lead")
    assert back.properties["lifecyclestage"] == "marketingqualifiedlead"
    forward = update(hubspot_sandbox, contact.id, lifecyclestage="opportunity")
    assert forward.properties["lifecyclestage"] == "opportunity"
    cleared = update(hubspot_sandbox, contact.id, lifecyclestage="")
    assert cleared.properties["lifecyclestage"] is None
    recycled = update(hubspot_sandbox, contact.id, lifecyclestage="lead")
    assert recycled.properties["lifecyclestage"] == "lead"


@pytest.mark.hubspot_sandbox(lifecycle_forward_only=False)
def test_lifecycle_rule_can_be_switched_off(hubspot_sandbox: HubSpotSandbox) -> None:
    contact = create(hubspot_sandbox, email="c@example.com", lifecyclestage="customer")
    assert update(hubspot_sandbox, contact.id, lifecyclestage="lead").properties[
        "lifecyclestage"
    ] == ("lead")


def test_merge_leaves_a_merged_away_record_the_connector_can_detect(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    keep = create(hubspot_sandbox, email="keep@example.com", firstname="Keep")
    lose = create(hubspot_sandbox, email="lose@example.com", company="Lost Co")
    api = hubspot_sandbox.client.crm.contacts.basic_api
    merged = api.merge(
        public_merge_input=PublicMergeInput(primary_object_id=keep.id, object_id_to_merge=lose.id)
    )
    assert merged.id == keep.id
    fetched = api.get_by_id(lose.id, properties=["hs_merged_object_ids", "company", "email"])
    assert fetched.id == keep.id
    assert fetched.properties["hs_merged_object_ids"] == lose.id
    assert fetched.properties["company"] == "Lost Co"
    assert api.get_by_id("lose@example.com", id_property="email").id == keep.id
    assert [c.id for c in api.get_page(archived=True).results] == [lose.id]
    with pytest.raises(ApiException) as exc:
        api.merge(
            public_merge_input=PublicMergeInput(
                primary_object_id=keep.id, object_id_to_merge=keep.id
            )
        )
    assert exc.value.status == 400
