"""The 10,000-result search cap at scale, and the sorted indexes that keep search cheap.

25,000 contacts modified within one hour: one query for them stops at 10,000 (HTTP 400 when paging
past it), while windows on ``lastmodifieddate`` of under 10,000 each retrieve every contact exactly
once. The planner's statistics show that a window reads its range from the index, not the portal.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.sandbox import DEFAULT_TOKEN, HubSpotEmulator
from crmbridge_hubspot.sandbox.catalog import parse_ms
from hubspot.crm.contacts import ApiException

from crmbridge.testing.sandbox import SandboxServer

pytestmark = pytest.mark.sandbox

COUNT = 25_000


@pytest.fixture(scope="module")
def crowd() -> Iterator[tuple[HubSpotSandbox, int, int]]:
    """25,000 contacts modified within the last hour, and that hour in epoch ms."""
    with SandboxServer(HubSpotEmulator({"rate_limits": False})) as server:
        window = server.control.control("seed_bulk", count=COUNT, within_seconds=3600)
        start, end = parse_ms(window["from"]), parse_ms(window["to"])
        assert start is not None
        assert end is not None
        yield HubSpotSandbox(server, DEFAULT_TOKEN), start, end


def window_request(lo: int, hi: int, after: str | None = None) -> dict[str, Any]:
    return {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(lo)},
                    {"propertyName": "lastmodifieddate", "operator": "LT", "value": str(hi)},
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email"],
        "limit": 200,
        "after": after,
    }


def test_one_query_for_all_of_them_stops_at_the_cap(
    crowd: tuple[HubSpotSandbox, int, int],
) -> None:
    sandbox, start, end = crowd
    api = sandbox.client.crm.contacts.search_api
    seen: list[str] = []
    after: str | None = None
    refusal: ApiException | None = None
    while refusal is None:
        try:
            page = api.do_search(public_object_search_request=window_request(start, end + 1, after))
        except ApiException as exc:
            refusal = exc
            break
        assert page.total == COUNT
        seen += [r.id for r in page.results]
        after = page.paging.next.after
    assert refusal.status == 400
    assert json.loads(refusal.body)["category"] == "VALIDATION_ERROR"
    assert after == "10000"
    assert len(seen) == len(set(seen)) == 10_000


def test_windows_under_the_cap_retrieve_every_contact_exactly_once(
    crowd: tuple[HubSpotSandbox, int, int],
) -> None:
    sandbox, start, end = crowd
    api = sandbox.client.crm.contacts.search_api
    bounds = [start + (end + 1 - start) * i // 4 for i in range(5)]
    seen: list[str] = []
    for lo, hi in itertools.pairwise(bounds):
        after: str | None = None
        while True:
            # Raw JSON: 25,000 SDK models would add seconds and test nothing about the emulator.
            response = api.do_search(
                public_object_search_request=window_request(lo, hi, after),
                _preload_content=False,
            )
            page = json.loads(response.data)
            assert page["total"] < 10_000
            seen += [r["id"] for r in page["results"]]
            after = page.get("paging", {}).get("next", {}).get("after")
            if after is None:
                break
    assert len(seen) == len(set(seen)) == COUNT


def test_a_window_reads_its_range_from_the_index(crowd: tuple[HubSpotSandbox, int, int]) -> None:
    sandbox, start, end = crowd
    api = sandbox.client.crm.contacts.search_api
    tenth = (end - start) // 10
    request = window_request(start, start + tenth)
    request["filterGroups"][0]["filters"].append(
        {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}
    )
    page = api.do_search(public_object_search_request=request)
    stats = sandbox.emulator.search.stats
    assert stats["plan"] == "scan:lastmodifieddate"
    assert stats["examined"] == page.total <= COUNT // 10 + 1
    keyset = api.do_search(
        public_object_search_request={
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "hs_object_id",
                            "operator": "GT",
                            "value": page.results[-1].id,
                        }
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": 5,
        }
    )
    assert int(keyset.results[0].id) == int(page.results[-1].id) + 1
    assert sandbox.emulator.search.stats["plan"] == "index:hs_object_id"
    email = api.do_search(
        public_object_search_request={
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "email",
                            "operator": "EQ",
                            "value": "bulk-7@bulk.sandbox.example",
                        }
                    ]
                }
            ]
        }
    )
    assert email.total == 1
    assert sandbox.emulator.search.stats == {"plan": "gather", "examined": 1}


def test_paging_the_same_query_is_served_from_the_cache(
    crowd: tuple[HubSpotSandbox, int, int],
) -> None:
    sandbox, start, end = crowd
    api = sandbox.client.crm.contacts.search_api
    api.do_search(public_object_search_request=window_request(start, end))
    api.do_search(public_object_search_request=window_request(start, end, after="200"))
    assert sandbox.emulator.search.stats["plan"] == "cached"


def test_a_keyset_query_over_separate_ranges_stops_at_its_page(
    crowd: tuple[HubSpotSandbox, int, int],
) -> None:
    # What a search window sends after its first page: the rest of one time (less the ids
    # already read), OR every later time. The total is counted per range, not by testing all.
    sandbox, start, end = crowd
    api = sandbox.client.crm.contacts.search_api
    first = api.do_search(public_object_search_request=window_request(start, end + 1))
    last = first.results[-1]
    at = parse_ms(last.properties["lastmodifieddate"])
    assert at is not None
    read = [
        r.id
        for r in first.results
        if r.properties["lastmodifieddate"] == last.properties["lastmodifieddate"]
    ]
    request = window_request(at + 1, end + 1)
    request["filterGroups"].insert(
        0,
        {
            "filters": [
                {"propertyName": "lastmodifieddate", "operator": "EQ", "value": str(at)},
                {"propertyName": "hs_object_id", "operator": "NOT_IN", "values": read},
            ]
        },
    )
    request["filterGroups"][1]["filters"][0]["operator"] = "GT"
    request["filterGroups"][1]["filters"][0]["value"] = str(at)
    page = api.do_search(public_object_search_request=request)
    stats = sandbox.emulator.search.stats
    assert stats["plan"] == "ranges:lastmodifieddate"
    # It reads up to the 10,000 results a query may page through, not the 24,800 that match.
    assert stats["examined"] <= 10_001 + len(read) < page.total
    assert page.total == COUNT - 200
    assert not {r.id for r in page.results} & {r.id for r in first.results}
