"""The backfill engine on memory connectors: handoffs and their write-back as it goes, a stop
between batches and the resume from where it stopped, nothing handed off twice."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from crmbridge.app import CrmBridge
from crmbridge.store import Store
from crmbridge.sync import PipelineRunner
from crmbridge.sync import backfill as backfill_module
from crmbridge.sync import writeback as writeback_module
from crmbridge.sync.backfill import Progress, run_backfill
from crmbridge.testing import memory

from .conftest import mql_contact

LEADS = 450


def seed(world: memory.MemoryWorld) -> list[str]:
    emails = [f"lead{i:04d}@backfill.example" for i in range(LEADS)]
    for email in emails:
        world.marketing_add(**mql_contact(email))
    return emails


def since(world: memory.MemoryWorld) -> datetime:
    return world.now() - timedelta(days=1)


def test_a_backfill_hands_off_and_writes_back_as_it_goes(
    runner: PipelineRunner,
    world: memory.MemoryWorld,
    bridge: CrmBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = seed(world)
    monkeypatch.setattr(backfill_module, "HANDOFF_EVERY", 100)
    shown_during: list[int] = []

    def progress(p: Progress) -> None:
        # How many leads marketing already shows as handed off while pages are still read.
        if p.total is not None and p.records < p.total:
            shown = sum(1 for e in emails if world.marketing_get(e).get("crmbridge_handed_off_at"))
            shown_during.append(shown)

    result = run_backfill(runner, since(world), progress=progress)

    assert result.status == "ok", result.error
    assert result.counts.handed_off == LEADS
    assert result.counts.pulled == LEADS, "contacts written back as it went were read again"
    assert world.sales_count() == LEADS
    assert max(shown_during) >= 300, "handoffs were shown in marketing only at the end"
    assert all(world.marketing_get(e)["crmbridge_handed_off_at"] for e in emails)


def test_a_stopped_backfill_resumes_where_it_stopped_and_duplicates_nothing(
    runner: PipelineRunner,
    world: memory.MemoryWorld,
    bridge: CrmBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = seed(world)
    monkeypatch.setattr(backfill_module, "HANDOFF_EVERY", 100)
    stop = threading.Event()

    def stop_half_way(p: Progress) -> None:
        if p.records >= 200:
            stop.set()

    start = since(world)  # the same range again is the same backfill
    first = run_backfill(runner, start, stop=stop, progress=stop_half_way)
    assert first.status == "stopped"
    assert "stopped between batches" in str(first.error)
    taken = first.counts.pulled
    assert 200 <= taken < LEADS

    second = run_backfill(runner, start)
    assert second.status == "ok", second.error
    assert second.counts.pulled == LEADS - taken, "the resumed run read only what was left"
    assert world.sales_count() == LEADS
    handed = first.counts.handed_off + second.counts.handed_off
    assert handed == LEADS
    for email in emails:
        lead = bridge.store.lead(email)
        assert lead is not None
        kinds = [e.kind for e in bridge.store.journey(lead.id)]
        assert kinds.count("handed_off") == 1, email


def test_between_pages_a_backfill_hands_off_its_own_leads_and_at_the_end_every_pending_one(
    runner: PipelineRunner,
    world: memory.MemoryWorld,
    bridge: CrmBridge,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lead taken in earlier and never handed off (an intake-only chunk, say) waits in the store.
    world.offset = -timedelta(days=3)
    world.marketing_add(**mql_contact("waiting@backfill.example"))
    world.offset = timedelta()
    earlier = run_backfill(
        runner, world.now() - timedelta(days=4), world.now() - timedelta(days=2), part="intake"
    )
    assert earlier.status == "ok", earlier.error
    assert earlier.counts.handed_off == 0
    emails = seed(world)
    monkeypatch.setattr(backfill_module, "HANDOFF_EVERY", 100)
    during: list[tuple[int, bool]] = []

    def progress(p: Progress) -> None:
        if p.total is not None and p.records < p.total:
            waiting = world.sales.by("Email", "waiting@backfill.example") is not None
            during.append((world.sales_count(), waiting))

    result = run_backfill(runner, since(world), progress=progress)

    assert result.status == "ok", result.error
    # Between pages only the backfill's own leads were looked at (by id, not by a scan)...
    assert max(count for count, _ in during) >= 300
    assert not any(waiting for _, waiting in during)
    # ...and the last handoff took every pending lead, the one waiting from before too.
    assert result.counts.handed_off == LEADS + 1
    assert world.sales_get("waiting@backfill.example")["Id"]
    assert world.sales_count() == LEADS + 1
    assert all(world.marketing_get(e)["crmbridge_handed_off_at"] for e in emails)


def test_the_write_back_builds_the_next_chunk_while_one_is_in_flight(
    runner: PipelineRunner,
    world: memory.MemoryWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emails = seed(world)
    monkeypatch.setattr(writeback_module, "CHUNK", 150)  # 450 leads: three chunks
    events: list[str] = []
    write_outcomes = memory.MemoryMarketing.write_outcomes
    dirty_leads = Store.dirty_leads

    def slow_write(self: memory.MemoryMarketing, writes: Any) -> Any:
        events.append("send")
        time.sleep(0.2)  # the latency of a real call
        answered = write_outcomes(self, writes)
        events.append("answered")
        return answered

    def build(self: Store, *args: Any, **kwargs: Any) -> list[int]:
        events.append("build")
        return dirty_leads(self, *args, **kwargs)

    monkeypatch.setattr(memory.MemoryMarketing, "write_outcomes", slow_write)
    monkeypatch.setattr(Store, "dirty_leads", build)

    result = run_backfill(runner, since(world))

    assert result.status == "ok", result.error
    assert all(world.marketing_get(e)["crmbridge_handed_off_at"] for e in emails)
    first_send = events.index("send")
    # The second chunk was read and built before the first chunk's writes answered...
    assert "build" in events[first_send : events.index("answered")]
    # ...and never more than one chunk was in flight.
    in_flight = 0
    for event in events:
        in_flight += {"send": 1, "answered": -1}.get(event, 0)
        assert in_flight <= 1


def test_pending_handoffs_among_given_leads_reads_only_their_id_range(tmp_path: Any) -> None:
    # Without statistics SQLite walks the (pipeline, stage) index in id order; the query bounds
    # that walk by the ids asked for, so a backfill's lookups do not grow with the store.
    from sqlalchemy import event

    from crmbridge.store.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    seen: list[tuple[str, Any]] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))
    with store.engine.connect() as conn:
        store.pending_handoffs(conn, "default", "mql", 5000, among=[7000, 7001, 7500])
        statement, parameters = seen[-1]
        plan = [
            row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    assert "rowid>? AND rowid<?" in plan[0], plan
    store.close()
