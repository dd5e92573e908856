#!/usr/bin/env python3
"""Plot the backfill benchmark: wall time and API calls against N, crmbridge and the naive script.

    pip install -e '.[bench]'
    python benchmarks/plot.py            # reads benchmarks/results/backfill-*.json

Writes ``docs/benchmarks.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
LATENCY_MS = 100.0
"""Only the runs at the benchmark's 100 ms per call are plotted."""


def series() -> dict[str, list[tuple[int, float, int]]]:
    """tool → [(N, wall seconds, API calls)], sorted by N."""
    out: dict[str, list[tuple[int, float, int]]] = {}
    for path in sorted((ROOT / "benchmarks" / "results").glob("backfill-*.json")):
        for row in json.loads(path.read_text())["rows"]:
            if row.get("latency_ms", LATENCY_MS) != LATENCY_MS:
                continue  # a run without the latency (the million-lead run) is not comparable
            out.setdefault(row["tool"], []).append(
                (row["leads"], row["wall_seconds"], row["api_calls"])
            )
    return {tool: sorted(set(points)) for tool, points in out.items()}


def main() -> int:
    data = series()
    if not data:
        print("no results: run benchmarks/backfill.py first", file=sys.stderr)
        return 1
    fig, (wall, calls) = plt.subplots(1, 2, figsize=(11, 4.2))
    for tool, points in data.items():
        ns = [p[0] for p in points]
        wall.plot(ns, [p[1] for p in points], marker="o", label=tool)
        calls.plot(ns, [p[2] for p in points], marker="o", label=tool)
    for ax, title, unit in ((wall, "wall time", "seconds"), (calls, "API calls", "calls")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("leads backfilled (N)")
        ax.set_ylabel(unit)
        ax.set_title(f"Backfill HubSpot → Salesforce, {LATENCY_MS:g} ms a call: {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = ROOT / "docs" / "benchmarks.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
