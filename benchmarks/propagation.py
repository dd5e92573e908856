#!/usr/bin/env python3
"""Propagation latency in a running daemon: a lead crossing MQL in HubSpot until it appears in
Salesforce, and a Salesforce status change until HubSpot shows it; p50/p95 over many events.

    python benchmarks/propagation.py [--events 200] [--poll-seconds 15] [--latency-ms 100]

The daemon runs as a child process (``crmbridge run``) with the default poll interval; events
are spread over the run so they land at random points of the poll cycle. Prints a table and
writes ``benchmarks/results/propagation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from backfill import env_for, start_sandboxes  # noqa: E402


def mql(i: int) -> dict[str, Any]:
    return {
        "email": f"prop.{i}@latency.example.com",
        "firstname": "Prop",
        "lastname": f"Lead {i}",
        "company": f"Latency {i}",
        "jobtitle": "VP of Engineering",
        "industry": "Software",
        "numemployees": "500-1000",
        "country": "US",
        "lead_source": "webinar",
        "lifecyclestage": "lead",
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--poll-seconds", type=float, default=15.0)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--spread-seconds", type=float, default=None, help="default: events x 1 s")
    args = parser.parse_args()
    spread = args.spread_seconds or float(args.events)
    workdir = Path(tempfile.mkdtemp(prefix="crmbridge-propagation-"))
    hubspot, salesforce = start_sandboxes(args.latency_ms)
    rng = random.Random(3)
    to_sales: list[float] = []
    to_marketing: list[float] = []
    daemon = None
    try:
        env = env_for(workdir, hubspot, salesforce)
        env["CRMBRIDGE_PIPELINE__POLL_SECONDS"] = str(args.poll_seconds)
        subprocess.run(
            [sys.executable, "-m", "crmbridge.cli", "setup"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        daemon = subprocess.Popen(
            [sys.executable, "-m", "crmbridge.cli", "run"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(args.poll_seconds + 2)  # let the first cycle read the (empty) portal
        pending: dict[str, float] = {}
        accepted: dict[str, tuple[str, float]] = {}
        lock = threading.Lock()

        def watch() -> None:
            while True:
                with lock:
                    if not pending and not accepted and done.is_set():
                        return
                    emails = list(pending)
                    waiting = dict(accepted)
                for email in emails:
                    found = salesforce.control.control("find_leads", email=email)
                    if found:
                        with lock:
                            to_sales.append(time.monotonic() - pending.pop(email))
                        lead_id = found[0]["Id"]
                        salesforce.control.control(
                            "set_lead_status", lead_id=lead_id, status="Working - Contacted"
                        )
                        with lock:
                            accepted[email] = (lead_id, time.monotonic())
                for email, (_lead_id, since) in waiting.items():
                    contact = hubspot.control.control("get_contact", email=email)
                    if contact["properties"].get("crmbridge_outcome") == "accepted":
                        with lock:
                            to_marketing.append(time.monotonic() - since)
                            accepted.pop(email)
                time.sleep(0.2)

        done = threading.Event()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        for i in range(args.events):
            time.sleep(rng.uniform(0, 2 * spread / args.events))
            hubspot.control.control("seed_contacts", contacts=[mql(i)])
            with lock:
                pending[mql(i)["email"]] = time.monotonic()
        done.set()
        watcher.join(timeout=6 * args.poll_seconds + 120)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(timeout=60)
        hubspot.stop()
        salesforce.stop()
    rows = {
        "events": args.events,
        "poll_seconds": args.poll_seconds,
        "latency_ms": args.latency_ms,
        "hubspot_to_salesforce_p50": round(percentile(to_sales, 0.5), 1),
        "hubspot_to_salesforce_p95": round(percentile(to_sales, 0.95), 1),
        "salesforce_to_hubspot_p50": round(percentile(to_marketing, 0.5), 1),
        "salesforce_to_hubspot_p95": round(percentile(to_marketing, 0.95), 1),
        "measured": [len(to_sales), len(to_marketing)],
        "mean_to_sales": round(statistics.fmean(to_sales), 1) if to_sales else None,
    }
    print(f"{'measure':<30} {'seconds':>10}")
    for key, value in rows.items():
        print(f"{key:<30} {value!s:>10}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "propagation.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
