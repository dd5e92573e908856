"""The daemon as people run it: a `crmbridge run` process, stopped by SIGTERM, reloaded by SIGHUP,
two of them on one store; and its health and metrics endpoints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from crmbridge.app import CrmBridge
from crmbridge.runtime import Daemon, Metrics, MetricsServer
from crmbridge.store import open_store
from crmbridge.store import tables as t
from crmbridge.testing import memory

ROOT = Path(__file__).resolve().parents[2]
SEEDED_PLUGIN = """
from crmbridge.testing import memory
from crmbridge.testing.memory import crm_register_connectors  # noqa: F401  (the hook)

world = memory.memory_world()
for i in range({count}):
    world.marketing_add(
        email=f"lead{{i}}@example-{{i % 9}}.com", lastname=f"L{{i}}", company=f"Co {{i}}",
        jobtitle="VP of Sales", industry="Software", numemployees="500-1000", country="US",
        lead_source="webinar", hs_analytics_num_page_views=30, hs_email_click=5,
        lifecyclestage="lead",
    )
"""


@pytest.fixture
def daemon_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Env for a `crmbridge run` subprocess on memory connectors seeded with ``count`` leads."""

    def make(count: int = 50, **extra: str) -> dict[str, str]:
        plugin = tmp_path / f"seeded_{count}.py"
        plugin.write_text(SEEDED_PLUGIN.format(count=count))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBRIDGE_")}
        env.update(
            CRMBRIDGE_DATABASE_URL=f"sqlite:///{tmp_path / 'store.sqlite3'}",
            CRMBRIDGE_DEFINITION=str(tmp_path / "lead-definition.toml"),
            CRMBRIDGE_PIPELINE__MARKETING="memory_marketing",
            CRMBRIDGE_PIPELINE__SALES="memory_sales",
            CRMBRIDGE_PIPELINE__POLL_SECONDS="0.3",
            CRMBRIDGE_PLUGIN_FILE=str(plugin),
            CRMBRIDGE_LOAD_PLUGINS="",
            CRMBRIDGE_LEASE_SECONDS="30",
            CRMBRIDGE_LOG_LEVEL="INFO",
            **extra,
        )
        if not Path(env["CRMBRIDGE_DEFINITION"]).exists():
            shutil.copy(ROOT / "configs" / "lead-definition.toml", env["CRMBRIDGE_DEFINITION"])
        return env

    return make


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crmbridge.cli", "run", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def runs(url: str) -> list[tuple[str, str]]:
    store = open_store(url)
    try:
        with store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(t.runs.c.status, t.runs.c.kind))]
    finally:
        store.close()


@pytest.mark.slow
def test_sigterm_stops_cleanly_between_batches(daemon_env: Callable[..., dict[str, str]]) -> None:
    env = daemon_env(count=400)
    proc = start(env)
    url = env["CRMBRIDGE_DATABASE_URL"]
    wait_for(lambda: Path(url.removeprefix("sqlite:///")).exists() and bool(runs(url)))
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "SIGTERM received: stopping between batches" in output
    assert "crmbridge daemon stopped cleanly" in output
    statuses = {status for status, _kind in runs(url)}
    assert statuses <= {"ok", "stopped"}, statuses
    store = open_store(url)
    lease = store.lease("default")
    assert lease is not None
    assert lease.expires_at.year == 1970, "the lease was not released on the way out"


@pytest.mark.slow
def test_sighup_refuses_a_broken_definition_and_keeps_the_old_one(
    daemon_env: Callable[..., dict[str, str]],
) -> None:
    env = daemon_env(count=5)
    definition = Path(env["CRMBRIDGE_DEFINITION"])
    proc = start(env)
    url = env["CRMBRIDGE_DATABASE_URL"]
    wait_for(lambda: Path(url.removeprefix("sqlite:///")).exists() and bool(runs(url)))
    definition.write_text(
        definition.read_text().replace('stage = "mql"\nsla_hours', 'stage = "mq1"\nsla_hours')
    )
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    definition.write_text(
        definition.read_text()
        .replace('version = "2026.11.1"', 'version = "2026.12.0"')
        .replace('stage = "mq1"', 'stage = "mql"')
    )
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert "the lead definition" in output
    assert "was not reloaded; version 2026.11.1 stays in force" in output
    assert "[handoff.stage] refers to stage 'mq1'" in output
    assert "lead definition reloaded: version 2026.12.0" in output


@pytest.mark.slow
def test_two_daemons_on_one_store_one_holds_the_pipeline(
    daemon_env: Callable[..., dict[str, str]],
) -> None:
    env = daemon_env(count=20)
    first = start(env)
    url = env["CRMBRIDGE_DATABASE_URL"]
    wait_for(lambda: Path(url.removeprefix("sqlite:///")).exists() and bool(runs(url)))
    second = start(env, "--cycles", "3")
    second_out, _ = second.communicate(timeout=60)
    first.send_signal(signal.SIGTERM)
    first_out, _ = first.communicate(timeout=60)
    assert "pipeline 'default' is held by" in second_out
    store = open_store(url)
    with store.engine.connect() as conn:
        fences = {r.fence for r in conn.execute(select(t.cursors))}
        owners = {r.status for r in conn.execute(select(t.runs))}
    assert fences == {1}, "only the first daemon's lease ever moved a cursor"
    assert "ok" in owners
    assert first.returncode == 0, first_out


@pytest.fixture
def in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.chdir(ROOT)
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__MARKETING", "memory_marketing")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__SALES", "memory_sales")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__POLL_SECONDS", "0.2")
    world = memory.memory_world(fresh=True)
    world.marketing_add(
        email="metrics@example.com", lastname="M", company="Metrics Inc", jobtitle="CTO",
        industry="Software", numemployees="500-1000", country="US", lead_source="webinar",
        hs_analytics_num_page_views=30, hs_email_click=5, lifecyclestage="lead",
    )  # fmt: skip
    bridge = CrmBridge.from_env_files(entrypoints=False, extra_plugins=[("memory", memory)])
    return Daemon(bridge, max_cycles=3)


def test_health_and_metrics_endpoints(in_process: Daemon) -> None:
    server = MetricsServer(in_process.metrics, "127.0.0.1", 0).start()
    try:
        in_process.run()
        base = f"http://127.0.0.1:{server.port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{base}/healthz", timeout=5) as resp:
            health = json.loads(resp.read())
        with opener.open(f"{base}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
    finally:
        server.stop()
    assert health["status"] == "ok"
    assert health["pipelines"]["default"]["status"] == "ok"
    assert 'crmbridge_leads_handed_off_total{pipeline="default"} 1' in metrics
    assert 'crmbridge_cycles_total{pipeline="default",status="ok"} 3' in metrics
    assert 'crmbridge_api_calls_total{pipeline="default",system="salesforce"}' in metrics
    assert "# TYPE crmbridge_cycle_duration_seconds gauge" in metrics


def test_healthz_fails_when_a_pipeline_stops_succeeding() -> None:
    metrics = Metrics()
    metrics.poll_seconds["stuck"] = 1.0
    from crmbridge.context import RunCounts

    metrics.record_cycle("stuck", "failed", RunCounts(errors=1), 0.1, error="boom")
    code, body = metrics.healthz()
    assert code == 503
    assert body["status"] == "failing"
    assert body["pipelines"]["stuck"]["error"] == "boom"
