#!/usr/bin/env python3
"""Crash safety: kill crmbridge with SIGKILL at seeded random moments and prove nothing is lost
or duplicated.

    .venv/bin/python scripts/crash_test.py                     # 20,000 leads, 20 kills
    .venv/bin/python scripts/crash_test.py --leads 1000 --kills 4
    .venv/bin/python scripts/crash_test.py --faults --kills 0  # fault equivalence, no kills

Runs the scenario of ``tests/reliability/scenario.py`` twice with the same seed, each against its
own pair of sandboxes (processes with state files, never killed): once clean, then again while
killing the ``crmbridge backfill`` and ``crmbridge sync --once`` processes at ``--kills`` moments
drawn from the seed (spread over the phases in proportion to how long each took in the clean
run), restarting each killed command until it finishes; part of the sales team's actions happen
while crmbridge is down. With ``--faults`` the second run's sandboxes also inject 5xx, 429 with
``Retry-After``, dropped connections, expired sessions and partial batch failures.

Then both emulators and the store of both runs are compared (see the scenario module for what
*identical* means); the script prints the counts compared and ``N lost, N duplicated``, and exits
non-zero when anything differs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reliability.scenario import (  # noqa: E402 - the repository root is on the path now
    Config,
    KillPlan,
    Run,
    compare,
    run_scenario,
)


def run_once(
    name: str, workdir: Path, config: Config, *, plan: KillPlan | None, faults: bool
) -> tuple[Run, float]:
    """One run of the scenario in ``workdir/name``, and how long it took."""
    started = time.monotonic()
    run = run_scenario(
        workdir / name, config, plan=plan, faults=faults, log=lambda t: print(t, flush=True)
    )
    (workdir / f"{name}.state.json").write_text(run.state.to_json(), encoding="utf-8")
    return run, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=20_000, help="demo leads seeded")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in the second run")
    parser.add_argument("--seed", type=int, default=2026, help="seed of everything random")
    parser.add_argument("--rounds", type=int, default=5, help="steady-state sync rounds")
    parser.add_argument("--faults", action="store_true", help="inject faults in the second run")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args(argv)
    config = Config(leads=args.leads, seed=args.seed, rounds=args.rounds)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmbridge-crash-"))
    if args.workdir and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"crash test: {config.leads:,} leads, seed {config.seed}, {config.rounds} rounds, "
        f"{args.kills} kills{', with faults' if args.faults else ''}; in {workdir}",
        flush=True,
    )
    print("clean run …", flush=True)
    clean, clean_time = run_once("clean", workdir, config, plan=None, faults=False)
    plan = KillPlan.draw(args.kills, clean.runner.timings, config.seed)
    label = "killed" if args.kills else "faults"
    print(f"clean run took {clean_time:.1f} s; {label} run …", flush=True)
    run, run_time = run_once(label, workdir, config, plan=plan, faults=args.faults)
    difference = compare(clean.state, run.state)
    restarts = sum(n - 1 for n in run.runner.attempts.values())
    print(
        f"{label} run took {run_time:.1f} s: {len(plan.landed)} kills landed "
        f"({plan.remaining} missed), {restarts} restarts"
    )
    if run.faults:
        fired = ", ".join(f"{n} {kind}" for kind, n in sorted(run.faults.items()))
        print(f"faults injected: {fired}")
    print(difference.summary())
    if not difference.identical:
        print(difference.details())
    print(
        f"{len(difference.lost)} lost, {len(difference.duplicated)} duplicated"
        + (f", {len(difference.changed)} changed" if difference.changed else "")
    )
    if args.workdir is None and difference.identical:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if difference.identical and len(plan.landed) == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
