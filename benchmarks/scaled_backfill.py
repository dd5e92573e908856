#!/usr/bin/env python3
"""A backfill split across 1, 2 and 3 workers of the scaled runtime: throughput, and the same
final state whatever the number of workers.

    python benchmarks/scaled_backfill.py [--leads 200000] [--workers 1,2,3] [--chunks 16]
                                         [--latency-ms 100] [--rate-limits]

N qualifying leads (200,000 by default), modified at times spread over a year, wait in a HubSpot
sandbox; ``crmbridge backfill`` splits the year into chunks that ``crmbridge worker`` processes
take in side by side, then one worker hands every lead to a Salesforce sandbox (Bulk API 2.0) and
writes back to HubSpot. Each worker count runs on a fresh PostgreSQL schema and fresh sandboxes
(each sandbox its own process) with the same data.

Every call takes ``--latency-ms`` (100 ms by default, about what HubSpot and Salesforce answer in).
HubSpot's rate limits are lifted by default (the sandbox's, and the connector's pacing under them):
with them, one portal answers at most 5 searches a second however many workers ask, so a backfill
of one portal cannot go faster than about 1,000 leads a second and the run measures HubSpot, not
crmbridge. ``--rate-limits`` keeps them, to see that floor. (Many portals, as an agency has, each
have their own limits: there the workers multiply the throughput.)

The script prints, per worker count, the wall time of the whole backfill, of its intake (the
chunks) and of its handoff, leads per second, and whether the final state (crmbridge's store, the
HubSpot contacts, the Salesforce leads) equals the one-worker run's; it writes
``benchmarks/results/scaled_backfill-<N>.json``. It needs the PostgreSQL server of the tests
(``CRMBRIDGE_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from crmbridge.runtime.scaled.ledger import Ledger  # noqa: E402
from crmbridge.store import open_store  # noqa: E402
from crmbridge.store import tables as t  # noqa: E402
from tests.scaled.fleet import (  # noqa: E402
    Fleet,
    Workers,
    base_env,
    differences,
    drop_schema,
    fresh_schema,
    store_state,
)

RESULTS = ROOT / "benchmarks" / "results"
SEED_BATCH = 1_000
SPAN_DAYS = 360


def contacts(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` HubSpot contacts that qualify as MQLs (about 1 % with a broken email)."""
    rng = random.Random(seed)
    titles = ("VP of Engineering", "Head of Sales", "Director of IT", "CTO", "VP Marketing")
    out = []
    for i in range(count):
        email = f"lead.{i}@company{i % 997}.example.com"
        if rng.random() < 0.01:
            email = email.replace("@", "@@")
        out.append(
            {
                "email": email,
                "firstname": rng.choice(("Ada", "Grace", "Linus", "Radia", "Ken")),
                "lastname": f"Lead {i}",
                "company": f"Company {i % 997}",
                "jobtitle": rng.choice(titles),
                "industry": "Software",
                "numemployees": "500-1000",
                "country": "US",
                "lead_source": "webinar",
                "lifecyclestage": "lead",
            }
        )
    return out


def seed(fleet: Fleet, rows: list[dict[str, Any]], end: datetime) -> None:
    """The contacts imported in batches, each batch modified at its own time of the year before
    ``end`` (a backfill split by time needs records spread over time)."""
    hubspot = fleet.pipelines[0].hubspot.control
    batches = range(0, len(rows), SEED_BATCH)
    step = timedelta(days=SPAN_DAYS) / max(1, len(batches))
    start = end - timedelta(days=SPAN_DAYS)
    for n, first in enumerate(batches):
        at = start + step * n
        hubspot.control(
            "seed_contacts",
            contacts=rows[first : first + SEED_BATCH],
            modified_at=at.isoformat(),
        )


def hold_ticks(url: str, pipelines: list[str]) -> None:
    """Keep the pipelines' regular ticks from running during the benchmark: a pipeline's first
    cycle reads every contact, which would double the work measured here."""
    store = open_store(url)
    try:
        with store.transaction() as conn:
            for name in pipelines:
                Ledger(store).set_due(conn, name, datetime(2100, 1, 1, tzinfo=UTC))
    finally:
        store.close()


def phases(url: str) -> dict[str, float]:
    """Seconds of the intake (first chunk's start to last chunk's end) and of the handoff, from
    the runs the backfill recorded (the handoff's run is the one its finish job logged)."""
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            finish = {
                r.run_id
                for r in conn.execute(
                    select(t.scaled_ticks.c.run_id).where(t.scaled_ticks.c.kind == "finish")
                )
            }
            runs = conn.execute(
                select(t.runs.c.id, t.runs.c.started_at, t.runs.c.finished_at).where(
                    t.runs.c.kind == "backfill"
                )
            ).all()
            leads = conn.execute(select(func.count()).select_from(t.leads)).scalar_one()
    finally:
        store.close()
    chunks = [r for r in runs if r.id not in finish]
    intake = max(r.finished_at for r in chunks) - min(r.started_at for r in chunks)
    handoff = sum(((r.finished_at - r.started_at) for r in runs if r.id in finish), timedelta())
    return {
        "intake_seconds": round(intake.total_seconds(), 2),
        "handoff_seconds": round(handoff.total_seconds(), 2),
        "leads_in_store": leads,
    }


def run(workers: int, rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"crmbridge-scaled-{workers}w-"))
    schema, url = fresh_schema("crmbridge_bench")
    hubspot_options: dict[str, Any] = {} if args.rate_limits else {"rate_limits": False}
    lifted = (
        {}
        if args.rate_limits
        else {
            "CRMBRIDGE_HUBSPOT__SEARCH_PER_SECOND": "1000",
            "CRMBRIDGE_HUBSPOT__REQUESTS_PER_10S": "100000",
        }
    )
    fleet = Fleet(
        1,
        tmp / "pipelines",
        hubspot_options=hubspot_options,
        salesforce_options={"daily_api_limit": 10_000_000},
        processes=True,
    ).start()
    crew: Workers | None = None
    try:
        for box in fleet.pipelines:
            box.hubspot.control.set_latency(args.latency_ms)
            box.salesforce.control.set_latency(args.latency_ms)
        end = datetime.now(UTC) - timedelta(hours=1)
        seed(fleet, rows, end)
        env = base_env(
            url,
            fleet.folder,
            CRMBRIDGE_LOG_LEVEL="WARNING",
            CRMBRIDGE_SCALED__BACKFILL_CHUNKS=str(args.chunks),
            CRMBRIDGE_SCALED__CONCURRENCY="1",
            CRMBRIDGE_SALESFORCE__BULK_POLL_SECONDS="0.25",
            **lifted,
        )
        fleet.setup(env)
        hold_ticks(url, [box.name for box in fleet.pipelines])
        crew = Workers(env, tmp / "logs")
        crew.start(workers)
        since = (end - timedelta(days=SPAN_DAYS + 1)).date().isoformat()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "crmbridge.cli", "backfill", "--since", since],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(
                f"crmbridge backfill failed ({done.returncode}):\n{done.stdout}{done.stderr}\n"
                + crew.output()[-4000:]
            )
        crew.stop()
        state = {"store": store_state(url), "systems": fleet.state()}
        timing = phases(url)
    finally:
        if crew is not None:
            crew.stop()
        fleet.stop()
        drop_schema(schema)
    return {
        "workers": workers,
        "leads": len(rows),
        "wall_seconds": round(wall, 2),
        "leads_per_second": round(len(rows) / wall, 1),
        **timing,
        "intake_leads_per_second": round(len(rows) / timing["intake_seconds"], 1),
        "summary": done.stdout.strip().splitlines()[-3:],
        "_state": state,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,3", help="worker counts, comma-separated")
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="added to every call")
    parser.add_argument("--rate-limits", action="store_true", help="keep HubSpot's rate limits")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows = contacts(args.leads, args.seed)
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"backfill of {args.leads:,} leads with {workers} worker(s) …", flush=True)
        result = run(workers, rows, args)
        results.append(result)
        print(
            f"  {result['wall_seconds']} s in all ({result['leads_per_second']:,} leads/s); "
            f"intake {result['intake_seconds']} s ({result['intake_leads_per_second']:,} "
            f"leads/s), handoff {result['handoff_seconds']} s",
            flush=True,
        )
    reference = results[0]["_state"]
    for result in results:
        found = differences(reference, result.pop("_state"))
        result["same_final_state_as_first"] = not found
        result["differences"] = found
    print(
        f"\nscaled backfill of {args.leads:,} leads, {args.chunks} chunks, latency "
        f"{args.latency_ms:g} ms, HubSpot rate limits {'on' if args.rate_limits else 'off'}"
    )
    print(f"{'workers':>8} {'wall s':>9} {'leads/s':>9} {'intake s':>9} {'intake/s':>9} "
          f"{'handoff s':>10} {'same state':>11}")  # fmt: skip
    for r in results:
        print(
            f"{r['workers']:>8} {r['wall_seconds']:>9} {r['leads_per_second']:>9} "
            f"{r['intake_seconds']:>9} {r['intake_leads_per_second']:>9} "
            f"{r['handoff_seconds']:>10} {'yes' if r['same_final_state_as_first'] else 'NO':>11}"
        )
    first = results[0]
    for r in results[1:]:
        print(
            f"{r['workers']} workers: {first['wall_seconds'] / r['wall_seconds']:.2f}x the "
            f"one-worker throughput overall, {first['intake_seconds'] / r['intake_seconds']:.2f}x "
            "on the intake"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"scaled_backfill-{args.leads}.json"
    settings = dict(vars(args))
    out.write_text(json.dumps({"settings": settings, "runs": results}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0 if all(r["same_final_state_as_first"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
