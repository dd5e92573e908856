"""The jobs crmbridge gives procrastinate, and how they are submitted: inside crmbridge's own
transactions, each in a savepoint of its own.

A job is deferred on the store's own connection, so the row that says why it was queued (a
pipeline's next due time, a backfill's plan) commits or rolls back together with it. A job refused
because one with the same queueing lock is already waiting (``AlreadyEnqueued``) rolls back only
its savepoint, and the transaction goes on.

The locks, and why:

* ``tick`` and ``backfill_finish`` of a pipeline share the lock ``pipeline:<name>``: one worker at
  a time advances the pipeline's cursors or hands its leads off. ``tick`` also has the queueing lock
  ``pipeline:<name>``, so at most one waits. None of them is ever retried by procrastinate (a retry
  of a job holding a queueing lock can fail on the unique index and leave the job ``doing``
  forever, holding the lock: procrastinate issues 1446 and 1543); backoff lives in crmbridge's own
  schedule instead.
* ``backfill_chunk`` locks its chunk, ``backfill:<id>``, so a chunk queued again runs after the
  first and finds its work done.
* ``dispatch``, ``reap`` and ``cleanup`` hold no lock: a stalled one must never stop the next
  (procrastinate issue 1408). Their queueing locks only keep a backlog from piling up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

DISPATCH = "crmbridge.dispatch"
TICK = "crmbridge.tick"
BACKFILL_CHUNK = "crmbridge.backfill_chunk"
BACKFILL_FINISH = "crmbridge.backfill_finish"
REAP = "crmbridge.reap"
CLEANUP = "crmbridge.cleanup"

QUEUE_CONTROL = "control"
QUEUE_SYNC = "sync"
QUEUE_BACKFILL = "backfill"
QUEUES = (QUEUE_CONTROL, QUEUE_SYNC, QUEUE_BACKFILL)
"""``crmbridge worker --queues`` picks among these (default: all)."""

CONTROL_PRIORITY = 100
"""Dispatch, reap and cleanup go before any waiting tick or chunk."""
BACKFILL_PRIORITY = -10
"""Chunks of a backfill give way to the pipelines' regular ticks."""


def pipeline_lock(pipeline: str) -> str:
    """procrastinate's lock (and a tick's queueing lock) for one pipeline."""
    return f"pipeline:{pipeline}"


def chunk_lease(chunk_id: str) -> str:
    """The store lease that fences a backfill chunk's cursor (not the pipeline's)."""
    return f"chunk:{chunk_id}"


def job_owner(host_pid: str, job_id: int) -> str:
    """A job's name as a lease holder: ``host:pid:job-<id>`` (the reaper finds it by the id)."""
    return f"{host_pid}:job-{job_id}"


@dataclass(frozen=True)
class JobSpec:
    """One job to submit: the task, its arguments, where and under which locks."""

    task: str
    kwargs: Mapping[str, Any]
    queue: str
    lock: str | None = None
    queueing_lock: str | None = None
    priority: int = 0
    delay_seconds: float = 0.0

    def later(self, seconds: float) -> JobSpec:
        """The same job, not to start before ``seconds`` from now."""
        return replace(self, delay_seconds=seconds)


def tick_job(pipeline: str) -> JobSpec:
    """One sync cycle of ``pipeline``."""
    lock = pipeline_lock(pipeline)
    return JobSpec(TICK, {"pipeline": pipeline}, QUEUE_SYNC, lock=lock, queueing_lock=lock)


def chunk_job(plan: str, index: int, chunk_id: str) -> JobSpec:
    """The intake of chunk ``index`` of the backfill ``plan``."""
    lock = f"backfill:{chunk_id}"
    return JobSpec(
        BACKFILL_CHUNK,
        {"plan": plan, "chunk": index},
        QUEUE_BACKFILL,
        lock=lock,
        queueing_lock=lock,
        priority=BACKFILL_PRIORITY,
    )


def finish_job(plan: str, pipeline: str) -> JobSpec:
    """The handoff and write-back after every chunk of ``plan`` is in."""
    return JobSpec(
        BACKFILL_FINISH,
        {"plan": plan},
        QUEUE_BACKFILL,
        lock=pipeline_lock(pipeline),
        queueing_lock=f"backfill-finish:{plan}",
    )


class JobQueue:
    """procrastinate's job table, reached through the store's connections.

    procrastinate's synchronous connector runs its own queries on a connection it is handed; it
    opens no pool of its own here.
    """

    def __init__(self) -> None:
        from procrastinate.manager import JobManager
        from procrastinate.sync_psycopg_connector import SyncPsycopgConnector

        self._connector = SyncPsycopgConnector()
        self._manager = JobManager(self._connector)

    def submit(self, conn: Connection, spec: JobSpec) -> int | None:
        """Defer ``spec`` in a savepoint of ``conn``'s transaction; its id, or ``None`` when a job
        with its queueing lock is already waiting."""
        from procrastinate.exceptions import AlreadyEnqueued
        from procrastinate.jobs import Job

        job = Job(
            id=None,
            queue=spec.queue,
            lock=spec.lock,
            queueing_lock=spec.queueing_lock,
            task_name=spec.task,
            task_kwargs=dict(spec.kwargs),
            priority=spec.priority,
            scheduled_at=(
                datetime.now(UTC) + timedelta(seconds=spec.delay_seconds)
                if spec.delay_seconds > 0
                else None
            ),
        )
        try:
            with conn.begin_nested():
                deferred = self._manager.defer_job(job, connection=_driver(conn))
        except AlreadyEnqueued:
            return None
        assert deferred.id is not None
        return int(deferred.id)

    def query(self, conn: Connection, name: str, **arguments: Any) -> list[dict[str, Any]]:
        """Run procrastinate's own query ``name`` (from its ``queries.sql``) on ``conn``."""
        from procrastinate import sql

        rows = self._connector.execute_query_all_with_connection(
            _driver(conn), query=sql.queries[name], **arguments
        )
        return [dict(r) for r in rows]

    def execute(self, conn: Connection, name: str, **arguments: Any) -> None:
        """Run procrastinate's own statement ``name`` on ``conn`` (no rows expected; no argument
        may be a dict, which procrastinate would wrap as JSON)."""
        from procrastinate import sql

        with _driver(conn).cursor() as cursor:
            cursor.execute(sql.queries[name], arguments)


def _driver(conn: Connection) -> Any:
    """The psycopg connection under a SQLAlchemy one (the scaled runtime requires psycopg)."""
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the store connection is closed")
    return raw
