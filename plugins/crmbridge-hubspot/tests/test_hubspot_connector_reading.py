"""The HubSpot connector's reads through the real SDK against the sandbox: the first pull by list
pages, incremental pulls by search with a lookback, late records, ties, the 10,000-result cap,
deletes and merges, unmapped values, and backfills."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from crmbridge_hubspot.connector.native import from_ms, iso, parse_time, to_ms
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import add_option, connector_for

from crmbridge import Change, ChangeBatch, ChangeKind, Cursor

pytestmark = pytest.mark.sandbox


def seed(sandbox: HubSpotSandbox, count: int, prefix: str, **extra: Any) -> list[str]:
    contacts = [
        {
            "email": f"{prefix}-{i}@example.com",
            "firstname": "Ada",
            "lastname": f"Lovelace {i}",
            "company": "Analytical Engines",
            "jobtitle": "Head of Research",
            "lifecyclestage": "lead",
            "lead_source": "webinar",
            **extra,
        }
        for i in range(count)
    ]
    ids: list[str] = sandbox.control.control("seed_contacts", contacts=contacts)
    return ids


def drain(batches: Iterable[ChangeBatch], start: Cursor = Cursor()) -> tuple[list[Change], Cursor]:
    changes: list[Change] = []
    cursor = start
    for batch in batches:
        changes.extend(batch.changes)
        cursor = batch.cursor
    return changes, cursor


LIST = "GET /crm/v3/objects/contacts"


def gone(changes: Iterable[Change]) -> list[tuple[str, ChangeKind]]:
    return [(c.native_id, c.kind) for c in changes if c.kind is not ChangeKind.UPSERT]


def search_calls(sandbox: HubSpotSandbox) -> int:
    return sandbox.calls().count("POST /crm/v3/objects/contacts/search")


def test_first_pull_lists_every_contact_across_pages(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, 250, "first")
    connector = connector_for(hubspot_sandbox)
    batches = list(connector.pull_changes(Cursor()))
    assert [len(b.changes) for b in batches] == [100, 100, 50]
    changes = [c for b in batches for c in b.changes]
    assert sorted(c.native_id for c in changes) == sorted(ids)
    assert hubspot_sandbox.calls().by_endpoint() == {"GET /crm/v3/objects/contacts": 3}
    change = changes[0]
    assert change.kind is ChangeKind.UPSERT
    assert change.lead is not None
    assert change.lead.email == "first-0@example.com"
    assert change.lead.stage == "lead"
    assert change.lead.fields["company"] == "Analytical Engines"
    assert change.lead.fields["lead_source"] == "webinar"
    assert change.lead.system_ids == {"hubspot": ids[0]}
    assert change.modified_at.tzinfo is not None
    assert change.lead.modified_at == change.modified_at
    assert not change.problems
    # Mid-list the cursor resumes the list; after the last page it is the read's start.
    assert batches[0].cursor.get("phase") == "list"
    last = batches[-1].cursor
    assert last.get("phase") == "incremental"
    assert last.get("since_ms") == batches[0].cursor.get("started_ms")


def test_an_interrupted_first_pull_resumes_from_its_list_position(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    ids = seed(hubspot_sandbox, 150, "resume")
    connector = connector_for(hubspot_sandbox)
    first = next(iter(connector.pull_changes(Cursor())))
    rest, _cursor = drain(connector.pull_changes(first.cursor))
    assert sorted(c.native_id for c in [*first.changes, *rest]) == sorted(ids)


def test_incremental_pull_reads_edits_by_search(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 5, "inc")
    connector = connector_for(hubspot_sandbox, lookback_seconds=60)
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    hubspot_sandbox.control.advance_clock(600)
    hubspot_sandbox.control.control(
        "edit_contact", email="inc-3@example.com", properties={"company": "Babbage & Co"}
    )
    changes, after = drain(connector.pull_changes(cursor), cursor)
    [edited] = [c for c in changes if c.lead and c.lead.email == "inc-3@example.com"]
    assert edited.lead is not None
    assert edited.lead.fields["company"] == "Babbage & Co"
    # The others come again only because they changed within the lookback before the cursor.
    since = int(cursor.get("since_ms"))
    assert all(to_ms(c.modified_at) >= since - 60_000 for c in changes)
    assert search_calls(hubspot_sandbox) == 1
    assert after.get("since_ms") == to_ms(edited.modified_at)


def test_a_record_committed_late_is_still_pulled(hubspot_sandbox: HubSpotSandbox) -> None:
    seed(hubspot_sandbox, 3, "early")
    connector = connector_for(hubspot_sandbox, lookback_seconds=300)
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    since = from_ms(int(cursor.get("since_ms")))
    # Written now, but stamped two minutes before the cursor (within the lookback) ...
    [late] = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": "late-0@example.com", "company": "Late Ltd"}],
        modified_at=iso(since - timedelta(seconds=120)),
    )
    # ... and one stamped before the lookback, which no incremental read can promise to see.
    hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": "ancient@example.com"}],
        modified_at=iso(since - timedelta(seconds=900)),
    )
    changes, _ = drain(connector.pull_changes(cursor), cursor)
    by_id = {c.native_id: c for c in changes}
    assert late in by_id
    lead = by_id[late].lead
    assert lead is not None
    assert lead.fields["company"] == "Late Ltd"
    assert by_id[late].modified_at < since
    assert "ancient@example.com" not in {c.lead.email for c in changes if c.lead}


def test_a_record_sharing_the_cursors_timestamp_is_not_skipped(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    connector = connector_for(hubspot_sandbox, lookback_seconds=0)
    seed(hubspot_sandbox, 1, "before")
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    hubspot_sandbox.control.advance_clock(60)
    hubspot_sandbox.control.control(
        "edit_contact", email="before-0@example.com", properties={"company": "Tick"}
    )
    changes, cursor = drain(connector.pull_changes(cursor), cursor)
    stamp = int(cursor.get("since_ms"))
    assert [c.lead.fields["company"] for c in changes if c.lead] == ["Tick"]
    # Another record committed afterwards with exactly the cursor's timestamp, no lookback.
    [tied] = hubspot_sandbox.control.control(
        "seed_contacts", contacts=[{"email": "tied@example.com"}], modified_at=str(stamp)
    )
    changes, _ = drain(connector.pull_changes(cursor), cursor)
    assert tied in {c.native_id for c in changes}


@pytest.mark.hubspot_sandbox(search_per_second=100)
def test_ties_larger_than_a_page_are_read_exactly_once(hubspot_sandbox: HubSpotSandbox) -> None:
    connector = connector_for(hubspot_sandbox, search_page_size=50, search_per_second=100)
    stamp = to_ms(parse_time("2026-01-05T10:00:00.000Z") or from_ms(0))
    before = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": f"pre-{i}@example.com"} for i in range(30)],
        modified_at=str(stamp - 1),
    )
    tied = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": f"tie-{i}@example.com"} for i in range(170)],
        modified_at=str(stamp),
    )
    after = hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[{"email": f"post-{i}@example.com"} for i in range(40)],
        modified_at=str(stamp + 1),
    )
    cursor = Cursor({"phase": "incremental", "since_ms": stamp - 10, "archived_since_ms": 0})
    changes, _ = drain(connector.pull_changes(cursor), cursor)
    upserts = [c.native_id for c in changes if c.kind is ChangeKind.UPSERT]
    assert Counter(upserts) == Counter([*before, *tied, *after])


@pytest.mark.hubspot_sandbox(rate_limits=False)
def test_25000_contacts_modified_within_an_hour_are_pulled_exactly_once(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    window = hubspot_sandbox.control.control("seed_bulk", count=25_000, within_seconds=3600)
    start = parse_time(window["from"])
    assert start is not None
    connector = connector_for(hubspot_sandbox, search_per_second=1000)
    cursor = Cursor(
        {"phase": "incremental", "since_ms": to_ms(start), "archived_since_ms": to_ms(start)}
    )
    seen: Counter[str] = Counter()
    pages = 0
    for batch in connector.pull_changes(cursor):
        pages += 1
        seen.update(c.native_id for c in batch.changes)
    assert len(seen) == 25_000
    assert set(seen.values()) == {1}
    calls = hubspot_sandbox.calls()
    assert calls.count("POST /crm/v3/objects/contacts/search", status=400) == 0
    assert calls.count("POST /crm/v3/objects/contacts/search") <= 25_000 // 200 + 2
    assert pages >= 125


def test_deletes_and_merges_are_reported(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, 4, "gone")
    connector = connector_for(hubspot_sandbox)
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    hubspot_sandbox.control.control("archive_contact", email="gone-1@example.com")
    hubspot_sandbox.control.control(
        "merge_contacts", primary_email="gone-2@example.com", secondary_email="gone-3@example.com"
    )
    changes, after = drain(connector.pull_changes(cursor), cursor)
    gone = {c.native_id: c for c in changes if c.kind is not ChangeKind.UPSERT}
    assert gone[ids[1]].kind is ChangeKind.DELETE
    assert gone[ids[1]].merged_into is None
    assert gone[ids[3]].kind is ChangeKind.MERGE
    assert gone[ids[3]].merged_into == ids[2]
    assert gone[ids[3]].modified_at.tzinfo is not None
    assert ids[2] in {c.native_id for c in changes if c.kind is ChangeKind.UPSERT}
    assert after.get("archived_since_ms") > cursor.get("archived_since_ms")
    # One batch read told the merge from the delete.
    assert hubspot_sandbox.calls().count("POST /crm/v3/objects/contacts/batch/read") == 1


@pytest.mark.hubspot_sandbox(properties=[{"name": "lifecyclestage", "add_options": ["recycled"]}])
def test_an_unmapped_lifecycle_stage_is_a_problem_not_a_value(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    [odd] = seed(hubspot_sandbox, 1, "odd", lifecyclestage="recycled")
    [fine] = seed(hubspot_sandbox, 1, "fine")
    changes, _ = drain(connector_for(hubspot_sandbox).pull_changes(Cursor()))
    by_id = {c.native_id: c for c in changes}
    [problem] = by_id[odd].problems
    assert problem.field == "lifecyclestage"
    assert problem.rule == "picklist_mapping"
    assert "'recycled'" in problem.message
    lead = by_id[odd].lead
    assert lead is not None
    assert lead.stage is None
    assert not by_id[fine].problems


def test_an_unmapped_picklist_value_of_a_field_is_a_problem(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    add_option(hubspot_sandbox, "lead_source", "podcast")
    [odd] = seed(hubspot_sandbox, 1, "podcast", lead_source="podcast")
    changes, _ = drain(connector_for(hubspot_sandbox).pull_changes(Cursor()))
    [problem] = next(c for c in changes if c.native_id == odd).problems
    assert problem.field == "lead_source"
    assert "podcast" in problem.message


@pytest.mark.hubspot_sandbox(search_per_second=100)
def test_backfill_reads_a_window_by_search_and_resumes(hubspot_sandbox: HubSpotSandbox) -> None:
    hubspot_sandbox.control.control("seed_bulk", count=900, within_seconds=900)
    connector = connector_for(hubspot_sandbox, search_per_second=100)
    now = parse_time(hubspot_sandbox.control.health()["now"])
    assert now is not None
    since, until = now - timedelta(seconds=600), now - timedelta(seconds=300)
    expected = {
        str(c.id)
        for c in hubspot_sandbox.emulator.portal.store.contacts.values()
        if to_ms(since) <= c.modified_ms < to_ms(until)
    }
    assert 250 < len(expected) < 350
    batches = connector.pull_range(since, until, Cursor())
    first = next(iter(batches))
    rest, last = drain(connector.pull_range(since, until, first.cursor))
    got = [c.native_id for c in [*first.changes, *rest]]
    assert Counter(got) == Counter(expected)
    assert last.get("done") is True
    assert list(connector.pull_range(since, until, last)) == []


@pytest.mark.hubspot_sandbox(search_per_second=100)
def test_a_backfill_window_costs_one_search_per_page_and_resumes_from_any_page(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    # 3 contacts per millisecond, 50 a page: most pages end inside a tie, which the next query
    # leaves out by id instead of reading it again.
    stamp = to_ms(parse_time("2026-02-01T08:00:00.000Z") or from_ms(0))
    ids: list[str] = []
    for i in range(100):
        ids += hubspot_sandbox.control.control(
            "seed_contacts",
            contacts=[{"email": f"w{i}-{j}@example.com"} for j in range(3)],
            modified_at=str(stamp + i),
        )
    connector = connector_for(hubspot_sandbox, search_page_size=50, search_per_second=100)
    since, until = from_ms(stamp), from_ms(stamp + 100)
    changes, last = drain(connector.pull_range(since, until, Cursor()))
    assert Counter(c.native_id for c in changes) == Counter(ids)
    assert search_calls(hubspot_sandbox) == 300 // 50  # ceil(N / page), nothing read twice
    # Resumed after each page, the rest of the window is read exactly once too.
    cursors = [b.cursor for b in connector.pull_range(since, until, Cursor())]
    for i, cursor in enumerate(cursors[:-1]):
        rest, _ = drain(connector.pull_range(since, until, cursor), cursor)
        assert len(rest) == len({c.native_id for c in rest}) == 300 - 50 * (i + 1)
    assert last.get("done") is True


def test_backfill_without_a_start_pages_the_list(hubspot_sandbox: HubSpotSandbox) -> None:
    ids = seed(hubspot_sandbox, 120, "all")
    connector = connector_for(hubspot_sandbox)
    changes, last = drain(connector.pull_range(None, None, Cursor()))
    assert sorted(c.native_id for c in changes) == sorted(ids)
    assert last.get("done") is True
    assert hubspot_sandbox.calls().by_endpoint() == {"GET /crm/v3/objects/contacts": 2}


def test_deletes_follow_hubspots_clock_when_it_runs_ahead(hubspot_sandbox: HubSpotSandbox) -> None:
    # The demo moves the sandbox clock hours ahead of this machine's; a delete is still reported
    # once, not on every pull.
    ids = seed(hubspot_sandbox, 2, "ahead")
    connector = connector_for(hubspot_sandbox)
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    hubspot_sandbox.control.advance_clock(3 * 3600)
    hubspot_sandbox.control.control("archive_contact", email="ahead-0@example.com")
    changes, cursor = drain(connector.pull_changes(cursor), cursor)
    assert gone(changes) == [(ids[0], ChangeKind.DELETE)]
    # Later pulls re-read the lookback before their cursor, then the delete is left behind.
    hubspot_sandbox.control.advance_clock(3600)
    hubspot_sandbox.control.control(
        "edit_contact", email="ahead-1@example.com", properties={"company": "Later"}
    )
    _again, cursor = drain(connector.pull_changes(cursor), cursor)
    hubspot_sandbox.control.advance_clock(3600)
    later, _ = drain(connector.pull_changes(cursor), cursor)
    assert gone(later) == []


def test_archived_contacts_are_scanned_as_often_as_configured(
    hubspot_sandbox: HubSpotSandbox,
) -> None:
    seed(hubspot_sandbox, 2, "rare")
    connector = connector_for(hubspot_sandbox, archived_scan_seconds=3600)
    _changes, cursor = drain(connector.pull_changes(Cursor()))
    hubspot_sandbox.server.call_log.reset()
    hubspot_sandbox.control.control("archive_contact", email="rare-1@example.com")
    changes, later = drain(connector.pull_changes(cursor), cursor)
    assert gone(changes) == []
    assert hubspot_sandbox.calls().count(LIST) == 0
    # The scan that is due reads it: the delete is late, never lost.
    due = Cursor({**later.position, "archived_scanned_ms": 0})
    changes, _ = drain(connector.pull_changes(due), due)
    assert [kind for _id, kind in gone(changes)] == [ChangeKind.DELETE]
