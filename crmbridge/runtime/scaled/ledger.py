"""The scaled runtime's own state, next to crmbridge's: when each pipeline is due
(``scaled_pipelines``) and every job that held a pipeline, from start to end (``scaled_ticks``).

Times here are the database's (``now()``), not a worker's clock: the workers run on many machines,
and one clock orders their ticks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from crmbridge.store import Store
from crmbridge.store import tables as t

RUNNING = "running"
REAPED = "reaped"


def db_now(conn: Connection) -> datetime:
    """The database's clock."""
    now: datetime = conn.execute(select(func.now())).scalar_one()
    return now


@dataclass(frozen=True)
class TickRecord:
    """One job that held a pipeline: a ``tick`` or a ``backfill_finish``."""

    id: int
    pipeline: str
    kind: str
    job_id: int
    worker_id: int | None
    owner: str
    run_id: str | None
    started_at: datetime
    finished_at: datetime | None
    status: str


class Ledger:
    """Reads and writes of ``scaled_pipelines`` and ``scaled_ticks``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- the schedule ---------------------------------------------------------------------------

    def lock_schedule(self, conn: Connection) -> dict[str, datetime]:
        """Every pipeline's next due time, locked until the transaction ends (so two dispatches,
        say a periodic one and ``crmbridge run`` starting, queue a pipeline once)."""
        rows = conn.execute(
            select(t.scaled_pipelines.c.pipeline, t.scaled_pipelines.c.due_at).with_for_update()
        )
        return {r.pipeline: r.due_at for r in rows}

    def set_due(self, conn: Connection, pipeline: str, due_at: datetime, **values: Any) -> None:
        """Set when ``pipeline`` is due next (and other schedule columns)."""
        stmt = insert(t.scaled_pipelines).values(pipeline=pipeline, due_at=due_at, **values)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.scaled_pipelines.c.pipeline],
                set_={"due_at": due_at, **values},
            )
        )

    def schedule(self) -> dict[str, Mapping[str, Any]]:
        """Every pipeline's row of the schedule, by name."""
        with self.store.engine.connect() as conn:
            return {r.pipeline: r._asdict() for r in conn.execute(select(t.scaled_pipelines))}

    # -- ticks ----------------------------------------------------------------------------------

    def started(
        self,
        *,
        pipeline: str,
        kind: str,
        job_id: int,
        worker_id: int | None,
        owner: str,
        hold: timedelta | None,
    ) -> int:
        """Log the start of a job that holds ``pipeline``; with ``hold``, the pipeline is not due
        again before that long (a tick that dies is queued again by the reaper sooner)."""
        with self.store.transaction() as conn:
            now = db_now(conn)
            tick_id = conn.execute(
                insert(t.scaled_ticks)
                .values(
                    pipeline=pipeline,
                    kind=kind,
                    job_id=job_id,
                    worker_id=worker_id,
                    owner=owner,
                    started_at=now,
                    status=RUNNING,
                )
                .returning(t.scaled_ticks.c.id)
            ).scalar_one()
            if hold is not None:
                self.set_due(conn, pipeline, now + hold, last_job_id=job_id, last_started_at=now)
        return int(tick_id)

    def finished(
        self,
        tick_id: int,
        *,
        pipeline: str,
        status: str,
        run_id: str | None,
        wait: timedelta | None,
        note: str | None = None,
    ) -> None:
        """Log the end of a tick; with ``wait``, the pipeline is due again that long from now."""
        with self.store.transaction() as conn:
            now = db_now(conn)
            conn.execute(
                update(t.scaled_ticks)
                .where(t.scaled_ticks.c.id == tick_id)
                .values(finished_at=now, status=status, run_id=run_id)
            )
            if wait is None:
                return
            values: dict[str, Any] = {
                "last_finished_at": now,
                "last_status": status,
                "note": note,
            }
            if status == "ok":
                values["last_ok_at"] = now
            self.set_due(conn, pipeline, now + wait, **values)

    def reaped(self, conn: Connection, job_ids: Iterable[int], now: datetime) -> list[str]:
        """Close the ticks of reaped jobs; the pipelines they held."""
        ids = list(job_ids)
        if not ids:
            return []
        rows = conn.execute(
            update(t.scaled_ticks)
            .where(t.scaled_ticks.c.job_id.in_(ids), t.scaled_ticks.c.finished_at.is_(None))
            .values(finished_at=now, status=REAPED)
            .returning(t.scaled_ticks.c.pipeline)
        )
        return sorted({r.pipeline for r in rows})

    def ticks(self, pipeline: str | None = None) -> list[TickRecord]:
        """The tick log, oldest first (for checks and ``crmbridge status``)."""
        query = select(t.scaled_ticks).order_by(t.scaled_ticks.c.started_at, t.scaled_ticks.c.id)
        if pipeline is not None:
            query = query.where(t.scaled_ticks.c.pipeline == pipeline)
        with self.store.engine.connect() as conn:
            return [TickRecord(**r._asdict()) for r in conn.execute(query)]

    def prune(self, conn: Connection, before: datetime) -> int:
        """Forget finished ticks that ended before ``before``; how many."""
        return int(
            conn.execute(
                t.scaled_ticks.delete().where(
                    t.scaled_ticks.c.finished_at.is_not(None),
                    t.scaled_ticks.c.finished_at < before,
                )
            ).rowcount
        )


def overlaps(ticks: Iterable[TickRecord]) -> list[tuple[TickRecord, TickRecord]]:
    """Pairs of ticks of one pipeline whose [start, end] intervals overlap (a tick with no end is
    treated as still running). Empty when one job at a time held each pipeline."""
    by_pipeline: dict[str, list[TickRecord]] = {}
    for tick in ticks:
        by_pipeline.setdefault(tick.pipeline, []).append(tick)
    found: list[tuple[TickRecord, TickRecord]] = []
    for runs in by_pipeline.values():
        runs.sort(key=lambda r: (r.started_at, r.id))
        latest: TickRecord | None = None
        for tick in runs:
            if latest is not None and (
                latest.finished_at is None or tick.started_at < latest.finished_at
            ):
                found.append((latest, tick))
            if latest is None or _end(tick) > _end(latest):
                latest = tick
    return found


def _end(tick: TickRecord) -> datetime:
    return tick.finished_at or datetime.max.replace(tzinfo=tick.started_at.tzinfo)
