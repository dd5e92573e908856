#!/usr/bin/env python3
"""Engine overhead: leads per second through capture, normalize, validate, match, score, qualify
and the store, with in-memory connectors (no HTTP), on one core.

    python benchmarks/engine.py [--leads 20000] [--page 1000] [--profile]

Prints a table and writes ``benchmarks/results/engine.json``. Two passes: new leads (inserts),
then the same leads changed again (matches and updates). Handoffs are left out of the timed part
(the sales side is measured by the backfill benchmark).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmbridge.app import CrmBridge  # noqa: E402
from crmbridge.connector import Cursor  # noqa: E402
from crmbridge.settings import load_settings  # noqa: E402
from crmbridge.sync import PipelineRunner  # noqa: E402
from crmbridge.sync.cycle import run_steps  # noqa: E402, F401
from crmbridge.sync.intake import intake_batch  # noqa: E402
from crmbridge.testing import memory  # noqa: E402
from crmbridge.testing.demodata import generate  # noqa: E402


def seed(world: memory.MemoryWorld, count: int) -> None:
    mapping = {
        "email": "email", "first_name": "firstname", "last_name": "lastname",
        "company": "company", "job_title": "jobtitle", "country": "country",
        "industry": "industry", "lead_source": "lead_source",
    }  # fmt: skip
    for lead in generate(count, seed=7):
        values = {native: getattr(lead, shared) for shared, native in mapping.items()}
        values.update(
            numemployees=str(lead.employees or ""),
            hs_analytics_num_page_views=lead.page_views,
            hs_email_click=lead.email_clicks,
            lifecyclestage="lead",
        )
        world.marketing_add(**values)


def timed_intake(runner: PipelineRunner, page: int) -> tuple[float, int]:
    """Take in every marketing change once; seconds and leads pulled."""
    from crmbridge.sync.courtesy import QuotaGuard
    from crmbridge.sync.cycle_context import Cycle

    marketing, sales = runner.connectors()
    marketing.settings = memory.MemorySettings(world="bench", page_size=page)  # type: ignore[misc]
    bridge = runner.bridge
    hour = timedelta(hours=1)
    lease = runner.store.acquire_lease(runner.name, runner.owner, hour, bridge.clock())
    cy = Cycle(
        pipeline=runner.name, store=runner.store, definition=bridge.definition, hooks=runner.hooks,
        ctx=bridge.context(pipeline=runner.name, store=runner.store), marketing=marketing,
        sales=sales, owner=runner.owner, lease=lease, run_id="bench", clock=bridge.clock,
        quota=QuotaGuard(0.2),
    )  # fmt: skip
    position = runner.store.cursor(runner.name, marketing.system_name(), "changes")
    batches = list(marketing.pull_changes(Cursor(position)))  # read first: time the engine only
    started = time.perf_counter()
    for batch in batches:
        intake_batch(cy, batch)
    return time.perf_counter() - started, cy.counts.pulled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        cores = "1 (pinned)"
    except (AttributeError, OSError):
        cores = "unpinned"
    workdir = Path(tempfile.mkdtemp(prefix="crmbridge-bench-"))
    os.environ.update(
        CRMBRIDGE_DATABASE_URL=f"sqlite:///{workdir / 'store.sqlite3'}",
        CRMBRIDGE_PIPELINE__MARKETING="memory_marketing",
        CRMBRIDGE_PIPELINE__SALES="memory_sales",
        CRMBRIDGE_MEMORY_MARKETING__WORLD="bench",
        CRMBRIDGE_MEMORY_SALES__WORLD="bench",
    )
    os.chdir(ROOT)
    world = memory.memory_world("bench", fresh=True)
    seed(world, args.leads)
    bridge = CrmBridge(load_settings(), entrypoints=False, extra_plugins=[("memory", memory)])
    runner = PipelineRunner(bridge)
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    first, pulled = timed_intake(runner, args.page)
    for record in list(world.marketing.records.values()):
        world.touch(world.marketing, record.id, {"hs_analytics_num_page_views": 99})
    second, again = timed_intake(runner, args.page)
    if profiler:
        profiler.disable()
    rows = {
        "leads": args.leads,
        "page": args.page,
        "cores": cores,
        "new_leads_per_second": round(pulled / first),
        "changed_leads_per_second": round(again / second),
        "new_seconds": round(first, 3),
        "changed_seconds": round(second, 3),
        "store": "SQLite (WAL)",
    }
    print(f"{'measure':<28} {'value':>12}")
    for key, value in rows.items():
        print(f"{key:<28} {value!s:>12}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps(rows, indent=2) + "\n")
    if profiler:
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "cumulative")).print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
