"""``crmbridge status`` on the scaled runtime: the pipelines (last run, lag, who holds them, what
waits), the locks held, jobs that are stuck or failed, the workers alive, backfills under way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, text

from crmbridge.app import CrmBridge
from crmbridge.sync import load_pipelines

from .backfill import Backfills
from .config import scaled_settings
from .jobs import JobQueue
from .ledger import Ledger, db_now
from .schema import applied_version

FAILED_SHOWN = 20


def scaled_status(bridge: CrmBridge) -> dict[str, Any]:
    """Everything ``crmbridge status`` shows, as JSON-able data."""
    scaled = scaled_settings(bridge.settings)
    store = bridge.store
    schedule = Ledger(store).schedule()
    with store.engine.connect() as conn:
        now = db_now(conn)
        timeout = scaled.worker_timeout_seconds
        jobs = _rows(
            conn,
            "SELECT j.id, j.task_name, j.status, j.lock, j.queueing_lock, j.args, j.worker_id, "
            "(SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS at "
            "FROM procrastinate_jobs j WHERE j.status IN ('todo', 'doing') ORDER BY j.id",
        )
        workers = _rows(
            conn,
            "SELECT w.id, w.last_heartbeat, EXTRACT(EPOCH FROM now() - w.last_heartbeat) AS age, "
            "(SELECT t.owner FROM scaled_ticks t WHERE t.worker_id = w.id ORDER BY t.id DESC "
            "LIMIT 1) AS last_owner FROM procrastinate_workers w ORDER BY w.id",
        )
        failed = _rows(
            conn,
            "SELECT j.id, j.task_name, j.lock, j.args, j.worker_id, "
            "(SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) AS at "
            f"FROM procrastinate_jobs j WHERE j.status = 'failed' ORDER BY j.id DESC "
            f"LIMIT {FAILED_SHOWN}",
        )
        plans = _rows(
            conn,
            "SELECT id FROM backfills WHERE id LIKE 'bfs-%' AND status <> 'done' "
            "ORDER BY started_at",
        )
        version = applied_version(conn)
    alive = {w["id"] for w in workers if float(w["age"]) <= timeout}
    for w in workers:
        w["alive"] = w["id"] in alive
        w["jobs"] = [j["id"] for j in jobs if j["status"] == "doing" and j["worker_id"] == w["id"]]
    doing = [j for j in jobs if j["status"] == "doing"]
    stuck = [j for j in doing if j["worker_id"] not in alive]
    pipelines = [
        _pipeline(p.name, p.marketing, p.sales, bridge, schedule.get(p.name), jobs, now)
        for p in load_pipelines(bridge.settings)
    ]
    return {
        "runtime": "procrastinate",
        "procrastinate_schema": version,
        "now": now,
        "pipelines": pipelines,
        "locks": [_lock(j) for j in doing if j["lock"]],
        "waiting": sum(1 for j in jobs if j["status"] == "todo"),
        "stuck": stuck,
        "failed": failed,
        "workers": workers,
        "backfills": [_plan(Backfills(store, JobQueue()), p["id"]) for p in plans],
        "worker_timeout_seconds": timeout,
    }


def _lock(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "lock": job["lock"],
        "job": job["id"],
        "task": job["task_name"],
        "worker": job["worker_id"],
        "since": job["at"],
    }


def _rows(conn: Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(text(sql))]


def _pipeline(
    name: str,
    marketing: str,
    sales: str,
    bridge: CrmBridge,
    schedule: Mapping[str, Any] | None,
    jobs: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    store = bridge.store
    runs = store.runs(name, limit=1)
    lease = store.lease(name)
    lock = f"pipeline:{name}"
    last_ok = schedule.get("last_ok_at") if schedule else None
    return {
        "pipeline": name,
        "marketing": marketing,
        "sales": sales,
        "last_run": runs[0].started_at if runs else None,
        "last_status": runs[0].status if runs else None,
        "lag_seconds": (now - last_ok).total_seconds() if last_ok else None,
        "next_due": schedule.get("due_at") if schedule else None,
        "held_by": lease.owner if lease is not None and lease.expires_at > now else None,
        "running": [j["id"] for j in jobs if j["status"] == "doing" and j["lock"] == lock],
        "waiting": [j["id"] for j in jobs if j["status"] == "todo" and j["lock"] == lock],
        "note": schedule.get("note") if schedule else None,
        "quarantined": len(store.quarantined(pipeline=name)),
    }


def _plan(backfills: Backfills, plan_id: str) -> dict[str, Any]:
    plan = backfills.plan(plan_id)
    assert plan is not None
    state = backfills.state(plan)
    progress = state.progress()
    return {
        "backfill": plan.id,
        "pipeline": plan.pipeline,
        "chunks": len(plan.chunks),
        "chunks_done": sum(1 for status, _ in state.chunks if status == "done"),
        "chunks_failed": state.failed,
        "records": progress.records,
        "total": progress.total,
    }


def _t(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render_status(console: Console, report: Mapping[str, Any]) -> None:
    """Print the report as tables."""
    out = console.print
    pipelines = Table(
        "pipeline", "marketing → sales", "last run", "status", "lag", "next due", "held by",
        "job", "quarantined", title="pipelines", title_justify="left",
    )  # fmt: skip
    for p in report["pipelines"]:
        job = ", ".join(
            [f"#{i} running" for i in p["running"]] + [f"#{i} waiting" for i in p["waiting"]]
        )
        pipelines.add_row(
            escape(p["pipeline"]),
            f"{p['marketing']} → {p['sales']}",
            _t(p["last_run"]),
            p["last_status"] or "-",
            _age(p["lag_seconds"]),
            _t(p["next_due"]),
            escape(p["held_by"] or "-"),
            job or "-",
            str(p["quarantined"]),
        )
    out(pipelines)
    workers = Table("worker", "host:pid", "last heartbeat", "state", "jobs", title="workers",
                    title_justify="left")  # fmt: skip
    for w in report["workers"]:
        host = (w["last_owner"] or "").rsplit(":job-", 1)[0] or "-"
        state = "alive" if w["alive"] else f"no heartbeat for {_age(float(w['age']))}"
        workers.add_row(
            str(w["id"]),
            escape(host),
            _t(w["last_heartbeat"]),
            state,
            ", ".join(f"#{j}" for j in w["jobs"]) or "-",
        )
    out(workers)
    alive = sum(1 for w in report["workers"] if w["alive"])
    out(f"{alive} worker(s) alive, {report['waiting']} job(s) waiting", highlight=False)
    if report["locks"]:
        locks = Table("lock", "job", "task", "worker", "since", title="locks held",
                      title_justify="left")  # fmt: skip
        for lock in report["locks"]:
            locks.add_row(
                escape(lock["lock"]),
                f"#{lock['job']}",
                lock["task"],
                str(lock["worker"] or "-"),
                _t(lock["since"]),
            )
        out(locks)
    if report["stuck"]:
        out(
            f"[bold red]{len(report['stuck'])} stuck job(s)[/] (their worker stopped sending "
            f"heartbeats; reaped after {report['worker_timeout_seconds']:g} s): "
            + ", ".join(f"{j['task_name']} #{j['id']}" for j in report["stuck"]),
            highlight=False,
        )
    if report["failed"]:
        failed = Table("job", "task", "arguments", "when", title="failed jobs",
                       title_justify="left")  # fmt: skip
        for j in report["failed"]:
            args = ", ".join(f"{k}={v}" for k, v in (j["args"] or {}).items())
            failed.add_row(f"#{j['id']}", j["task_name"], escape(args), _t(j["at"]))
        out(failed)
    for b in report["backfills"]:
        total = f" of {b['total']:,}" if b["total"] is not None else ""
        out(
            f"backfill {b['backfill']} ({escape(b['pipeline'])}): {b['chunks_done']}/"
            f"{b['chunks']} chunk(s) in, {b['records']:,}{total} record(s)"
            + (f", chunk(s) {b['chunks_failed']} failed" if b["chunks_failed"] else ""),
            highlight=False,
        )
