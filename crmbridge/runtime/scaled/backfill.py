"""A backfill split across workers: a plan of time slices, each taken in by a ``backfill_chunk``
job, then one ``backfill_finish`` that hands off and writes back.

Each chunk is an ordinary backfill of its slice (its own id, cursor stream and row in
``backfills``), so it resumes where it stopped; it runs under a lease of its own, so chunks run side
by side with each other and with the pipeline's ticks. Leads met in two chunks at once are
upserted ``ON CONFLICT`` and guarded by their modification time, so the later snapshot wins
whichever chunk commits first. Handoffs run under the pipeline's lock and lease only (so no two
workers hand off one lead): after each chunk, a ``backfill_finish`` hands off what is pending while
the other chunks go on taking in (at most one waits; the serial part overlaps the parallel one),
and the one that starts after the last chunk is in marks the backfill done.

The plan is a row of ``backfills`` too (its id starts ``bfs-``), holding the slices; running the
same ``crmbridge backfill`` again finds it and queues what is not done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from crmbridge.context import RunCounts
from crmbridge.store import Store
from crmbridge.store import tables as t
from crmbridge.sync.backfill import Progress, backfill_id

from .jobs import JobQueue, chunk_job, finish_job

DONE = "done"
RUNNING = "running"


@dataclass(frozen=True)
class Chunk:
    """One time slice of a split backfill, itself an ordinary backfill with id ``id``."""

    index: int
    since: datetime
    until: datetime | None
    id: str


@dataclass(frozen=True)
class Plan:
    """A backfill of ``pipeline`` over ``[since, until)``, split into ``chunks``."""

    id: str
    pipeline: str
    since: datetime
    until: datetime | None
    chunks: tuple[Chunk, ...]

    def chunk(self, index: int) -> Chunk:
        return self.chunks[index]

    def position(self) -> dict[str, Any]:
        """The plan as the JSON kept in its ``backfills`` row."""
        return {
            "plan": [
                [c.since.isoformat(), c.until.isoformat() if c.until else None] for c in self.chunks
            ]
        }

    @classmethod
    def from_row(cls, row: Any) -> Plan:
        slices = row.position["plan"]
        chunks = tuple(
            _chunk(row.pipeline, i, datetime.fromisoformat(a), _date(b))
            for i, (a, b) in enumerate(slices)
        )
        return cls(row.id, row.pipeline, row.since, row.until, chunks)


def _date(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _chunk(pipeline: str, index: int, since: datetime, until: datetime | None) -> Chunk:
    return Chunk(index, since, until, backfill_id(pipeline, since, until))


def plan_id(pipeline: str, since: datetime, until: datetime | None, count: int) -> str:
    """The same range split the same way is the same plan (so running it again resumes)."""
    key = f"{pipeline}|{since.isoformat()}|{until.isoformat() if until else ''}|{count}"
    return "bfs-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def make_plan(
    pipeline: str, since: datetime, until: datetime | None, count: int, now: datetime
) -> Plan:
    """Split ``[since, until)`` into ``count`` equal time slices (an open end is split up to
    ``now``, and the last slice stays open, so records changed meanwhile are not missed)."""
    end = until or now
    if end <= since:
        count = 1
    step = (end - since) / count
    starts = [since + step * i for i in range(count)]
    ends: list[datetime | None] = [*starts[1:], until]
    chunks = tuple(_chunk(pipeline, i, starts[i], ends[i]) for i in range(count))
    return Plan(plan_id(pipeline, since, until, count), pipeline, since, until, chunks)


class Backfills:
    """Split backfills in the store: plans, their chunks' state, and the jobs that run them."""

    def __init__(self, store: Store, queue: JobQueue) -> None:
        self.store = store
        self.queue = queue

    def submit(self, plan: Plan, now: datetime, *, restart: bool = False) -> Plan:
        """Record ``plan`` (or find it, when it ran before) and queue every chunk not done yet;
        when all are done, queue the finish. One transaction: all of it, or none."""
        with self.store.transaction() as conn:
            row = conn.execute(
                select(t.backfills).where(t.backfills.c.id == plan.id).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    insert(t.backfills).values(
                        id=plan.id,
                        pipeline=plan.pipeline,
                        since=plan.since,
                        until=plan.until,
                        position=plan.position(),
                        status=RUNNING,
                        counts={},
                        started_at=now,
                        updated_at=now,
                    )
                )
            elif not restart:
                plan = Plan.from_row(row)
            ids = [c.id for c in plan.chunks]
            if restart:
                conn.execute(
                    update(t.backfills)
                    .where(t.backfills.c.id == plan.id)
                    .values(position=plan.position(), status=RUNNING, counts={}, updated_at=now)
                )
                conn.execute(t.backfills.delete().where(t.backfills.c.id.in_(ids)))
                conn.execute(
                    t.cursors.delete().where(
                        t.cursors.c.pipeline == plan.pipeline,
                        t.cursors.c.stream.in_([f"backfill:{i}" for i in ids]),
                    )
                )
            elif row is not None and row.status != RUNNING:
                conn.execute(
                    update(t.backfills)
                    .where(t.backfills.c.id == plan.id)
                    .values(status=RUNNING, updated_at=now)
                )
            done = self._done(conn, ids)
            for chunk in plan.chunks:
                if chunk.id not in done:
                    self.queue.submit(conn, chunk_job(plan.id, chunk.index, chunk.id))
            if len(done) == len(ids):
                self.queue.submit(conn, finish_job(plan.id, plan.pipeline))
        return plan

    def plan(self, plan_id: str) -> Plan | None:
        """The plan ``plan_id``, as recorded."""
        with self.store.engine.connect() as conn:
            return self.plan_in(conn, plan_id)

    @staticmethod
    def plan_in(conn: Connection, plan_id: str) -> Plan | None:
        """The plan ``plan_id``, read in the caller's transaction."""
        row = conn.execute(select(t.backfills).where(t.backfills.c.id == plan_id)).first()
        return Plan.from_row(row) if row is not None else None

    def mark_failed(self, chunk: Chunk) -> None:
        """A chunk whose job failed: ``crmbridge backfill`` reports it, and queues it again when
        run again."""
        with self.store.transaction() as conn:
            conn.execute(
                update(t.backfills).where(t.backfills.c.id == chunk.id).values(status="failed")
            )

    def chunk_done(self, plan: Plan) -> bool:
        """After a chunk is in: queue a handoff of what is pending (at most one waits), so
        handoffs run beside the chunks still taking in; whether it was the last chunk."""
        with self.store.transaction() as conn:
            last = len(self._done(conn, [c.id for c in plan.chunks])) == len(plan.chunks)
            self.queue.submit(conn, finish_job(plan.id, plan.pipeline))
        return last

    def all_done(self, plan: Plan) -> bool:
        with self.store.engine.connect() as conn:
            return len(self._done(conn, [c.id for c in plan.chunks])) == len(plan.chunks)

    def requeue_chunk(self, plan: Plan, chunk: Chunk) -> None:
        """Queue a chunk again (it stopped before its end: a worker shutting down)."""
        with self.store.transaction() as conn:
            self.queue.submit(conn, chunk_job(plan.id, chunk.index, chunk.id))

    def record_chunk(self, chunk: Chunk, counts: Mapping[str, Any]) -> None:
        """Keep a chunk's progress or final counts in its row, for the command that watches."""
        with self.store.transaction() as conn:
            conn.execute(
                update(t.backfills).where(t.backfills.c.id == chunk.id).values(counts=dict(counts))
            )

    def handed_off(self, plan: Plan, counts: RunCounts, now: datetime, *, done: bool) -> None:
        """Add a finish's counts to the plan's; ``done`` when every chunk was in before it began
        (then nothing taken in is left to hand off)."""
        with self.store.transaction() as conn:
            row = conn.execute(
                select(t.backfills.c.counts).where(t.backfills.c.id == plan.id).with_for_update()
            ).one()
            total = _counts(row.counts or {})
            total.add(counts)
            values: dict[str, Any] = {"counts": total.to_dict(), "updated_at": now}
            if done:
                values["status"] = DONE
            conn.execute(update(t.backfills).where(t.backfills.c.id == plan.id).values(**values))

    def state(self, plan: Plan) -> PlanState:
        """Where a plan stands: its status, and each chunk's."""
        with self.store.engine.connect() as conn:
            head = conn.execute(
                select(t.backfills.c.status, t.backfills.c.counts).where(
                    t.backfills.c.id == plan.id
                )
            ).one()
            rows = {
                r.id: (r.status, r.counts or {})
                for r in conn.execute(
                    select(t.backfills.c.id, t.backfills.c.status, t.backfills.c.counts).where(
                        t.backfills.c.id.in_([c.id for c in plan.chunks])
                    )
                )
            }
        chunks = [rows.get(c.id, ("queued", {})) for c in plan.chunks]
        return PlanState(plan, head.status, head.counts or {}, chunks)

    @staticmethod
    def _done(conn: Connection, ids: Sequence[str]) -> set[str]:
        rows = conn.execute(
            select(t.backfills.c.id).where(t.backfills.c.id.in_(ids), t.backfills.c.status == DONE)
        )
        return {r.id for r in rows}


@dataclass(frozen=True)
class PlanState:
    """A split backfill as the command that started it sees it."""

    plan: Plan
    status: str
    finish_counts: Mapping[str, Any]
    chunks: Sequence[tuple[str, Mapping[str, Any]]]

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def failed(self) -> list[int]:
        """Indexes of chunks that ended failed (``crmbridge backfill`` again retries them)."""
        return [i for i, (status, _) in enumerate(self.chunks) if status == "failed"]

    def progress(self) -> Progress:
        """The chunks' progress added up, as one backfill's."""
        totals = [c.get("total") for _, c in self.chunks]
        known = [int(x) for x in totals if x is not None]
        return Progress(
            records=sum(int(c.get("records", 0)) for _, c in self.chunks),
            total=sum(known) if len(known) == len(totals) else None,
            api_calls=sum(int(c.get("api_calls", 0)) for _, c in self.chunks),
            handed_off=int(self.finish_counts.get("handed_off", 0)),
            quarantined=sum(int(c.get("quarantined", 0)) for _, c in self.chunks),
        )

    def counts(self) -> RunCounts:
        """Every chunk's counts and the finish's, added up."""
        total = RunCounts()
        for found in (*(c.get("counts") for _, c in self.chunks), self.finish_counts):
            if found:
                total.add(_counts(found))
        return total


def _counts(data: Mapping[str, Any]) -> RunCounts:
    known = set(RunCounts.__dataclass_fields__)
    return RunCounts(**{k: v for k, v in data.items() if k in known})


def progress_counts(progress: Progress, final: RunCounts | None = None) -> dict[str, Any]:
    """What a chunk keeps in its row: its progress, and its counts once it ended."""
    out: dict[str, Any] = {
        "records": progress.records,
        "total": progress.total,
        "api_calls": progress.api_calls,
        "quarantined": progress.quarantined,
    }
    if final is not None:
        out["counts"] = final.to_dict()
    return out
