#!/usr/bin/env python3
"""The scaled runtime at full size: worker processes, many pipelines, forms arriving for minutes.

    .venv/bin/python scripts/scaled_soak.py                    # 3 workers, 20 pipelines, 120 s
    .venv/bin/python scripts/scaled_soak.py --workers 3 --pipelines 20 --seconds 120

Each pipeline is its own HubSpot portal and Salesforce org (sandboxes, each seeded with demo
leads). ``--workers`` ``crmbridge worker`` processes run against a fresh PostgreSQL schema while
marketers submit forms to random portals for ``--seconds``; then sales gives verdicts and the
workers bring everything to rest. The same inputs then go through the embedded runtime, one
pipeline after another, on a second fleet seeded alike.

Printed: ticks by pipeline and worker, overlapping ticks of one pipeline (from the tick log of
start and end times; must be none), pipelines that never advanced (none), and the differences
between the scaled run's end state (store, portals, orgs) and the single process's (none). Exits
non-zero when any of the three is not empty. This is the test
``tests/scaled/test_workers.py::test_three_workers_twenty_pipelines_...`` at full length; it
needs the PostgreSQL of the tests (``CRMBRIDGE_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crmbridge.runtime.scaled.ledger import Ledger, overlaps  # noqa: E402
from crmbridge.store import open_store  # noqa: E402
from tests.scaled.fleet import (  # noqa: E402
    Fleet,
    Marketers,
    Workers,
    base_env,
    differences,
    drain,
    drop_schema,
    fresh_schema,
    give_verdicts,
    run_single,
    store_state,
    submissions,
    submit,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--pipelines", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long forms arrive")
    parser.add_argument("--forms", type=int, default=0, help="default: 3 a second")
    parser.add_argument("--leads", type=int, default=20, help="demo leads seeded per system")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    forms = args.forms or int(args.seconds * 3)
    workdir = Path(tempfile.mkdtemp(prefix="crmbridge-soak-"))
    schema, url = fresh_schema("crmbridge_soak")
    scaled, single = (
        Fleet(args.pipelines, workdir / "scaled"),
        Fleet(args.pipelines, workdir / "single"),
    )
    crew: Workers | None = None
    store = None
    try:
        for fleet in (scaled.start(), single.start()):
            fleet.seed_demo(args.leads)
        env = base_env(url, scaled.folder)
        scaled.setup(env)
        store = open_store(url)
        inputs = submissions(forms, args.pipelines, seed=args.seed)
        print(
            f"soak: {args.workers} workers, {args.pipelines} pipelines, {forms} forms over "
            f"{args.seconds:g} s; in {workdir}",
            flush=True,
        )
        crew = Workers(env, workdir / "logs")
        crew.start(args.workers)
        started = time.monotonic()
        marketers = Marketers(scaled, inputs, seconds=args.seconds)
        marketers.start()
        marketers.join()
        if marketers.error is not None:
            raise marketers.error
        names = [box.name for box in scaled.pipelines]
        drain(store, names, timeout=300)
        verdicts = give_verdicts(scaled)
        drain(store, names, timeout=300)
        took = time.monotonic() - started
        crew.stop()
        crew = None
        ticks = Ledger(store).ticks()
        overlapping = overlaps(ticks)
        ok = Counter(t.pipeline for t in ticks if t.status == "ok")
        idle = sorted(set(names) - set(ok))
        by_worker = Counter(t.worker_id for t in ticks)
        print(
            f"ran {took:.0f} s: {len(ticks)} ticks ({sum(ok.values())} ok), "
            f"{verdicts} verdicts from sales"
        )
        print(f"  ticks per worker: {dict(sorted(by_worker.items()))}")
        print(f"  ok ticks per pipeline: min {min(ok.values(), default=0)}, max "
              f"{max(ok.values(), default=0)}")  # fmt: skip
        print(f"  overlapping ticks of one pipeline: {len(overlapping)}")
        print(f"  pipelines that never advanced: {len(idle)} {idle or ''}")

        print("single process, same inputs …", flush=True)
        single_env = base_env(
            f"sqlite:///{workdir / 'single.sqlite3'}", single.folder, CRMBRIDGE_RUNTIME="embedded"
        )
        single.setup(single_env)
        submit(single, inputs)
        run_single(single_env)
        give_verdicts(single)
        run_single(single_env)
        reference = {"store": store_state(single_env["CRMBRIDGE_DATABASE_URL"]),
                     "systems": single.state()}  # fmt: skip
        found = {"store": store_state(url), "systems": scaled.state()}
        different = differences(found, reference)
        leads = sum(len(p.get("leads", {})) for p in found["store"].values())
        print(f"  compared with the single process ({leads} leads in the store): "
              f"{len(different)} differences")  # fmt: skip
        for line in different[:20]:
            print("   ", line)
        return 0 if not overlapping and not idle and not different else 1
    finally:
        if crew is not None:
            crew.stop()
        if store is not None:
            store.close()
        scaled.stop()
        single.stop()
        drop_schema(schema)


if __name__ == "__main__":
    sys.exit(main())
