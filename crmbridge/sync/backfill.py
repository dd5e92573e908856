"""A backfill: every marketing record modified in a date range, through the same steps as a
cycle, resumable after a crash or a stop from the batch where it stopped.

Records are streamed page by page (memory stays flat in the number of records): each page is
taken in with its position committed in the same transaction (under the pipeline's lease), and the
leads that qualify are handed to sales, and the handoffs shown in marketing, in chunks as the
backfill goes — in bulk when the sales connector chooses to (Bulk API 2.0 above its threshold),
while the next pages are read ahead.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import insert, select, update

from crmbridge.connector import Cursor
from crmbridge.context import RunCounts
from crmbridge.errors import CrmBridgeError, PipelineHeld
from crmbridge.store import Store
from crmbridge.store import tables as t
from crmbridge.sync.courtesy import QuotaGuard
from crmbridge.sync.cycle import CycleResult, PipelineRunner
from crmbridge.sync.cycle_context import Cycle, Stopped
from crmbridge.sync.handoff import CHUNK as HANDOFF_CHUNK
from crmbridge.sync.handoff import handoff_step
from crmbridge.sync.intake import intake_batch
from crmbridge.sync.leases import take_lease
from crmbridge.sync.prefetch import prefetch
from crmbridge.sync.writeback import writeback_step

log = logging.getLogger("crmbridge.backfill")
HANDOFF_EVERY = HANDOFF_CHUNK
"""Records taken in between two handoffs (each followed by the write-back that shows marketing):
one handoff batch (one Bulk API 2.0 job), so the writes of each batch overlap the reading of the
next, and what is left to write after the last page is one batch at most."""
READ_AHEAD_PAGES = 25
"""Pages the reader keeps ahead (5,000 HubSpot contacts, a few MB): it goes on searching, within
the rate limit, while the engine hands off and writes back, so the searches' floor and the
writes overlap instead of adding up."""

BackfillPart = Literal["whole", "intake", "handoff"]
"""What a call of :func:`run_backfill` does: the ``whole`` backfill; only the ``intake`` of the
range (one chunk of a backfill split across workers); or only the ``handoff`` and write-back that
follow the chunks, once they are all taken in."""


@dataclass(frozen=True)
class Progress:
    """Where a backfill stands, for a progress bar."""

    records: int
    total: int | None
    api_calls: int
    handed_off: int
    quarantined: int


def backfill_id(pipeline: str, since: datetime, until: datetime | None) -> str:
    """The same range of the same pipeline is the same backfill (so running it again resumes)."""
    key = f"{pipeline}|{since.isoformat()}|{until.isoformat() if until else ''}"
    return "bf-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def run_backfill(
    runner: PipelineRunner,
    since: datetime,
    until: datetime | None = None,
    *,
    dry_run: bool = False,
    restart: bool = False,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    part: BackfillPart = "whole",
    lease_key: str | None = None,
) -> CycleResult:
    """Backfill ``[since, until)``; a repeated call with the same range resumes where it stopped.

    ``part`` and ``lease_key`` split a backfill across workers: each chunk of the range runs its
    ``intake`` under a lease of its own (``lease_key``), so chunks run side by side; the
    ``handoff`` part then runs once under the pipeline's lease, so no two workers hand off one lead.
    """
    bridge = runner.bridge
    store = runner.store
    marketing, sales = runner.connectors()
    definition = bridge.definition
    ident = backfill_id(runner.name, since, until)
    stream = f"backfill:{ident}"
    take_in, hand_off = part != "handoff", part != "intake"
    key = lease_key or runner.name
    now = bridge.clock()
    lease = None
    run_id = uuid.uuid4().hex[:12]
    if not dry_run:
        try:
            lease = take_lease(
                store, key, runner.owner, timedelta(seconds=bridge.settings.lease_seconds), now
            )
        except PipelineHeld as exc:
            return CycleResult(run_id, runner.name, "held", RunCounts(), error=exc)
        if take_in:
            until = _register(store, ident, runner.name, since, until, now, restart=restart)
        store.start_run(
            run_id, runner.name, "backfill", now, dry_run=False, version=definition.version
        )
    position = (
        {}
        if restart or dry_run or not take_in
        else store.cursor(runner.name, marketing.system_name(), stream)
    )
    cy = Cycle(
        pipeline=runner.name,
        store=store,
        definition=definition,
        hooks=runner.hooks,
        ctx=bridge.context(run_id=run_id, pipeline=runner.name, dry_run=dry_run, store=store),
        marketing=marketing,
        sales=sales,
        owner=runner.owner,
        lease=lease,
        run_id=run_id,
        clock=bridge.clock,
        quota=QuotaGuard(bridge.settings.quota_reserve),
        dry_run=dry_run,
        stop=stop or threading.Event(),
        handoff_candidates=set() if part == "whole" else None,
    )
    total = marketing.count_range(since, until) if take_in else None
    calls_marketing, calls_sales = marketing.api_usage().calls, sales.api_usage().calls
    calls_before = calls_marketing + calls_sales
    status = "ok"
    error: Exception | None = None
    taken = 0
    try:
        since_handoff = 0
        batches = (
            prefetch(marketing.pull_range(since, until, Cursor(position)), depth=READ_AHEAD_PAGES)
            if take_in
            else iter(())
        )
        for batch in batches:
            cy.check_stop()
            intake_batch(cy, batch, stream=stream)
            taken += len(batch.changes)
            since_handoff += len(batch.changes)
            if part == "whole" and since_handoff >= HANDOFF_EVERY:
                # The leads this backfill brought to the handoff stage since the last handoff
                # (looked up by id: a scan of the whole store each time would grow with it).
                among, cy.handoff_candidates = cy.handoff_candidates, set()
                handoff_step(cy, among=among)
                writeback_step(cy)
                since_handoff = 0
            cy.quota.check(marketing)
            if progress is not None:
                progress(_progress(cy, taken, total, calls_before))
        if hand_off:
            cy.handoff_candidates = None
            handoff_step(cy)  # every pending lead: those left before, and any a batch missed
            writeback_step(cy)
        if progress is not None:
            progress(_progress(cy, taken, total, calls_before))
    except Stopped as exc:
        status, error = "stopped", exc
    except CrmBridgeError as exc:
        status, error = "failed", exc
        log.error("backfill %s failed: %s", ident, exc)
    finally:
        cy.close()
    counts = cy.counts
    for connector, before in ((marketing, calls_marketing), (sales, calls_sales)):
        counts.api_calls[connector.system_name()] = connector.api_usage().calls - before
    if not dry_run:
        if take_in:
            with store.transaction() as conn:
                conn.execute(
                    update(t.backfills)
                    .where(t.backfills.c.id == ident)
                    .values(status="done" if status == "ok" else status, updated_at=bridge.clock())
                )
        store.finish_run(
            run_id,
            bridge.clock(),
            status=status,
            counts=counts.to_dict(),
            error=str(error) if error else None,
        )
        store.release_lease(key, runner.owner)
    runner.hooks.notify("crm_cycle_finished", ctx=cy.ctx, counts=counts)
    return CycleResult(run_id, runner.name, status, counts, cy.plan, error)


def _register(
    store: Store,
    ident: str,
    pipeline: str,
    since: datetime,
    until: datetime | None,
    now: datetime,
    *,
    restart: bool,
) -> datetime:
    """Record the backfill (or mark it running again); ``restart`` forgets its position.

    Returns the range's end. A backfill without one ends when it first started, and keeps that
    end when resumed: what changes later is the sync's to read, and the contacts the backfill
    itself writes back to (modified now) are not read again as it goes.
    """
    with store.transaction() as conn:
        found = conn.execute(
            select(t.backfills.c.id, t.backfills.c.until).where(t.backfills.c.id == ident)
        ).first()
        end = until or (found.until if found is not None and not restart else None) or now
        if found is None:
            conn.execute(
                insert(t.backfills).values(
                    id=ident,
                    pipeline=pipeline,
                    since=since,
                    until=end,
                    position={},
                    status="running",
                    started_at=now,
                    updated_at=now,
                )
            )
        else:
            conn.execute(
                update(t.backfills)
                .where(t.backfills.c.id == ident)
                .values(status="running", until=end, updated_at=now)
            )
        if restart:
            conn.execute(
                t.cursors.delete().where(
                    t.cursors.c.pipeline == pipeline, t.cursors.c.stream == f"backfill:{ident}"
                )
            )
    return end


def _progress(cy: Cycle, taken: int, total: int | None, calls_before: int) -> Progress:
    calls = cy.marketing.api_usage().calls + cy.sales.api_usage().calls
    return Progress(
        records=taken,
        total=total,
        api_calls=calls - calls_before,
        handed_off=cy.counts.handed_off,
        quarantined=cy.counts.quarantined,
    )
