"""Backfills split across workers end exactly as one backfill does.

In this process: the chunks of a split backfill run at once in threads, the same emails met in two
chunks, and the end state equals the embedded runtime's backfill of the same data. With worker
processes: an 8,000-lead backfill split across three workers ends as with one
(``benchmarks/scaled_backfill.py`` runs 200,000 with 1, 2 and 3 workers).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from crmbridge.app import CrmBridge
from crmbridge.runtime.scaled.backfill import make_plan
from crmbridge.runtime.scaled.ledger import Ledger
from crmbridge.runtime.scaled.tasks import Tasks
from crmbridge.settings import load_settings
from crmbridge.sync import PipelineRunner, load_pipelines
from crmbridge.sync.backfill import run_backfill
from crmbridge.testing import memory
from tests.conftest import fresh_schema_url

from .conftest import qualifying
from .fleet import ROOT, Fleet, Workers, base_env, differences, environment, store_state

pytestmark = pytest.mark.postgres


def fill(world: memory.MemoryWorld, count: int) -> None:
    """``count`` contacts an hour apart, then the first tenth again under new records (the same
    person imported twice, a day later): their emails fall in two chunks."""
    for i in range(count):
        world.advance(3600)
        world.marketing_add(**qualifying(f"lead{i}@x{i % 7}.example", company=f"Co {i}"))
    for i in range(0, count, 10):
        world.advance(3600)
        world.marketing_add(**qualifying(f"lead{i}@x{i % 7}.example", company=f"Co {i} (2nd)"))


def worlds_state(name: str) -> dict[str, Any]:
    world = memory.memory_world(name)
    return {
        "sales": sorted(
            (r.values.get("Email"), r.values.get("Company"), r.values.get("Status"))
            for r in world.sales.records.values()
        ),
        "marketing": sorted(
            (r.values.get("email"), r.values.get("company"), r.values.get("crmbridge_stage"))
            for r in world.marketing.records.values()
        ),
    }


def by_email(state: dict[str, Any], pipeline: str) -> dict[str, Any]:
    found = dict(state[pipeline])
    found.pop("quarantine", None)
    return found


def test_chunks_at_once_with_the_same_emails_end_as_one_backfill(
    memory_env: Callable[..., CrmBridge],
    tasks_of: Callable[[CrmBridge], Tasks],
    pg_url: str,
    tmp_path: Path,
) -> None:
    bridge = memory_env("split", "whole")
    start = memory.memory_world("split").now()
    for name in ("split", "whole"):
        memory.memory_world(name).offset = timedelta()
        fill(memory.memory_world(name), 120)
    until = start + timedelta(hours=200)
    tasks = tasks_of(bridge)
    plan = tasks.backfills.submit(make_plan("split", start, until, 4, start), start)
    errors: list[BaseException] = []

    def chunk(index: int) -> None:
        try:
            tasks.backfill_chunk(1000 + index, plan.id, index)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=chunk, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert tasks.backfills.all_done(plan)
    assert tasks.backfill_finish(2000, None, plan.id).startswith(f"{plan.id} finished: ")
    assert tasks.backfills.state(plan).done
    assert tasks.backfill_finish(2001, None, plan.id) == f"{plan.id} was finished already"
    [finish] = Ledger(tasks.store).ticks("split")
    assert finish.kind == "finish"

    # The same data, backfilled whole by the embedded runtime in one process.
    whole = next(p for p in load_pipelines(bridge.settings) if p.name == "whole")
    runner = PipelineRunner(bridge, whole)
    try:
        result = run_backfill(runner, start, until)
    finally:
        runner.close()
    assert result.status == "ok", result.error
    state = store_state(pg_url)
    assert differences(by_email(state, "split"), by_email(state, "whole")) == []
    assert len(state["split"]["leads"]) == 120
    assert differences(worlds_state("split"), worlds_state("whole")) == []
    assert result.counts.handed_off == tasks.backfills.state(plan).counts().handed_off == 120


def test_a_chunk_stopped_by_a_shutdown_is_queued_again(
    memory_env: Callable[..., CrmBridge], tasks_of: Callable[[CrmBridge], Tasks]
) -> None:
    bridge = memory_env("alpha")
    start = memory.memory_world("alpha").now()
    fill(memory.memory_world("alpha"), 20)
    tasks = tasks_of(bridge)
    plan = tasks.backfills.submit(make_plan("alpha", start, None, 1, start), start)
    tasks.stop.set()
    assert tasks.backfill_chunk(7, plan.id, 0) == f"chunk 0 of {plan.id} stopped; queued again"
    tasks.stop.clear()
    with tasks.store.engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'crmbridge.backfill_chunk' AND status = 'todo'"
            )
        ).scalar_one()
    assert waiting == 1, "a job waiting already absorbs the new one (its queueing lock)"
    assert tasks.backfill_chunk(8, plan.id, 0).endswith("in (the last)")


# -- with worker processes -----------------------------------------------------------------------


@pytest.fixture
def second_pg_url(_postgres_server: Engine | str) -> Iterator[str]:
    """Another fresh schema on the test server (the one-worker run's store)."""
    yield from fresh_schema_url(_postgres_server)


LEADS = 8_000
LIFTED = {
    "CRMBRIDGE_HUBSPOT__SEARCH_PER_SECOND": "1000",
    "CRMBRIDGE_HUBSPOT__REQUESTS_PER_10S": "100000",
    "CRMBRIDGE_SCALED__BACKFILL_CHUNKS": "12",
    "CRMBRIDGE_SCALED__CONCURRENCY": "1",
    "CRMBRIDGE_LOG_LEVEL": "WARNING",
}


def contacts(count: int) -> list[dict[str, Any]]:
    """Contacts of which one in twenty qualifies (the rest stay leads): mostly intake."""
    return [
        qualifying(f"c{i}@co{i % 113}.example", company=f"Co {i % 113}")
        if i % 20 == 0
        else {"email": f"c{i}@co{i % 113}.example", "lastname": f"C{i}", "lifecyclestage": "lead"}
        for i in range(count)
    ]


def backfill_with(workers: int, url: str, folder: Path, logs: Path) -> dict[str, Any]:
    """A fleet of one pipeline with the contacts spread over a month, backfilled by ``workers``
    workers; the end state."""
    fleet = Fleet(1, folder, hubspot_options={"rate_limits": False})
    fleet.start()
    crew: Workers | None = None
    try:
        rows, end = contacts(LEADS), datetime.now(UTC) - timedelta(hours=1)
        for batch, first in enumerate(range(0, LEADS, 250)):
            at = end - timedelta(days=30) + timedelta(hours=22 * batch)
            fleet.pipelines[0].hubspot.control.control(
                "seed_contacts", contacts=rows[first : first + 250], modified_at=at.isoformat()
            )
        env = base_env(url, folder, **LIFTED)
        fleet.setup(env)
        with environment(env):
            tasks_bridge = CrmBridge(load_settings())
            # The pipeline's own ticks would read every contact on their first cycle.
            with tasks_bridge.store.transaction() as conn:
                Ledger(tasks_bridge.store).set_due(conn, "p00", datetime(2100, 1, 1, tzinfo=UTC))
            tasks_bridge.store.close()
        crew = Workers(env, logs)
        crew.start(workers)
        since = (end - timedelta(days=31)).date().isoformat()
        done = subprocess.run(
            [sys.executable, "-m", "crmbridge.cli", "backfill", "--since", since],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr + crew.output()[-3000:]
        assert "backfill ok: pulled " in " ".join(done.stdout.split())
        crew.stop()
        return {"store": store_state(url), "systems": fleet.state()}
    finally:
        if crew is not None:
            crew.stop()
        fleet.stop()


@pytest.mark.slow
@pytest.mark.sandbox
def test_a_backfill_split_across_three_workers_ends_as_with_one(
    pg_url: str, second_pg_url: str, tmp_path: Path
) -> None:
    three = backfill_with(3, pg_url, tmp_path / "three", tmp_path / "logs-3")
    one = backfill_with(1, second_pg_url, tmp_path / "one", tmp_path / "logs-1")
    assert differences(three, one) == []
    assert len(three["store"]["p00"]["leads"]) == LEADS
    assert sum(1 for h in three["store"]["p00"]["handoffs"].values()) == LEADS // 20
