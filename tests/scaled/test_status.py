"""``crmbridge status`` on the scaled runtime: pipelines with their last run and lag, the locks
held, stuck and failed jobs, the workers alive and their last heartbeat."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from rich.console import Console
from sqlalchemy import text
from typer.testing import CliRunner

from crmbridge.app import CrmBridge
from crmbridge.cli import app, inspect
from crmbridge.runtime.scaled.tasks import Tasks

from .test_tasks import jobs, register_worker, take

pytestmark = pytest.mark.postgres


@pytest.fixture
def busy(
    memory_env: Callable[..., CrmBridge],
    tasks_of: Callable[[CrmBridge], Tasks],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, int]:
    """Three pipelines: alpha ran and runs again on a live worker, beta's worker died mid-tick,
    gamma's last tick failed."""
    tasks = tasks_of(memory_env("alpha", "beta", "gamma", CRMBRIDGE_LOAD_PLUGINS=""))
    tasks.dispatch()
    by_pipeline = {j["args"]["pipeline"]: j["id"] for j in jobs(tasks, task_name="crmbridge.tick")}
    tasks.tick(by_pipeline["alpha"], None, "alpha")
    alive, dead = register_worker(tasks), register_worker(tasks, heartbeat_age=90)
    take(tasks, by_pipeline["alpha"], alive)
    take(tasks, by_pipeline["beta"], dead)
    tasks.ledger.started(
        pipeline="alpha", kind="tick", job_id=by_pipeline["alpha"], worker_id=alive,
        owner=f"app-1:4242:job-{by_pipeline['alpha']}", hold=None,
    )  # fmt: skip
    with tasks.store.transaction() as conn:
        conn.execute(
            text("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = :id"),
            {"id": by_pipeline["gamma"]},
        )
    monkeypatch.setattr(inspect, "console", Console(width=250))
    return {"alive": alive, "dead": dead, **by_pipeline}


def test_status_shows_pipelines_locks_stuck_and_failed_jobs_and_workers(
    busy: dict[str, int],
) -> None:
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    out = result.output
    for name in ("alpha", "beta", "gamma"):
        assert f"│ {name} " in out
    assert "memory_marketing → memory_sales" in out
    assert f"#{busy['alpha']} running" in out
    [live] = [line for line in out.splitlines() if "app-1:4242" in line]
    assert "alive" in live
    assert f"#{busy['alpha']}" in live
    [gone] = [line for line in out.splitlines() if "no heartbeat for" in line]
    assert f"#{busy['beta']}" in gone
    assert "no heartbeat for 90 s" in out
    assert "1 worker(s) alive, 0 job(s) waiting" in out
    assert "locks held" in out
    assert "pipeline:beta" in out
    assert f"1 stuck job(s) (their worker stopped sending heartbeats; reaped after 3 s): " \
        f"crmbridge.tick #{busy['beta']}" in out  # fmt: skip
    assert "failed jobs" in out
    assert "pipeline=gamma" in out


def test_status_as_json(busy: dict[str, int]) -> None:
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    pipelines = {p["pipeline"]: p for p in report["pipelines"]}
    assert pipelines["alpha"]["last_status"] == "ok"
    assert pipelines["alpha"]["lag_seconds"] >= 0
    assert pipelines["alpha"]["running"] == [busy["alpha"]]
    assert pipelines["beta"]["last_run"] is None
    assert {w["id"]: w["alive"] for w in report["workers"]} == {
        busy["alive"]: True,
        busy["dead"]: False,
    }
    assert [j["id"] for j in report["stuck"]] == [busy["beta"]]
    assert [j["id"] for j in report["failed"]] == [busy["gamma"]]
    assert {lock["lock"] for lock in report["locks"]} == {"pipeline:alpha", "pipeline:beta"}
    assert report["procrastinate_schema"]
