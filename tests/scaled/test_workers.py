"""``crmbridge worker`` processes against sandbox emulators and PostgreSQL, as people run them:

* 3 workers, 20 pipelines (each its own HubSpot portal and Salesforce org), forms arriving while
  they run (about half a minute in all): no two ticks of one pipeline ever overlap, every pipeline
  advances, and the end state — crmbridge's store, every portal and every org — equals a
  single-process run's on the same inputs;
* a worker killed with SIGKILL in the middle of a tick: the reaper frees its pipeline within the
  configured time, another worker carries on, and nothing is lost or duplicated (sales' verdicts
  included).

``scripts/scaled_soak.py`` runs the first at full size (2 minutes).
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from crmbridge.runtime.scaled.ledger import Ledger, db_now, overlaps
from crmbridge.store import Store, open_store

from .fleet import (
    Fleet,
    Marketers,
    Submission,
    Workers,
    base_env,
    differences,
    drain,
    give_verdicts,
    run_single,
    store_state,
    submissions,
    submit,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.sandbox, pytest.mark.slow]

TIMEOUT, REAP, DISPATCH = 3.0, 1.0, 1.0
"""The test workers' settings (see ``base_env``): a dead worker's pipeline runs again within
about their sum plus one tick."""


FleetFactory = Callable[[int], Fleet]


@pytest.fixture
def fleets(tmp_path: Path) -> Iterator[FleetFactory]:
    """Fleets of pipelines: one for the workers, one seeded alike for the single process."""
    made: list[Fleet] = []

    def make(count: int) -> Fleet:
        fleet = Fleet(count, tmp_path / f"fleet-{len(made)}")
        made.append(fleet)
        return fleet.start()

    yield make
    for fleet in made:
        fleet.stop()


@pytest.fixture
def stores() -> Iterator[Callable[[str], Store]]:
    """Stores opened by a test, closed after it."""
    opened: list[Store] = []

    def make(url: str) -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def workers_of(tmp_path: Path) -> Iterator[list[Workers]]:
    crews: list[Workers] = []
    yield crews
    for crew in crews:
        crew.stop()


def single_process_reference(
    fleet: Fleet, tmp_path: Path, inputs: Sequence[Submission], *, verdicts: bool
) -> dict[str, Any]:
    """The same inputs through the embedded runtime, one pipeline after another: the end state."""
    env = base_env(
        f"sqlite:///{tmp_path / 'single.sqlite3'}", fleet.folder, CRMBRIDGE_RUNTIME="embedded"
    )
    fleet.setup(env)
    submit(fleet, inputs)
    run_single(env)
    if verdicts:
        give_verdicts(fleet)
        run_single(env)
    return {"store": store_state(env["CRMBRIDGE_DATABASE_URL"]), "systems": fleet.state()}


def test_three_workers_twenty_pipelines_no_overlap_all_advance_same_result(
    pg_url: str,
    tmp_path: Path,
    fleets: FleetFactory,
    workers_of: list[Workers],
    stores: Callable[[str], Store],
) -> None:
    scaled, single = fleets(20), fleets(20)
    for fleet in (scaled, single):
        fleet.seed_demo(20)
    env = base_env(pg_url, scaled.folder)
    scaled.setup(env)
    store = stores(pg_url)
    inputs = submissions(60, 20)
    crew = Workers(env, tmp_path / "logs")
    workers_of.append(crew)
    crew.start(3)
    marketers = Marketers(scaled, inputs, seconds=12.0)
    marketers.start()
    marketers.join()
    assert marketers.error is None, marketers.error
    names = [box.name for box in scaled.pipelines]
    drain(store, names)
    crew.stop()
    ticks = Ledger(store).ticks()

    assert overlaps(ticks) == [], "two ticks of one pipeline ran at once"
    done = Counter(t.pipeline for t in ticks if t.status == "ok")
    assert set(done) == set(names), f"pipelines that never advanced: {set(names) - set(done)}"
    assert min(done.values()) >= 3, done
    assert len({t.worker_id for t in ticks}) == 3, "all three workers took ticks"
    with store.engine.connect() as conn:
        moved = conn.execute(
            text("SELECT count(DISTINCT pipeline) FROM cursors WHERE stream = 'changes'")
        ).scalar_one()
    assert moved == 20, "every pipeline's marketing cursor moved"
    reference = single_process_reference(single, tmp_path, inputs, verdicts=False)
    found = {"store": store_state(pg_url), "systems": scaled.state()}
    assert differences(found, reference) == []


def running_tick(store: Store, pipeline: str) -> tuple[int, str] | None:
    """The job id and owner of ``pipeline``'s tick under way, if one is."""
    for tick in reversed(Ledger(store).ticks(pipeline)):
        if tick.finished_at is None:
            return tick.job_id, tick.owner
    return None


def test_a_worker_killed_mid_tick_is_reaped_and_nothing_is_lost_or_duplicated(
    pg_url: str,
    tmp_path: Path,
    fleets: FleetFactory,
    workers_of: list[Workers],
    stores: Callable[[str], Store],
) -> None:
    scaled, single = fleets(4), fleets(4)
    for fleet in (scaled, single):
        fleet.seed_demo(15)
    env = base_env(pg_url, scaled.folder)
    scaled.setup(env)
    store = stores(pg_url)
    inputs = submissions(24, 4)
    submit(scaled, inputs[:12])
    # Salesforce answers p00 slowly, so its ticks last seconds: long enough to die in one.
    scaled.pipelines[0].salesforce.control.set_latency(400)
    crew = Workers(env, tmp_path / "logs")
    workers_of.append(crew)
    crew.start(2)
    wait_for(lambda: running_tick(store, "p00") is not None, 30, "a tick of p00")
    job_id, owner = running_tick(store, "p00")  # type: ignore[misc]
    pid = int(owner.split(":")[1])
    victim = next(p for p in crew.procs if p.pid == pid)
    os.kill(pid, signal.SIGKILL)
    victim.wait(10)
    with store.engine.connect() as conn:
        killed_at: datetime = db_now(conn)

    def reaped() -> bool:
        return any(t.job_id == job_id and t.status == "reaped" for t in Ledger(store).ticks())

    wait_for(reaped, 30, "the reaper")
    freed = next(t for t in Ledger(store).ticks("p00") if t.job_id == job_id).finished_at
    assert freed is not None
    reap_delay = (freed - killed_at).total_seconds()
    assert reap_delay <= TIMEOUT + REAP + 2.0, f"reaped {reap_delay:.1f} s after the kill"
    with store.engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM procrastinate_jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    assert status == "failed"

    def next_tick_ok() -> bool:
        return any(t.status == "ok" and t.started_at > freed for t in Ledger(store).ticks("p00"))

    wait_for(next_tick_ok, 30, "p00's next tick on the other worker")
    restarted = min(t.started_at for t in Ledger(store).ticks("p00") if t.started_at > freed)
    assert (restarted - killed_at).total_seconds() <= TIMEOUT + REAP + DISPATCH + 3.0
    scaled.pipelines[0].salesforce.control.set_latency(0)
    submit(scaled, inputs[12:])
    names = [box.name for box in scaled.pipelines]
    drain(store, names)
    give_verdicts(scaled)
    drain(store, names)
    crew.stop()
    assert overlaps(Ledger(store).ticks()) == []
    lease = store.lease("p00")
    assert lease is not None
    assert lease.owner != owner, "the dead tick's lease was taken over"

    reference = single_process_reference(single, tmp_path, inputs, verdicts=True)
    found = {"store": store_state(pg_url), "systems": scaled.state()}
    assert differences(found, reference) == []
    made = Counter(
        lead["CrmBridge_Id__c"]
        for state in found["systems"].values()
        for leads in state["salesforce"].values()
        for lead in leads
        if lead["CrmBridge_Id__c"]
    )
    assert made, "leads were handed off"
    assert max(made.values()) == 1, "a lead crmbridge made in Salesforce twice"
    reaped_line = next(line for line in crew.output().splitlines() if "of dead workers" in line)
    assert f"crmbridge.tick[{job_id}]" in reaped_line


def test_a_worker_told_to_reload_says_how_and_keeps_working(
    pg_url: str, tmp_path: Path, fleets: FleetFactory, workers_of: list[Workers]
) -> None:
    fleet = fleets(1)
    env = base_env(pg_url, fleet.folder)
    fleet.setup(env)
    crew = Workers(env, tmp_path / "logs")
    workers_of.append(crew)
    [proc] = crew.start(1)
    wait_for(lambda: " started: queues " in crew.output(), 30, "the worker to start")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP received" in crew.output(), 10, "the worker's answer to SIGHUP")
    assert proc.poll() is None, "SIGHUP stopped the worker"
    assert "restart the workers" in crew.output()
    crew.stop()
    assert proc.returncode == 0, crew.output()
