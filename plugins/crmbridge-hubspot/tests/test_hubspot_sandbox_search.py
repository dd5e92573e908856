"""Contact search through the real SDK: operators and typing, sorts, limits, paging, cap and lag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox, SandboxFactory
from crmbridge_hubspot.sandbox import DEFAULT_TOKEN, HubSpotEmulator
from hubspot.crm.contacts import ApiException, PublicObjectSearchRequest

from crmbridge.testing.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

PEOPLE = [
    ("2026-01-10T00:00:00Z", {"email": "ana@acme.example", "firstname": "Ana",
      "company": "Acme Corp", "lifecyclestage": "lead", "hs_analytics_num_page_views": "9",
      "recent_conversion_date": "2026-03-01T10:00:00.000Z"}),
    ("2026-02-10T00:00:00Z", {"email": "bo@beta.example", "firstname": "Bo",
      "company": "Beta Labs", "lifecyclestage": "customer", "hs_analytics_num_page_views": "10"}),
    ("2026-03-10T00:00:00Z", {"email": "cy@gamma.example", "firstname": "Cy",
      "lifecyclestage": "marketingqualifiedlead", "hs_analytics_num_page_views": "100",
      "recent_conversion_date": "2026-05-01T10:00:00.000Z"}),
    ("2026-04-10T00:00:00Z", {"email": "dee@acme.example", "firstname": "DEE",
      "company": "acme corp", "lifecyclestage": "other"}),
]  # fmt: skip


HAS_FIRSTNAME = {"propertyName": "firstname", "operator": "HAS_PROPERTY"}


def ms(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000))


def search(sandbox: HubSpotSandbox, **request: Any) -> Any:
    body = PublicObjectSearchRequest(**request)
    return sandbox.client.crm.contacts.search_api.do_search(public_object_search_request=body)


def one(prop: str, op: str, **kw: Any) -> list[dict[str, Any]]:
    return [{"filters": [{"propertyName": prop, "operator": op, **kw}]}]


def emails(result: Any) -> set[str]:
    return {r.properties["email"] for r in result.results}


@pytest.fixture(scope="module")
def people() -> Iterator[HubSpotSandbox]:
    """Four contacts known by heart, in a portal without rate limits (shared by the module)."""
    with SandboxServer(HubSpotEmulator({"rate_limits": False})) as server:
        for modified, properties in PEOPLE:
            server.control.control("seed_contacts", contacts=[properties], modified_at=modified)
        yield HubSpotSandbox(server, DEFAULT_TOKEN)


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (one("company", "EQ", value="ACME CORP"), {"ana", "dee"}),
        (one("lifecyclestage", "NEQ", value="lead"), {"bo", "cy", "dee"}),
        (one("hs_analytics_num_page_views", "LT", value="10"), {"ana"}),
        (one("hs_analytics_num_page_views", "LTE", value=10), {"ana", "bo"}),
        (one("hs_analytics_num_page_views", "GT", value="9"), {"bo", "cy"}),
        (one("hs_analytics_num_page_views", "GTE", value="100"), {"cy"}),
        (
            one(
                "lastmodifieddate",
                "BETWEEN",
                value="2026-02-01T00:00:00Z",
                highValue=ms("2026-03-31T00:00:00"),
            ),
            {"bo", "cy"},
        ),
        (one("lifecyclestage", "IN", values=["lead", "customer"]), {"ana", "bo"}),
        (one("lifecyclestage", "NOT_IN", values=["lead", "customer"]), {"cy", "dee"}),
        (one("company", "HAS_PROPERTY"), {"ana", "bo", "dee"}),
        (one("company", "NOT_HAS_PROPERTY"), {"cy"}),
        (one("company", "CONTAINS_TOKEN", value="acme"), {"ana", "dee"}),
        (one("email", "CONTAINS_TOKEN", value="*@acme.example"), {"ana", "dee"}),
        (one("company", "NOT_CONTAINS_TOKEN", value="acme"), {"bo", "cy"}),
        (one("recent_conversion_date", "GT", value=ms("2026-04-01T00:00:00")), {"cy"}),
        (one("lastmodifieddate", "EQ", value=ms("2026-01-10T00:00:00")), {"ana"}),
        (one("lastmodifieddate", "LT", value="2026-02-10T00:00:00.000Z"), {"ana"}),
        (one("createdate", "GTE", value=ms("2026-03-10T00:00:00")), {"cy", "dee"}),
        (one("email", "EQ", value="Bo@Beta.Example"), {"bo"}),
        (
            [
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "ana"}]},
                {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "bo"}]},
            ],
            {"ana", "bo"},
        ),
        (
            [
                {
                    "filters": [
                        {"propertyName": "company", "operator": "CONTAINS_TOKEN", "value": "acme"},
                        {"propertyName": "firstname", "operator": "EQ", "value": "dee"},
                    ]
                }
            ],
            {"dee"},
        ),
    ],
)
def test_operators_and_value_typing(
    people: HubSpotSandbox, groups: list[dict[str, Any]], expected: set[str]
) -> None:
    result = search(people, filter_groups=groups, limit=10)
    assert {e.split("@")[0] for e in emails(result)} == expected
    assert result.total == len(expected)


def test_id_ranges_use_the_object_id(people: HubSpotSandbox) -> None:
    everyone = search(people, limit=10, sorts=[{"propertyName": "hs_object_id"}])
    ids = [int(r.id) for r in everyone.results]
    assert ids == sorted(ids)
    after_first = search(people, filter_groups=one("hs_object_id", "GT", value=str(ids[0])))
    assert sorted(int(r.id) for r in after_first.results) == ids[1:]


def test_sorts_numbers_by_value_and_empty_values_last(people: HubSpotSandbox) -> None:
    result = search(
        people,
        sorts=[{"propertyName": "hs_analytics_num_page_views", "direction": "DESCENDING"}],
        properties=["email", "hs_analytics_num_page_views"],
    )
    assert [r.properties["email"].split("@")[0] for r in result.results] == [
        "cy",
        "bo",
        "ana",
        "dee",
    ]
    by_name = search(people, sorts=[{"propertyName": "firstname", "direction": "ASCENDING"}])
    assert [r.properties["firstname"] for r in by_name.results] == ["Ana", "Bo", "Cy", "DEE"]
    newest = search(people, sorts=["-createdate"])
    assert newest.results[0].properties["email"] == "dee@acme.example"


def test_free_text_query_matches_word_prefixes(people: HubSpotSandbox) -> None:
    assert emails(search(people, query="acm")) == {"ana@acme.example", "dee@acme.example"}
    assert emails(search(people, query="bet")) == {"bo@beta.example"}


def test_requested_properties_are_returned(people: HubSpotSandbox) -> None:
    result = search(
        people, filter_groups=one("firstname", "EQ", value="cy"), properties=["company"]
    )
    assert result.results[0].properties["company"] is None
    assert "hs_object_id" in result.results[0].properties
    assert "firstname" not in result.results[0].properties


def test_paging_with_after_and_total(people: HubSpotSandbox) -> None:
    first = search(people, limit=3)
    assert (first.total, len(first.results), first.paging.next.after) == (4, 3, "3")
    second = search(people, limit=3, after=first.paging.next.after)
    assert len(second.results) == 1
    assert second.paging is None


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({"filterGroups": [{"filters": []}] * 6}, "Too many filter groups"),
        ({"filterGroups": [{"filters": [HAS_FIRSTNAME] * 11}]}, "in a filter group"),
        ({"filterGroups": [{"filters": [HAS_FIRSTNAME] * 6}] * 5}, "Too many filters (30)"),
        ({"limit": 201}, "at most 200"),
        ({"sorts": ["firstname", "lastname"]}, "Only one sort"),
        ({"filterGroups": one("firstname", "LIKE", value="a")}, "Invalid filter operator"),
        ({"filterGroups": one("shoe_size", "EQ", value="9")}, "Unable to find property"),
        ({"filterGroups": one("lifecyclestage", "IN")}, "non-empty values"),
        ({"filterGroups": one("lastmodifieddate", "GT", value="yesterday")}, "not a valid"),
    ],
)  # fmt: skip
def test_request_limits_answer_400(
    people: HubSpotSandbox, request_body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ApiException) as exc:
        people.client.crm.contacts.search_api.do_search(public_object_search_request=request_body)
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["category"]) == (400, "VALIDATION_ERROR")
    assert fragment in body["message"]


def test_paging_past_the_cap_is_400(hubspot_sandbox_factory: SandboxFactory) -> None:
    sandbox = hubspot_sandbox_factory(search_cap=5, rate_limits=False)
    sandbox.control.control("seed_bulk", count=12, within_seconds=60)
    first = search(sandbox, limit=3)
    assert (first.total, first.paging.next.after) == (12, "3")
    second = search(sandbox, limit=3, after="3")
    assert len(second.results) == 2
    assert second.paging.next.after == "5"
    with pytest.raises(ApiException) as exc:
        search(sandbox, limit=3, after=second.paging.next.after)
    assert exc.value.status == 400
    assert "limited to 5" in json.loads(exc.value.body)["message"]


def test_index_lag_hides_fresh_writes_until_it_passes(
    hubspot_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = hubspot_sandbox_factory(search_index_lag_ms=2_000, rate_limits=False)
    sandbox.control.control(
        "seed_contacts", contacts=[{"email": "old@example.com", "firstname": "Old"}]
    )
    api = sandbox.client.crm.contacts.basic_api
    created = api.create(
        simple_public_object_input_for_create={"properties": {"email": "new@example.com"}}
    )
    old = api.get_by_id("old@example.com", id_property="email")
    api.update(old.id, simple_public_object_input={"properties": {"firstname": "Renamed"}})
    assert search(sandbox, filter_groups=one("email", "EQ", value="new@example.com")).total == 0
    stale = search(sandbox, filter_groups=one("firstname", "EQ", value="Old"))
    assert [r.id for r in stale.results] == [old.id]
    assert search(sandbox, filter_groups=one("firstname", "EQ", value="Renamed")).total == 0
    # The write that search missed is there for a read by id: the classic search-then-create race.
    assert api.get_by_id(created.id).id == created.id
    sandbox.control.advance_clock(2.5)
    assert search(sandbox, filter_groups=one("email", "EQ", value="new@example.com")).total == 1
    assert search(sandbox, filter_groups=one("firstname", "EQ", value="Renamed")).total == 1
    assert sandbox.control.control("stats")["pending_index"] == 0


def test_search_is_limited_to_five_requests_a_second(hubspot_sandbox: HubSpotSandbox) -> None:
    for _ in range(5):
        search(hubspot_sandbox, limit=1)
    with pytest.raises(ApiException) as exc:
        search(hubspot_sandbox, limit=1)
    body = json.loads(exc.value.body)
    assert exc.value.status == 429
    assert body["policyName"] == "SECONDLY"
    assert body["message"] == "You have reached your secondly limit."
    assert int(exc.value.headers["Retry-After"]) >= 1
    assert "X-HubSpot-RateLimit-Remaining" not in exc.value.headers
    # Search has its own budget: other calls still pass and carry the headers.
    response = hubspot_sandbox.client.crm.contacts.basic_api.get_page_with_http_info()
    assert "X-HubSpot-RateLimit-Remaining" in response[2]
