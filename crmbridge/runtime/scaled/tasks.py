"""What each job does in a worker: the same sync functions the embedded runtime runs
(:meth:`PipelineRunner.run_cycle`, :func:`run_backfill`), plus the bookkeeping that makes them
safe on many workers at once.

* ``dispatch`` (periodic): in one transaction, queues a ``tick`` for each pipeline that is due
  (its last tick's end plus its poll interval, or the end of a quota pause), each in a savepoint
  of its own; a tick already waiting is left alone.
* ``tick(pipeline)``: one cycle, under procrastinate's lock ``pipeline:<name>`` and the store's
  lease (held by ``host:pid:job-<id>``, so cursor writes stay fenced), logged from start to end.
* ``backfill_chunk(plan, chunk)``: the intake of one slice of a split backfill, under a lease of
  its own; ``backfill_finish(plan)``: the handoff and write-back of what the chunks took in, under
  the pipeline's lock (see :mod:`crmbridge.runtime.scaled.backfill`).
* ``reap`` (periodic, no lock): fails the jobs of workers whose heartbeat stopped, never retrying
  them; expires their store leases (the fence stops them should they come back); makes their
  pipelines due at once and queues their chunks again.
* ``cleanup`` (hourly): forgets finished jobs and ticks older than ``keep_jobs_hours``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from crmbridge.app import CrmBridge
from crmbridge.errors import CrmBridgeError, QuotaExhausted
from crmbridge.logs import fields as log_fields
from crmbridge.store import tables as t
from crmbridge.sync import CycleResult, Pipeline, PipelineRunner, load_pipelines
from crmbridge.sync.backfill import Progress, run_backfill

from .backfill import Backfills, progress_counts
from .config import ScaledSettings
from .jobs import (
    BACKFILL_CHUNK,
    BACKFILL_FINISH,
    TICK,
    JobQueue,
    chunk_job,
    chunk_lease,
    finish_job,
    job_owner,
    tick_job,
)
from .ledger import Ledger, db_now

log = logging.getLogger("crmbridge.runtime.scaled")

TRANSIENT_ATTEMPTS = 5
"""A chunk whose transaction PostgreSQL rolled back (deadlock, serialization) resumes from its
cursor this many times before the job fails."""
PROGRESS_EVERY = 2.0
"""Seconds between two progress records of a running chunk."""


class Tasks:
    """The jobs of one worker process, sharing its :class:`CrmBridge` (settings, plugins, store)."""

    def __init__(
        self, bridge: CrmBridge, scaled: ScaledSettings, *, stop: threading.Event | None = None
    ) -> None:
        self.bridge = bridge
        self.scaled = scaled
        self.stop = stop or threading.Event()
        self.store = bridge.store
        self.queue = JobQueue()
        self.ledger = Ledger(self.store)
        self.backfills = Backfills(self.store, self.queue)
        self.host_pid = f"{socket.gethostname()}:{os.getpid()}"
        self._runners: dict[str, PipelineRunner] = {}
        self._lock = threading.Lock()

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.bridge.settings.lease_seconds)

    def close(self) -> None:
        """Close every connector this worker opened."""
        with self._lock:
            for runner in self._runners.values():
                runner.close()
            self._runners.clear()

    # -- dispatch -------------------------------------------------------------------------------

    def dispatch(self) -> str:
        """Queue a tick for every pipeline that is due; what was queued."""
        pipelines = load_pipelines(self.bridge.settings)
        queued: list[str] = []
        with self.store.transaction() as conn:
            due = self.ledger.lock_schedule(conn)
            now = db_now(conn)
            for p in pipelines:
                due_at = due.get(p.name)
                if due_at is not None and due_at > now:
                    continue
                if self.queue.submit(conn, tick_job(p.name)) is not None:
                    queued.append(p.name)
                # Queued now or already waiting: not due again until its tick moves the time on,
                # or a lease's length passed (a tick lost before it started is queued again).
                self.ledger.set_due(conn, p.name, now + self.lease)
        return f"queued {len(queued)} tick(s)" + (f": {', '.join(queued)}" if queued else "")

    # -- tick -----------------------------------------------------------------------------------

    def tick(self, job_id: int, worker_id: int | None, pipeline: str) -> str:
        """One sync cycle of ``pipeline`` (the job holds procrastinate's ``pipeline:`` lock)."""
        owner = job_owner(self.host_pid, job_id)
        tick_id = self.ledger.started(
            pipeline=pipeline,
            kind="tick",
            job_id=job_id,
            worker_id=worker_id,
            owner=owner,
            hold=self.lease,
        )
        try:
            runner = self._runner(pipeline)
        except KeyError:
            self.ledger.finished(tick_id, pipeline=pipeline, status="gone", run_id=None, wait=None)
            log.warning("pipeline %s is no longer configured; its tick does nothing", pipeline)
            return f"{pipeline}: gone"
        poll = timedelta(seconds=runner.pipeline.config.poll_seconds)
        try:
            runner.owner = owner
            try:
                result = runner.run_cycle(stop=self.stop)
            finally:
                self.store.release_lease(pipeline, owner)
        except Exception as exc:
            self.ledger.finished(
                tick_id,
                pipeline=pipeline,
                status="failed",
                run_id=None,
                wait=poll,
                note=f"{type(exc).__name__}: {exc}",
            )
            with self._lock:
                self._runners.pop(pipeline, None)
            runner.close()
            raise
        note = str(result.error) if result.error is not None and result.status != "ok" else None
        self.ledger.finished(
            tick_id,
            pipeline=pipeline,
            status=result.status,
            run_id=result.run_id,
            wait=self._wait(result, poll),
            note=note,
        )
        return f"{pipeline}: {result.status}"

    def _wait(self, result: CycleResult, poll: timedelta) -> timedelta:
        """How long until the pipeline is due again: its poll interval; at once when the worker
        stopped it (another worker picks it up); until the quota resets when paused (capped at an
        hour), as the embedded daemon does."""
        if result.status == "stopped":
            return timedelta()
        if result.status == "paused" and isinstance(result.error, QuotaExhausted):
            resets = result.error.resets_at
            if resets is None:
                return poll * 4
            left = min((resets - datetime.now(UTC)).total_seconds(), 3600.0)
            wait = max(poll, timedelta(seconds=left))
            log.warning(
                "pipeline %s paused for %.0f s to leave the quota reserve alone",
                result.pipeline,
                wait.total_seconds(),
                extra=log_fields(pipeline=result.pipeline),
            )
            return wait
        return poll

    def _pipeline(self, name: str) -> Pipeline:
        for p in load_pipelines(self.bridge.settings):
            if p.name == name:
                return p
        raise KeyError(name)

    def _runner(self, name: str) -> PipelineRunner:
        """The pipeline's runner, kept between its ticks on this worker (its connectors keep
        their sessions); ticks of one pipeline never overlap, so one runner serves them all."""
        with self._lock:
            runner = self._runners.get(name)
            if runner is None:
                runner = self._runners[name] = PipelineRunner(self.bridge, self._pipeline(name))
            return runner

    # -- backfills ------------------------------------------------------------------------------

    def backfill_chunk(self, job_id: int, plan_id: str, index: int) -> str:
        """Take in one chunk of a split backfill; queue the finish when it was the last."""
        plan = self.backfills.plan(plan_id)
        if plan is None:
            return f"no backfill {plan_id}"
        chunk = plan.chunk(index)
        owner = job_owner(self.host_pid, job_id)
        lease = chunk_lease(chunk.id)
        runner = PipelineRunner(self.bridge, self._pipeline(plan.pipeline), owner=owner)
        record = ThrottledProgress(lambda p: self.backfills.record_chunk(chunk, progress_counts(p)))
        try:
            result = self._resuming(
                lambda: run_backfill(
                    runner,
                    chunk.since,
                    chunk.until,
                    stop=self.stop,
                    progress=record,
                    part="intake",
                    lease_key=lease,
                ),
                what=f"backfill {plan.id} chunk {index}",
            )
        except Exception:
            self.backfills.mark_failed(chunk)
            raise
        finally:
            self.store.release_lease(lease, owner)
            runner.close()
        seen = record.last or Progress(result.counts.pulled, None, 0, 0, 0)
        self.backfills.record_chunk(chunk, progress_counts(seen, result.counts))
        if result.status == "ok":
            last = self.backfills.chunk_done(plan)
            return f"chunk {index} of {plan.id} in" + (" (the last)" if last else "")
        if result.status == "stopped":
            self.backfills.requeue_chunk(plan, chunk)
            return f"chunk {index} of {plan.id} stopped; queued again"
        raise CrmBridgeError(
            f"backfill {plan.id} chunk {index} ({chunk.since:%Y-%m-%d %H:%M} to "
            f"{'now' if chunk.until is None else f'{chunk.until:%Y-%m-%d %H:%M}'}) ended "
            f"{result.status}: {result.error}",
            hint="run the same crmbridge backfill command again to retry it",
        )

    def _resuming(self, run: Callable[[], CycleResult], what: str) -> CycleResult:
        """``run`` again (it resumes from its cursor) when PostgreSQL rolled its transaction back
        to break a deadlock or a serialization conflict with another worker."""
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return run()
            except OperationalError as exc:
                state = getattr(exc.orig, "sqlstate", None) or ""
                if not state.startswith("40") or attempt == TRANSIENT_ATTEMPTS:
                    raise
                log.warning(
                    "%s: PostgreSQL rolled a batch back (%s); resuming from its cursor (attempt "
                    "%d of %d)",
                    what,
                    state,
                    attempt + 1,
                    TRANSIENT_ATTEMPTS,
                )
                time.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    def backfill_finish(self, job_id: int, worker_id: int | None, plan_id: str) -> str:
        """Hand off and write back what the chunks of ``plan_id`` took in so far (under the
        pipeline's lock and lease, like a tick); the backfill is done when every chunk was in
        before this began."""
        plan = self.backfills.plan(plan_id)
        if plan is None:
            return f"no backfill {plan_id}"
        if self.backfills.state(plan).done:
            return f"{plan.id} was finished already"
        complete = self.backfills.all_done(plan)
        owner = job_owner(self.host_pid, job_id)
        tick_id = self.ledger.started(
            pipeline=plan.pipeline,
            kind="finish",
            job_id=job_id,
            worker_id=worker_id,
            owner=owner,
            hold=None,
        )
        runner = self._runner(plan.pipeline)
        runner.owner = owner
        status, run_id = "failed", None
        try:
            result = run_backfill(runner, plan.since, plan.until, stop=self.stop, part="handoff")
            status, run_id = result.status, result.run_id
        finally:
            self.store.release_lease(plan.pipeline, owner)
            self.ledger.finished(
                tick_id, pipeline=plan.pipeline, status=status, run_id=run_id, wait=None
            )
        if result.status == "ok":
            self.backfills.handed_off(plan, result.counts, datetime.now(UTC), done=complete)
            handed = f"{result.counts.handed_off} handed off"
            return f"{plan.id} finished: {handed}" if complete else f"{plan.id}: {handed} so far"
        if result.status in ("stopped", "held"):
            poll = runner.pipeline.config.poll_seconds
            with self.store.transaction() as conn:
                self.queue.submit(conn, finish_job(plan.id, plan.pipeline).later(poll))
            return f"{plan.id} finish {result.status}; queued again"
        raise CrmBridgeError(
            f"backfill {plan.id}: the handoff ended {result.status}: {result.error}",
            hint="run the same crmbridge backfill command again to retry it",
        )

    # -- reap and cleanup -----------------------------------------------------------------------

    def reap(self) -> str:
        """Fail the jobs of dead workers and free what they held."""
        timeout = self.scaled.worker_timeout_seconds
        with self.store.transaction() as conn:
            stalled = self.queue.query(
                conn,
                "select_stalled_jobs_by_heartbeat",
                queue=None,
                task_name=None,
                seconds_since_heartbeat=timeout,
            )
            now = db_now(conn)
            for job in stalled:
                self._reap_one(conn, job, now)
            self.ledger.reaped(conn, [j["id"] for j in stalled], now)
            self.queue.query(conn, "prune_stalled_workers", seconds_since_heartbeat=timeout)
        if not stalled:
            return "no dead worker"
        names = ", ".join(f"{j['task_name']}[{j['id']}]" for j in stalled)
        log.warning(
            "reaped %d job(s) of dead workers (no heartbeat for %g s): %s",
            len(stalled),
            timeout,
            names,
        )
        return f"reaped {names}"

    def _reap_one(self, conn: Any, job: dict[str, Any], now: datetime) -> None:
        job_id = int(job["id"])
        # Failed, never retried: a retry of a job holding a queueing lock can wedge the queue.
        self.queue.query(conn, "finish_job", job_id=job_id, status="failed", delete_job=False)
        # The dead job's store lease ends now, so the next holder need not wait for it; it gets a
        # new fence, and a worker presumed dead that comes back can no longer move a cursor.
        conn.execute(
            update(t.leases).where(t.leases.c.owner.like(f"%:job-{job_id}")).values(expires_at=now)
        )
        args = job["args"] or {}
        if job["task_name"] == TICK:
            self.ledger.set_due(conn, str(args["pipeline"]), now)
        elif job["task_name"] == BACKFILL_CHUNK:
            plan = self.backfills.plan_in(conn, str(args["plan"]))
            if plan is not None:
                chunk = plan.chunk(int(args["chunk"]))
                self.queue.submit(conn, chunk_job(plan.id, chunk.index, chunk.id))
        elif job["task_name"] == BACKFILL_FINISH:
            plan = self.backfills.plan_in(conn, str(args["plan"]))
            if plan is not None:
                self.queue.submit(conn, finish_job(plan.id, plan.pipeline))

    def cleanup(self) -> str:
        """Forget finished jobs and ticks older than ``keep_jobs_hours``."""
        hours = self.scaled.keep_jobs_hours
        with self.store.transaction() as conn:
            self.queue.execute(
                conn,
                "delete_old_jobs",
                nb_hours=hours,
                queue=None,
                statuses=["succeeded", "failed", "cancelled", "aborted"],
            )
            pruned = self.ledger.prune(conn, db_now(conn) - timedelta(hours=hours))
        return f"forgot jobs and {pruned} tick(s) older than {hours} h"


class ThrottledProgress:
    """A progress callback that records at most every :data:`PROGRESS_EVERY` seconds."""

    def __init__(self, record: Callable[[Progress], None]) -> None:
        self.record = record
        self.last: Progress | None = None
        self._at = 0.0

    def __call__(self, progress: Progress) -> None:
        self.last = progress
        now = time.monotonic()
        if now - self._at >= PROGRESS_EVERY:
            self._at = now
            self.record(progress)
