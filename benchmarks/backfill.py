#!/usr/bin/env python3
"""Backfill against the API-limit floor, and against the script a user would write instead.

N qualifying leads (10,000 by default) go from the HubSpot sandbox to the Salesforce sandbox, with
realistic conditions: 100 ms of latency on every call, HubSpot's professional-tier limits (190
requests per 10 s, 5 searches per second), Salesforce composite collections and Bulk API 2.0.

    python benchmarks/backfill.py [--leads 10000] [--latency-ms 100] [--naive] [--keep]
    python benchmarks/backfill.py --naive-only    # the naive script beside saved figures

``crmbridge backfill`` runs as a child process, so its wall time and peak RSS are its own. The
script prints, and writes to ``benchmarks/results/backfill-<N>.json``:

* wall time, leads per second, peak RSS, API calls by endpoint;
* the **minimum calls** the batch sizes allow for the whole loop: ceil(N/200) HubSpot search pages,
  the Salesforce writes (ceil(N/200) collection calls below the bulk threshold; above it, one Bulk
  API 2.0 job per handoff chunk of ``crmbridge.sync.handoff.CHUNK`` leads, at least 5 calls each:
  create, upload, close, one status poll, results), and ceil(N/100) HubSpot batch updates that
  show marketing the handoff;
* the **rate-limit floor** for those calls: HubSpot's searches at 5 per second and its batch
  updates at 19 per second, Salesforce's calls at the latency (no per-second limit applies);
* the ratios actual/minimum calls and wall/floor.

With ``--naive`` the record-by-record script (benchmarks/naive_sync.py) runs on fresh sandboxes
with the same data, and both are printed side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BULK_THRESHOLD = 2_000

FIRST = (
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
)
LAST = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Ritchie", "Allen")
COMPANIES = ("Analytical", "Navy Labs", "Kernel", "Apollo", "Bletchley", "Clu", "Bell", "Stretch")
TITLES = ("VP of Engineering", "Head of Sales", "Director of IT", "CTO", "VP Marketing")


def contacts(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` HubSpot contacts that each qualify as an MQL (about 1 % with a broken email)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        domain = rng.choice(COMPANIES).lower().replace(" ", "")
        email = f"{rng.choice(FIRST).lower()}.{i}@{domain}.example.com"
        if rng.random() < 0.01:
            email = email.replace("@", "@@")
        out.append(
            {
                "email": email,
                "firstname": rng.choice(FIRST),
                "lastname": rng.choice(LAST),
                "company": f"{rng.choice(COMPANIES)} {i % 997}",
                "jobtitle": rng.choice(TITLES),
                "industry": "Software",
                "numemployees": "500-1000",
                "country": "US",
                "lead_source": "webinar",
                "lifecyclestage": "lead",
            }
        )
    return out


def start_sandboxes(latency_ms: float) -> tuple[Any, Any]:
    from crmbridge_hubspot.sandbox import HubSpotEmulator
    from crmbridge_salesforce.sandbox import SalesforceEmulator

    from crmbridge.testing.sandbox import SandboxProcess

    hubspot = SandboxProcess(
        HubSpotEmulator, options={"tier": "professional"}, latency_ms=latency_ms
    ).start()
    salesforce = SandboxProcess(
        SalesforceEmulator,
        options={"bulk_job_delay_seconds": 0.2, "daily_api_limit": 10_000_000},
        latency_ms=latency_ms,
    ).start()
    return hubspot, salesforce


SEED_BATCH = 20_000
SEED_APART_SECONDS = 60.0
"""Seeded contacts were last modified a minute apart, oldest first, up to now: the history of a
real portal. (Contacts seeded in one go at the same instant would share milliseconds by the
dozen; each search page then ends in a group of one millisecond that the next page reads again,
about 30 % more searches than a portal's real history costs.)"""


def seed(hubspot: Any, rows: list[dict[str, Any]]) -> None:
    now_ms = int(time.time() * 1000)
    for start in range(0, len(rows), SEED_BATCH):
        batch = rows[start : start + SEED_BATCH]
        after = len(rows) - start - len(batch)  # contacts modified after this batch
        hubspot.control.control(
            "seed_contacts",
            contacts=batch,
            modified_at=str(now_ms - int(after * SEED_APART_SECONDS * 1000)),
            spread_seconds=len(batch) * SEED_APART_SECONDS,
        )


def env_for(workdir: Path, hubspot: Any, salesforce: Any) -> dict[str, str]:
    from crmbridge_hubspot.sandbox import HubSpotEmulator
    from crmbridge_salesforce.sandbox import SalesforceEmulator

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBRIDGE_")}
    env.update(HubSpotEmulator({"tier": "professional"}).env(hubspot.url))
    env.update(SalesforceEmulator({}).env(salesforce.url))
    env.update(
        CRMBRIDGE_DATABASE_URL=f"sqlite:///{workdir / 'store.sqlite3'}",
        CRMBRIDGE_LOAD_PLUGINS="hubspot,salesforce",
        CRMBRIDGE_LOG_LEVEL="WARNING",
        CRMBRIDGE_SALESFORCE__BULK_POLL_SECONDS="0.25",
        CRMBRIDGE_SALESFORCE__BULK_THRESHOLD=str(BULK_THRESHOLD),
    )
    return env


def high_water_kb(pid: int) -> int | None:
    """The process's peak resident set so far (``VmHWM``), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_child(
    args: list[str], env: dict[str, str], kill_after: float | None = None
) -> tuple[float, int, int, str]:
    """Run a child, return (wall seconds, exit status, peak RSS in KB, output); with
    ``kill_after``, SIGKILL it after that many seconds.

    The peak is the child's own ``VmHWM``, read every 0.2 s until it exits. (``ru_maxrss`` from
    ``wait4`` is not the child's own: Linux carries into it the resident set of the mm the
    child had before ``exec``, a copy of this process, which holds the generated contacts: at a
    million leads that read 511 MB for a child that never went past 210 MB.)
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
        )
        peak = 0
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, high_water_kb(proc.pid) or 0)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        if kill_after is not None:
            timer = threading.Timer(kill_after, proc.send_signal, (signal.SIGKILL,))
            timer.start()
        code = proc.wait()
        done.set()
        watcher.join()
        if kill_after is not None:
            timer.cancel()
        wall = time.perf_counter() - started
        out.seek(0)
        return wall, code, peak, out.read()


def minimum_calls(n: int, valid: int) -> dict[str, int]:
    pages = math.ceil(n / 200)  # a date-bounded backfill reads HubSpot by search, 200 a page
    if valid >= BULK_THRESHOLD:
        from crmbridge.sync.handoff import CHUNK

        salesforce = math.ceil(valid / CHUNK) * 5
    else:
        salesforce = math.ceil(valid / 200)
    writeback = math.ceil(valid / 100)
    return {"hubspot_pages": pages, "salesforce_writes": salesforce, "hubspot_writeback": writeback}


def crmbridge_run(
    n: int, latency_ms: float, seed_value: int, keep: bool, kill_after: float | None = None
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"crmbridge-backfill-{n}-"))
    rows = contacts(n, seed_value)
    valid = sum("@@" not in r["email"] for r in rows)
    hubspot, salesforce = start_sandboxes(latency_ms)
    try:
        seed(hubspot, rows)
        del rows  # the sandbox holds them now
        env = env_for(workdir, hubspot, salesforce)
        setup = subprocess.run(
            [sys.executable, "-m", "crmbridge.cli", "setup"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if setup.returncode:
            raise SystemExit(f"crmbridge setup failed:\n{setup.stdout}{setup.stderr}")
        hubspot.control.reset_calls()
        salesforce.control.reset_calls()
        command = [sys.executable, "-m", "crmbridge.cli", "backfill", "--since", "2000-01-01"]
        killed = None
        if kill_after is not None:
            wall0, code0, _rss0, _out0 = run_child(command, env, kill_after=kill_after)
            killed = {"after_seconds": round(wall0, 1), "exit": code0}
        wall, code, rss_kb, output = run_child(command, env)
        if code:
            raise SystemExit(f"crmbridge backfill failed ({code}):\n{output[-4000:]}")
        if killed is not None:
            wall += wall0
        hs_calls = hubspot.control.calls()
        sf_calls = salesforce.control.calls()
        check = salesforce_check(salesforce)
    finally:
        hubspot.stop()
        salesforce.stop()
    by_endpoint = Counter({f"hubspot {k}": v for k, v in hs_calls.by_endpoint().items()})
    by_endpoint.update({f"salesforce {k}": v for k, v in sf_calls.by_endpoint().items()})
    actual_hs = len(hs_calls)
    actual_sf = len(sf_calls)
    minimum = minimum_calls(n, valid)
    min_hs = minimum["hubspot_pages"] + minimum["hubspot_writeback"]
    min_total = min_hs + minimum["salesforce_writes"]
    # Searches go at most 5 a second, HubSpot's other calls 19 a second; Salesforce's calls run
    # one after another at the latency each (no per-second limit applies to them).
    floor = minimum["hubspot_pages"] / 5.0 + minimum["hubspot_writeback"] / 19.0
    floor += (minimum["salesforce_writes"] + 1) * latency_ms / 1000.0
    result = {
        "tool": "crmbridge",
        "leads": n,
        "valid_leads": valid,
        "latency_ms": latency_ms,
        "wall_seconds": round(wall, 2),
        "leads_per_second": round(n / wall, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "api_calls": actual_hs + actual_sf,
        "api_calls_hubspot": actual_hs,
        "api_calls_salesforce": actual_sf,
        "calls_by_endpoint": dict(by_endpoint.most_common()),
        "minimum_calls": min_total,
        "minimum_detail": minimum,
        "rate_limit_floor_seconds": round(floor, 2),
        "calls_vs_minimum": round((actual_hs + actual_sf) / min_total, 3),
        "wall_vs_floor": round(wall / floor, 3),
        "salesforce_leads": check["leads"],
        "salesforce_distinct_crmbridge_ids": check["distinct"],
        "killed_and_resumed": killed,
    }
    if not keep:
        for path in workdir.glob("*"):
            path.unlink()
        workdir.rmdir()
    return result


def salesforce_check(salesforce: Any) -> dict[str, int]:
    """How many leads crmbridge made in Salesforce, and how many distinct crmbridge ids they
    carry (equal when nothing was duplicated)."""
    from crmbridge_salesforce.transport import sandbox_session
    from simple_salesforce import Salesforce

    sf = Salesforce(
        session=sandbox_session(salesforce.url),
        consumer_key="crmbridge-sandbox-key",
        consumer_secret="crmbridge-sandbox-secret",
        domain="crmbridge-sandbox.my",
    )
    total = 0
    seen: set[str] = set()
    query = "SELECT CrmBridge_Id__c FROM Lead WHERE CrmBridge_Id__c != null"
    for page in sf.bulk2.Lead.query(query, wait=0.2):
        for line in page.splitlines()[1:]:
            value = line.strip().strip('"')
            if value:
                total += 1
                seen.add(value)
    return {"leads": total, "distinct": len(seen)}


def naive_run(n: int, latency_ms: float, seed_value: int) -> dict[str, Any]:
    hubspot, salesforce = start_sandboxes(latency_ms)
    try:
        seed(hubspot, contacts(n, seed_value))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBRIDGE_")}
        wall, code, rss_kb, output = run_child(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "naive_sync.py"),
                "--hubspot-url",
                hubspot.url,
                "--salesforce-url",
                salesforce.url,
            ],
            env,
        )
        if code:
            raise SystemExit(f"naive script failed ({code}):\n{output[-4000:]}")
        calls = len(hubspot.control.calls()) + len(salesforce.control.calls())
    finally:
        hubspot.stop()
        salesforce.stop()
    return {
        "tool": "naive script",
        "leads": n,
        "latency_ms": latency_ms,
        "wall_seconds": round(wall, 2),
        "leads_per_second": round(n / wall, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "api_calls": calls,
        "output": output.strip().splitlines()[-1] if output.strip() else "",
    }


def _saved_naive(path: Path, latency_ms: float) -> dict[str, Any] | None:
    """The naive script's row of an earlier run with the same latency, if there is one."""
    if not path.exists():
        return None
    for row in json.loads(path.read_text()).get("rows", []):
        if row.get("tool") == "naive script" and row.get("latency_ms") == latency_ms:
            return dict(row)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--naive", action="store_true", help="also run the record-by-record script")
    parser.add_argument("--keep", action="store_true", help="keep the store of the run")
    parser.add_argument(
        "--kill-after",
        type=float,
        default=None,
        help="SIGKILL the backfill after this many seconds, then run it again to resume",
    )
    parser.add_argument(
        "--naive-only",
        action="store_true",
        help="run only the naive script, beside crmbridge's figures saved by an earlier run",
    )
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"backfill-{args.leads}.json"
    if args.naive_only:
        if not out.exists():
            raise SystemExit(f"{out.relative_to(ROOT)} is missing: run without --naive-only first")
        mine = json.loads(out.read_text())["rows"][0]
        args.naive = True
    else:
        mine = crmbridge_run(args.leads, args.latency_ms, args.seed, args.keep, args.kill_after)
    saved = _saved_naive(out, args.latency_ms) if not args.naive else None
    rows = [mine]
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")  # kept if the naive run fails
    if args.naive:
        rows.append(naive_run(args.leads, args.latency_ms, args.seed))
    elif saved is not None:
        rows.append(saved)  # the naive script's figures from an earlier run, same N and latency
        args.naive = True
    keys = ["wall_seconds", "leads_per_second", "api_calls", "peak_rss_mb"]
    print(f"\nbackfill of {args.leads:,} leads, {args.latency_ms:g} ms latency per call")
    print(f"{'':<24}" + "".join(f"{r['tool']:>18}" for r in rows))
    for key in keys:
        print(f"{key:<24}" + "".join(f"{r[key]!s:>18}" for r in rows))
    print(f"\nminimum calls (batch sizes): {mine['minimum_calls']} {mine['minimum_detail']}")
    print(f"calls / minimum:             {mine['calls_vs_minimum']}")
    print(f"rate-limit floor:            {mine['rate_limit_floor_seconds']} s")
    print(f"wall / floor:                {mine['wall_vs_floor']}")
    print(
        f"salesforce: {mine['salesforce_leads']} leads from crmbridge, "
        f"{mine['salesforce_distinct_crmbridge_ids']} distinct crmbridge ids, "
        f"{mine['valid_leads']} valid leads in HubSpot"
    )
    if mine["killed_and_resumed"]:
        print(f"killed with SIGKILL and resumed: {mine['killed_and_resumed']}")
    print("calls by endpoint:")
    for endpoint, count in mine["calls_by_endpoint"].items():
        print(f"  {count:>7}  {endpoint}")
    if args.naive:
        naive = rows[1]
        calls = naive["api_calls"] / mine["api_calls"]
        wall = naive["wall_seconds"] / mine["wall_seconds"]
        print(f"\nvs the naive script: {calls:.1f}x fewer API calls, {wall:.1f}x less wall time")
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
