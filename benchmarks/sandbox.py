#!/usr/bin/env python3
"""How many simple requests a second each sandbox emulator answers.

    python benchmarks/sandbox.py [--seconds 5] [--concurrency 16]

Each emulator runs in its own process (as ``crmbridge sandbox`` and the benchmarks run it), seeded
with 1,000 demo records, no latency added, HubSpot's rate limits lifted (they would answer 429 to
all but 190 requests in 10 s, which measures the limit, not the emulator); a load generator in
this process keeps ``--concurrency`` keep-alive requests in flight for ``--seconds`` and counts
the answers. The
requests are the simple reads a connector makes most: HubSpot ``GET
/crm/v3/objects/contacts/{id}`` with a private-app token, Salesforce ``GET
/services/data/vXX.X/sobjects/Lead/{id}`` with an OAuth session, each on a record picked at
random. Printed: requests per second and p50/p99 latency per emulator; written to
``benchmarks/results/sandbox.json``. Every answer must be 200, or the script fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECORDS = 1_000


async def load(
    url: str, paths: list[str], headers: dict[str, str], seconds: float, concurrency: int
) -> dict[str, Any]:
    """Requests of ``paths`` (picked at random) kept ``concurrency`` deep for ``seconds``."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    rng = random.Random(7)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(rng.choice(paths)) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": round(took, 2),
        "requests_per_second": round(len(latencies) / took),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "statuses": statuses,
    }


def hubspot(seconds: float, concurrency: int) -> dict[str, Any]:
    from crmbridge_hubspot.sandbox import HubSpotEmulator

    from crmbridge.testing.sandbox import SandboxProcess

    box = SandboxProcess(HubSpotEmulator, options={"rate_limits": False}).start()
    try:
        box.control.control("seed_demo", count=RECORDS, seed=7)
        env = HubSpotEmulator({}).env(box.url)
        ids = [c["id"] for c in box.control.control("export_contacts", properties=["email"])]
        paths = [f"/crm/v3/objects/contacts/{i}" for i in ids]
        headers = {"Authorization": f"Bearer {env['CRMBRIDGE_HUBSPOT__ACCESS_TOKEN']}"}
        return asyncio.run(load(box.url, paths, headers, seconds, concurrency))
    finally:
        box.stop()


def salesforce(seconds: float, concurrency: int) -> dict[str, Any]:
    import requests
    from crmbridge_salesforce.sandbox import SalesforceEmulator

    from crmbridge.testing.sandbox import SandboxProcess

    box = SandboxProcess(SalesforceEmulator).start()
    try:
        box.control.control("seed_demo", count=RECORDS, seed=7)
        env = SalesforceEmulator({}).env(box.url)
        token = requests.post(
            f"{box.url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env["CRMBRIDGE_SALESFORCE__CLIENT_ID"],
                "client_secret": env["CRMBRIDGE_SALESFORCE__CLIENT_SECRET"],
            },
            timeout=10,
        ).json()["access_token"]
        version = env["CRMBRIDGE_SALESFORCE__API_VERSION"]
        rows = box.control.control("query", soql="SELECT Id FROM Lead")
        paths = [f"/services/data/v{version}/sobjects/Lead/{r['Id']}" for r in rows][:RECORDS]
        headers = {"Authorization": f"Bearer {token}"}
        return asyncio.run(load(box.url, paths, headers, seconds, concurrency))
    finally:
        box.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = {
        "hubspot": hubspot(args.seconds, args.concurrency),
        "salesforce": salesforce(args.seconds, args.concurrency),
    }
    print(f"{'emulator':<12}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    for name, r in results.items():
        print(
            f"{name:<12}{r['requests']:>10}{r['requests_per_second']:>10}{r['p50_ms']:>10}"
            f"{r['p99_ms']:>10}  {r['statuses']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "sandbox.json"
    out.write_text(json.dumps({"concurrency": args.concurrency, **results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    bad = {n: r["statuses"] for n, r in results.items() if set(r["statuses"]) != {200}}
    if bad:
        print(f"answers other than 200: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
