"""The state store on SQLite and PostgreSQL: guarded upserts, links, leases and fenced cursors,
quarantine, runs, the journey, and time zones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import StatementError

from crmbridge.context import RunCounts
from crmbridge.errors import FatalError, PipelineHeld
from crmbridge.store import LeaseInfo, Store, open_store
from crmbridge.store.store import LeadUpsert, crmbridge_id_for

T1 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=5)
T3 = T1 + timedelta(minutes=10)
TTL = timedelta(minutes=2)
JANE = "jane.doe@acme.example"
BOB = "bob@globex.example"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    opened = open_store(store_url)
    yield opened
    opened.close()


def snapshot(email: str, modified_at: datetime, **fields: Any) -> LeadUpsert:
    """A lead's snapshot from HubSpot, modified at ``modified_at``."""
    return LeadUpsert(
        email=email,
        fields={"email": email, **fields},
        source="hubspot",
        source_modified_at=modified_at,
    )


def upsert(store: Store, *snapshots: LeadUpsert) -> dict[str, tuple[int, bool]]:
    """Upsert ``snapshots`` in one transaction."""
    with store.transaction() as conn:
        return store.upsert_leads(conn, list(snapshots), now=T3)


# -- leads ----------------------------------------------------------------------------------------


def test_upsert_inserts_new_leads(store: Store) -> None:
    result = upsert(store, snapshot(JANE, T1, company="Acme"), snapshot(BOB, T1))
    assert {email: applied for email, (_id, applied) in result.items()} == {JANE: True, BOB: True}
    assert result[JANE][0] != result[BOB][0]
    row = store.lead(JANE)
    assert row is not None
    assert (row.id, row.fields, row.source, row.source_modified_at) == (
        result[JANE][0],
        {"email": JANE, "company": "Acme"},
        "hubspot",
        T1,
    )
    assert row.crmbridge_id == crmbridge_id_for(JANE)
    assert row.recycles == 0
    assert store.lead_count() == 2
    assert upsert(store) == {}


def test_an_older_snapshot_never_overwrites_a_newer_one(store: Store) -> None:
    [(lead_id, _)] = upsert(store, snapshot(JANE, T2, company="New Co")).values()

    assert upsert(store, snapshot(JANE, T1, company="Old Co")) == {JANE: (lead_id, False)}
    row = store.lead(JANE)
    assert row is not None
    assert (row.fields["company"], row.source_modified_at) == ("New Co", T2)

    assert upsert(store, snapshot(JANE, T3, company="Newest Co")) == {JANE: (lead_id, True)}
    # The same snapshot again (a replay) is applied and changes nothing.
    assert upsert(store, snapshot(JANE, T3, company="Newest Co")) == {JANE: (lead_id, True)}
    row = store.lead(JANE)
    assert row is not None
    assert (row.fields["company"], row.source_modified_at) == ("Newest Co", T3)


def test_the_guard_judges_each_lead_of_a_batch(store: Store) -> None:
    ids = {
        email: lead_id
        for email, (lead_id, _) in upsert(
            store, snapshot(JANE, T2, company="A"), snapshot(BOB, T2, company="B")
        ).items()
    }
    result = upsert(store, snapshot(JANE, T1, company="stale"), snapshot(BOB, T3, company="fresh"))
    assert result == {JANE: (ids[JANE], False), BOB: (ids[BOB], True)}
    with store.engine.connect() as conn:
        rows = store.leads_by_email(conn, [JANE, BOB])
        by_id = store.leads_by_id(conn, ids.values())
    assert {e: r.fields["company"] for e, r in rows.items()} == {JANE: "A", BOB: "fresh"}
    assert set(by_id) == set(ids.values())


def test_update_lead_columns(store: Store) -> None:
    ids = {e: i for e, (i, _) in upsert(store, snapshot(JANE, T1), snapshot(BOB, T1)).items()}
    with store.transaction() as conn:
        store.update_lead(conn, ids[JANE], T2, stage="mql", score=70, fit=30, engagement=40)
        store.update_leads(
            conn, [{"id": ids[JANE], "recycles": 1}, {"id": ids[BOB], "recycles": 2}], T3
        )
    jane, bob = store.lead(JANE), store.lead(BOB)
    assert jane is not None
    assert bob is not None
    assert (jane.stage, jane.score, jane.fit, jane.engagement, jane.recycles) == (
        "mql",
        70,
        30,
        40,
        1,
    )
    assert (bob.recycles, bob.updated_at) == (2, T3)


# -- links ----------------------------------------------------------------------------------------


def test_link_native_modified_at_only_moves_forward(store: Store) -> None:
    [(lead_id, _)] = upsert(store, snapshot(JANE, T1)).values()

    def link(modified: datetime | None, written: dict[str, Any] | None = None) -> None:
        with store.transaction() as conn:
            store.upsert_links(
                conn,
                [
                    {
                        "lead_id": lead_id,
                        "system": "hubspot",
                        "native_id": "101",
                        "native_modified_at": modified,
                        "written": written,
                    }
                ],
            )

    def seen() -> tuple[datetime | None, Any]:
        with store.engine.connect() as conn:
            row = store.links_by_native(conn, "hubspot", ["101"])["101"]
        return row.native_modified_at, row.written

    link(T2, {"company": "Acme"})
    assert seen() == (T2, {"company": "Acme"})
    link(T1, {"company": "Older"})
    assert seen() == (T2, {"company": "Older"})  # the other columns are set
    link(None)
    assert seen() == (T2, None)
    link(T3)
    assert seen()[0] == T3

    with store.engine.connect() as conn:
        [only] = store.links_of(conn, [lead_id])[lead_id]
        assert store.links_by_native(conn, "salesforce", ["101"]) == {}
    assert (only.system, only.native_id, only.lead_id) == ("hubspot", "101", lead_id)


# -- leases and fenced cursors --------------------------------------------------------------------


def test_lease_take_renew_and_held_by_another(store: Store) -> None:
    taken = store.acquire_lease("default", "worker-a", TTL, T1)
    assert taken == LeaseInfo("default", "worker-a", T1, T1 + TTL, 1)

    later = T1 + timedelta(seconds=30)
    renewed = store.acquire_lease("default", "worker-a", TTL, later)
    assert renewed == LeaseInfo("default", "worker-a", T1, later + TTL, 1)

    with pytest.raises(PipelineHeld) as caught:
        store.acquire_lease("default", "worker-b", TTL, later + timedelta(seconds=10))
    assert str(caught.value) == (
        "pipeline 'default' is held by worker-a until 2026-11-23 09:02:30 UTC (another crmbridge "
        "process runs it; stop that one or wait for its lease to expire)"
    )
    assert isinstance(caught.value, FatalError)
    assert store.lease("default") == renewed
    assert store.lease("other") is None


def test_an_expired_lease_is_taken_with_a_new_fence(store: Store) -> None:
    store.acquire_lease("default", "worker-a", TTL, T1)
    after_expiry = T1 + TTL + timedelta(seconds=1)
    taken = store.acquire_lease("default", "worker-b", TTL, after_expiry)
    assert taken == LeaseInfo("default", "worker-b", after_expiry, after_expiry + TTL, 2)
    # worker-a's own lease expired too: it comes back with yet another fence, never its old one.
    later = after_expiry + TTL + timedelta(seconds=1)
    assert store.acquire_lease("default", "worker-a", TTL, later).fence == 3


def test_release_lets_another_take_the_lease(store: Store) -> None:
    store.acquire_lease("default", "worker-a", TTL, T1)
    store.release_lease("default", "worker-b")  # not its lease: nothing happens
    with pytest.raises(PipelineHeld):
        store.acquire_lease("default", "worker-b", TTL, T1 + timedelta(seconds=1))
    store.release_lease("default", "worker-a")
    assert store.acquire_lease("default", "worker-b", TTL, T1 + timedelta(seconds=2)).owner == (
        "worker-b"
    )


def commit_cursor(store: Store, lease: LeaseInfo, position: dict[str, Any]) -> None:
    """Commit the hubspot/contacts cursor under ``lease`` in a transaction of its own."""
    with store.transaction() as conn:
        store.commit_cursor(
            conn,
            pipeline=lease.pipeline,
            system="hubspot",
            stream="contacts",
            position=position,
            owner=lease.owner,
            fence=lease.fence,
            now=T1,
        )


def test_cursor_commit_under_the_lease(store: Store) -> None:
    assert store.cursor("default", "hubspot", "contacts") == {}
    lease = store.acquire_lease("default", "worker-a", TTL, T1)
    commit_cursor(store, lease, {"after": "2026-11-23T09:00:00Z", "ids": ["1", "2"]})
    commit_cursor(store, lease, {"after": "2026-11-23T09:05:00Z", "ids": []})
    assert store.cursor("default", "hubspot", "contacts") == {
        "after": "2026-11-23T09:05:00Z",
        "ids": [],
    }


def write_lead_and_cursor(store: Store, lease: LeaseInfo, position: dict[str, Any]) -> None:
    """In one transaction: a lead (the work a cursor covers), then the cursor under ``lease``."""
    with store.transaction() as conn:
        store.upsert_leads(conn, [snapshot(JANE, T2)], now=T2)
        store.commit_cursor(
            conn,
            pipeline=lease.pipeline,
            system="hubspot",
            stream="contacts",
            position=position,
            owner=lease.owner,
            fence=lease.fence,
            now=T2,
        )


def test_a_stale_fence_is_refused_and_rolls_back_its_work(store: Store) -> None:
    stale = store.acquire_lease("default", "worker-a", TTL, T1)
    commit_cursor(store, stale, {"after": "t1"})
    store.acquire_lease("default", "worker-b", TTL, T1 + 2 * TTL)

    with pytest.raises(PipelineHeld) as caught:
        write_lead_and_cursor(store, stale, {"after": "t2"})
    assert caught.value.message == (
        "pipeline 'default': cursor hubspot/contacts not written; the lease is now held by "
        "worker-b (fence 2), not worker-a (fence 1)"
    )
    assert store.lead(JANE) is None
    assert store.cursor("default", "hubspot", "contacts") == {"after": "t1"}


def test_no_cursor_without_a_lease(store: Store) -> None:
    with pytest.raises(PipelineHeld) as caught:
        commit_cursor(store, LeaseInfo("default", "worker-a", T1, T1 + TTL, 1), {"after": "x"})
    assert "the lease is now held by nobody, not worker-a (fence 1)" in caught.value.message
    assert store.cursor("default", "hubspot", "contacts") == {}


def test_cursor_moves_after_the_lease_was_released_and_taken_again(store: Store) -> None:
    # The fence only ever grows, so the guard on the cursor (fence <= new fence) lets it move.
    first = store.acquire_lease("default", "worker-a", TTL, T1)
    commit_cursor(store, first, {"n": 1})
    second = store.acquire_lease("default", "worker-b", TTL, T1 + 2 * TTL)
    commit_cursor(store, second, {"n": 2})
    store.release_lease("default", "worker-b")
    third = store.acquire_lease("default", "worker-a", TTL, T1 + 3 * TTL)
    assert third.fence > second.fence
    commit_cursor(store, third, {"n": 3})
    assert store.cursor("default", "hubspot", "contacts") == {"n": 3}


def test_a_takeover_waits_for_a_cursor_commit_in_progress(store: Store) -> None:
    # The check of the lease and the cursor write are one unit: a takeover cannot come between.
    lease = store.acquire_lease("default", "worker-a", TTL, T1)
    taken: dict[str, LeaseInfo] = {}

    def take_over() -> None:
        taken["lease"] = store.acquire_lease("default", "worker-b", TTL, T1 + 2 * TTL)

    with store.engine.connect() as conn:
        transaction = conn.begin()
        store.commit_cursor(
            conn,
            pipeline="default",
            system="hubspot",
            stream="contacts",
            position={"n": 1},
            owner="worker-a",
            fence=lease.fence,
            now=T1,
        )
        thread = threading.Thread(target=take_over)
        thread.start()
        thread.join(0.5)
        blocked = thread.is_alive()
        transaction.commit()
    thread.join(30)
    assert blocked, "the lease was taken over while worker-a committed a cursor under it"
    assert taken["lease"].fence == 2


# -- quarantine -----------------------------------------------------------------------------------


def quarantine(store: Store, native_id: str = "101", **kw: Any) -> int:
    """Quarantine a HubSpot record that failed on read."""
    values: dict[str, Any] = {
        "pipeline": "default",
        "system": "hubspot",
        "native_id": native_id,
        "stage": "read",
        "error": "email: 'x' is not a valid email address (rule email_format)",
        "raw": {"email": "x", "lastmodifieddate": T1},
        "now": T1,
        "email": "x",
        "field": "email",
        "rule": "email_format",
    }
    values.update(kw)
    with store.transaction() as conn:
        return store.quarantine(conn, **values)


def test_quarantine_counts_attempts_and_keeps_the_raw_record(store: Store) -> None:
    entry = quarantine(store)
    again = quarantine(store, error="email: still wrong", now=T2)
    assert again == entry
    [record] = store.quarantined()
    assert (record.id, record.attempts, record.status, record.error) == (
        entry,
        2,
        "open",
        "email: still wrong",
    )
    assert (record.first_seen, record.last_seen) == (T1, T2)
    assert record.raw == {"email": "x", "lastmodifieddate": T1.isoformat()}
    assert (record.pipeline, record.system, record.native_id, record.stage) == (
        "default",
        "hubspot",
        "101",
        "read",
    )
    assert store.quarantined_one(entry) == record
    assert store.quarantined_one(entry + 1000) is None


def test_quarantine_entries_are_per_stage(store: Store) -> None:
    read = quarantine(store)
    write = quarantine(store, stage="write", rule="DUPLICATE_VALUE")
    assert read != write
    assert [r.stage for r in store.quarantined()] == ["read", "write"]


def test_quarantine_resolve_and_statuses(store: Store) -> None:
    entry = quarantine(store)
    other = quarantine(store, "102")
    quarantine(store, "103", pipeline="eu")

    def resolve(*native_ids: str) -> int:
        with store.transaction() as conn:
            return store.resolve_quarantine(
                conn, pipeline="default", system="hubspot", native_ids=native_ids, stage="read"
            )

    assert resolve("101") == 1
    assert resolve("101") == 0
    assert [r.id for r in store.quarantined(status="resolved")] == [entry]
    assert store.set_quarantine_status([other], "retry") == 1
    assert [r.native_id for r in store.quarantined(status="retry")] == ["102"]
    assert resolve("102") == 1
    assert [r.native_id for r in store.quarantined(status="open")] == ["103"]
    assert [r.native_id for r in store.quarantined(pipeline="eu")] == ["103"]
    assert len(store.quarantined(status=None)) == 3

    # The same record failing again after it was resolved is open again.
    assert quarantine(store, now=T3) == entry
    record = store.quarantined_one(entry)
    assert record is not None
    assert (record.status, record.attempts) == ("open", 2)


# -- runs and the journey -------------------------------------------------------------------------


def test_runs_are_recorded_with_their_counts(store: Store) -> None:
    store.start_run("run-1", "default", "cycle", T1, dry_run=False, version="2026.11.1")
    store.finish_run(
        "run-1",
        T1 + timedelta(seconds=4),
        status="ok",
        counts=RunCounts(pulled=3, valid=2, quarantined=1, api_calls={"hubspot": 2}).to_dict(),
    )
    store.start_run("run-2", "default", "backfill", T2, dry_run=True, version="2026.11.1")
    store.finish_run("run-2", T3, status="failed", counts={}, error="quota spent")
    store.start_run("run-3", "eu", "cycle", T3, dry_run=False, version="2026.11.1")

    newest, older = store.runs(pipeline="default")
    assert (newest.id, newest.kind, newest.dry_run, newest.status, newest.error) == (
        "run-2",
        "backfill",
        True,
        "failed",
        "quota spent",
    )
    assert (older.id, older.status, older.started_at, older.finished_at) == (
        "run-1",
        "ok",
        T1,
        T1 + timedelta(seconds=4),
    )
    assert older.counts["pulled"] == 3
    assert older.counts["api_calls"] == {"hubspot": 2}
    [running] = store.runs(pipeline="eu")
    assert (running.status, running.finished_at, running.counts) == ("running", None, {})
    assert [r.id for r in store.runs(limit=2)] == ["run-3", "run-2"]


def test_journey_events_in_order(store: Store) -> None:
    ids = {e: i for e, (i, _) in upsert(store, snapshot(JANE, T1), snapshot(BOB, T1)).items()}
    with store.transaction() as conn:
        store.append_events(
            conn,
            [
                {
                    "lead_id": ids[JANE],
                    "at": T1,
                    "kind": "scored",
                    "summary": "score 70 (fit 30, engagement 40)",
                    "data": {"reasons": ["fit +15 target_industry"]},
                    "definition_version": "2026.11.1",
                    "definition_hash": "a9979e6fb4adc22a",
                },
                {"lead_id": ids[BOB], "at": T1, "kind": "captured", "summary": "from hubspot"},
                {
                    "lead_id": ids[JANE],
                    "at": T2,
                    "kind": "stage",
                    "summary": "lead → mql",
                    "system": "hubspot",
                    "run_id": "run-1",
                },
            ],
        )
        store.append_events(conn, [])
    scored, stage = store.journey(ids[JANE])
    assert (scored.kind, scored.at, scored.data, scored.definition_version) == (
        "scored",
        T1,
        {"reasons": ["fit +15 target_industry"]},
        "2026.11.1",
    )
    assert (stage.summary, stage.system, stage.run_id, stage.data) == (
        "lead → mql",
        "hubspot",
        "run-1",
        {},
    )
    assert stage.id > scored.id
    assert [e.kind for e in store.journey(ids[BOB])] == ["captured"]


# -- time zones -----------------------------------------------------------------------------------


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = datetime(2026, 11, 23, 9, 0)
    with pytest.raises(StatementError) as caught, store.transaction() as conn:
        store.upsert_leads(conn, [snapshot(JANE, naive)], now=T1)
    assert isinstance(caught.value.orig, ValueError)
    assert "naive datetime" in str(caught.value.orig)
    assert "use UTC-aware times" in str(caught.value.orig)
    assert store.lead(JANE) is None


def test_aware_datetimes_come_back_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 23, 10, 0, tzinfo=paris)
    upsert(store, snapshot(JANE, local))
    row = store.lead(JANE)
    assert row is not None
    assert row.source_modified_at == T1
    assert row.source_modified_at is not None
    assert row.source_modified_at.utcoffset() == timedelta(0)
    assert row.created_at.tzinfo is not None
