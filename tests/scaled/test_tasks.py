"""The scaled runtime's tasks, run in this process against a real PostgreSQL: dispatch in one
transaction with a savepoint per job, ticks holding the pipeline's lock and lease, the reaper
failing a dead worker's jobs and freeing what they held, cleanup."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from crmbridge.app import CrmBridge
from crmbridge.runtime.scaled.jobs import BACKFILL_CHUNK, TICK, chunk_job, tick_job
from crmbridge.runtime.scaled.ledger import Ledger, db_now, overlaps
from crmbridge.runtime.scaled.tasks import Tasks
from crmbridge.store import tables as t
from crmbridge.testing import memory

from .conftest import qualifying

pytestmark = pytest.mark.postgres


def jobs(tasks: Tasks, **where: Any) -> list[dict[str, Any]]:
    """procrastinate's jobs, oldest first (``where``: column = value)."""
    clause = " AND ".join(f"{k} = :{k}" for k in where) or "true"
    with tasks.store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, task_name, status, lock, queueing_lock, args, worker_id FROM "
                f"procrastinate_jobs WHERE {clause} ORDER BY id"
            ),
            where,
        )
        return [dict(r._mapping) for r in rows]


def due_now(tasks: Tasks, *pipelines: str) -> None:
    with tasks.store.transaction() as conn:
        conn.execute(
            update(t.scaled_pipelines)
            .where(t.scaled_pipelines.c.pipeline.in_(pipelines))
            .values(due_at=datetime(2000, 1, 1, tzinfo=UTC))
        )


def take(tasks: Tasks, job_id: int, worker_id: int) -> None:
    """Mark a job ``doing`` by ``worker_id``, as a worker fetching it does."""
    with tasks.store.transaction() as conn:
        conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing', worker_id = :w WHERE id = :id"),
            {"w": worker_id, "id": job_id},
        )


def register_worker(tasks: Tasks, heartbeat_age: float = 0.0) -> int:
    """A worker row, its heartbeat ``heartbeat_age`` seconds old."""
    with tasks.store.transaction() as conn:
        worker_id = int(
            conn.execute(
                text("SELECT worker_id FROM procrastinate_register_worker_v1()")
            ).scalar_one()
        )
        conn.execute(
            text(
                "UPDATE procrastinate_workers SET last_heartbeat = now() - make_interval(secs => "
                ":age) WHERE id = :id"
            ),
            {"age": heartbeat_age, "id": worker_id},
        )
    return worker_id


def test_dispatch_queues_each_due_pipeline_once_with_its_locks(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    tasks = tasks_of(memory_env("alpha", "beta", "gamma"))
    assert tasks.dispatch() == "queued 3 tick(s): alpha, beta, gamma"
    queued = jobs(tasks, task_name=TICK)
    assert [(j["args"]["pipeline"], j["lock"], j["queueing_lock"]) for j in queued] == [
        ("alpha", "pipeline:alpha", "pipeline:alpha"),
        ("beta", "pipeline:beta", "pipeline:beta"),
        ("gamma", "pipeline:gamma", "pipeline:gamma"),
    ]
    assert {j["status"] for j in queued} == {"todo"}
    # Not due again until its tick runs (or a lease's length passed).
    assert tasks.dispatch() == "queued 0 tick(s)"


def test_a_tick_already_waiting_is_left_alone_and_the_rest_are_queued(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    tasks = tasks_of(memory_env("alpha", "beta"))
    tasks.dispatch()
    due_now(tasks, "alpha", "beta")
    # alpha's tick still waits (queueing lock): its submission rolls back to its savepoint only.
    [alpha] = jobs(tasks, task_name=TICK, queueing_lock="pipeline:alpha")
    [beta] = jobs(tasks, task_name=TICK, queueing_lock="pipeline:beta")
    take(tasks, beta["id"], register_worker(tasks))
    assert tasks.dispatch() == "queued 1 tick(s): beta"
    assert len(jobs(tasks, task_name=TICK, queueing_lock="pipeline:alpha")) == 1
    assert [j["status"] for j in jobs(tasks, queueing_lock="pipeline:beta")] == ["doing", "todo"]
    with tasks.store.transaction() as conn:
        assert tasks.queue.submit(conn, tick_job("alpha")) is None
        assert tasks.queue.submit(conn, chunk_job("bfs-x", 0, "bf-x")) is not None
    assert alpha["status"] == "todo"


def test_a_tick_runs_a_cycle_under_a_job_owned_lease_and_logs_its_start_and_end(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    bridge = memory_env("alpha", poll=30)
    memory.memory_world("alpha").marketing_add(**qualifying("ada@navy.example"))
    tasks = tasks_of(bridge)
    assert tasks.tick(41, 7, "alpha") == "alpha: ok"
    assert tasks.tick(42, 8, "alpha") == "alpha: ok"
    [first, second] = Ledger(tasks.store).ticks("alpha")
    assert (first.job_id, first.worker_id, first.status, first.kind) == (41, 7, "ok", "tick")
    assert first.owner == f"{tasks.host_pid}:job-41"
    assert first.finished_at is not None
    assert first.finished_at <= second.started_at
    assert overlaps([first, second]) == []
    lease = tasks.store.lease("alpha")
    assert lease is not None
    assert (lease.owner, lease.fence) == (f"{tasks.host_pid}:job-42", 2)
    assert lease.expires_at.year == 1970, "a tick gives its lease up when it ends"
    with tasks.store.engine.connect() as conn:
        fences = {r.fence for r in conn.execute(t.cursors.select())}
        now = db_now(conn)
    assert max(fences) == 2, "the second tick moved cursors under its own fence"
    row = Ledger(tasks.store).schedule()["alpha"]
    assert (row["last_status"], row["last_job_id"]) == ("ok", 42)
    assert timedelta(seconds=25) < row["due_at"] - now <= timedelta(seconds=30)
    assert memory.memory_world("alpha").sales_count() == 1


def test_a_paused_pipeline_is_due_when_its_quota_resets(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    bridge = memory_env("alpha", poll=1)
    world = memory.memory_world("alpha")
    world.marketing_add(**qualifying("ada@navy.example"))
    world.quota = (100, 100)
    tasks = tasks_of(bridge)
    assert tasks.tick(1, None, "alpha") == "alpha: paused"
    row = Ledger(tasks.store).schedule()["alpha"]
    with tasks.store.engine.connect() as conn:
        wait = row["due_at"] - db_now(conn)
    assert row["last_status"] == "paused"
    assert wait > timedelta(seconds=3), "paused for longer than the poll interval"
    assert tasks.dispatch() == "queued 0 tick(s)"


def test_a_removed_pipeline_ticks_as_gone(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    tasks = tasks_of(memory_env("alpha"))
    assert tasks.tick(5, None, "omega") == "omega: gone"
    assert [tick.status for tick in Ledger(tasks.store).ticks("omega")] == ["gone"]


def test_the_reaper_fails_a_dead_workers_tick_and_frees_its_pipeline(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    tasks = tasks_of(memory_env("alpha", "beta"))
    tasks.dispatch()
    [alpha, beta] = jobs(tasks, task_name=TICK)
    dead, alive = register_worker(tasks, heartbeat_age=60), register_worker(tasks)
    take(tasks, alpha["id"], dead)
    take(tasks, beta["id"], alive)
    owner = f"deadhost:1:job-{alpha['id']}"
    tick_id = Ledger(tasks.store).started(
        pipeline="alpha", kind="tick", job_id=alpha["id"], worker_id=dead, owner=owner, hold=None
    )
    tasks.store.acquire_lease("alpha", owner, timedelta(hours=1), datetime.now(UTC))

    assert tasks.reap() == f"reaped crmbridge.tick[{alpha['id']}]"

    [failed] = jobs(tasks, id=alpha["id"])
    assert failed["status"] == "failed", "failed, never put back in the queue"
    assert jobs(tasks, id=beta["id"])[0]["status"] == "doing", "a live worker's job is left alone"
    lease = tasks.store.lease("alpha")
    assert lease is not None
    assert lease.expires_at <= datetime.now(UTC)
    [tick] = Ledger(tasks.store).ticks("alpha")
    assert (tick.id, tick.status) == (tick_id, "reaped")
    with tasks.store.engine.connect() as conn:
        workers = {r[0] for r in conn.execute(text("SELECT id FROM procrastinate_workers"))}
    assert workers == {alive}, "the dead worker is forgotten"
    assert tasks.dispatch() == "queued 1 tick(s): alpha"
    # The next holder takes the lease at once, with a new fence.
    taken = tasks.store.acquire_lease(
        "alpha", "next:2:job-9", timedelta(minutes=1), datetime.now(UTC)
    )
    assert taken.fence == lease.fence + 1
    assert tasks.reap() == "no dead worker"


def test_the_reaper_queues_a_dead_workers_backfill_chunk_again(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    from crmbridge.runtime.scaled.backfill import make_plan

    tasks = tasks_of(memory_env("alpha"))
    now = datetime.now(UTC)
    plan = tasks.backfills.submit(make_plan("alpha", now - timedelta(days=2), now, 2, now), now)
    first = jobs(tasks, task_name=BACKFILL_CHUNK)[0]
    take(tasks, first["id"], register_worker(tasks, heartbeat_age=60))
    tasks.reap()
    again = [j for j in jobs(tasks, task_name=BACKFILL_CHUNK) if j["args"] == first["args"]]
    assert [j["status"] for j in again] == ["failed", "todo"]
    assert again[1]["lock"] == f"backfill:{plan.chunks[0].id}"


def test_cleanup_forgets_old_finished_jobs_and_ticks(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    tasks = tasks_of(memory_env("alpha"))
    tasks.dispatch()
    [job] = jobs(tasks, task_name=TICK)
    tasks.tick(job["id"], None, "alpha")
    with tasks.store.transaction() as conn:
        conn.execute(text("UPDATE procrastinate_jobs SET status = 'succeeded' WHERE id = :id"),
                     {"id": job["id"]})  # fmt: skip
        conn.execute(text("UPDATE procrastinate_events SET at = now() - interval '2 days'"))
        conn.execute(
            update(t.scaled_ticks).values(finished_at=datetime.now(UTC) - timedelta(days=2))
        )
    assert tasks.cleanup() == "forgot jobs and 1 tick(s) older than 24 h"
    assert jobs(tasks) == []
