"""``crmbridge run``, ``sync --once``, ``backfill``: the commands that move leads."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from crmbridge.cli.app import app, console, fail, reports_errors
from crmbridge.cli.common import bridge
from crmbridge.sync import CycleResult, PipelineRunner, load_pipelines
from crmbridge.sync.backfill import Progress as BackfillProgress

PipelineOption = Annotated[
    str | None, typer.Option("--pipeline", "-p", help="Only this pipeline (by name).")
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would change in each system; write nothing.")
]


@app.command()
@reports_errors
def run(
    ctx: typer.Context,
    cycles: Annotated[
        int | None, typer.Option("--cycles", help="Stop after this many cycles (for tests).")
    ] = None,
) -> None:
    """Run the sync daemon: every pipeline's cycle every poll interval, until SIGTERM/SIGINT.

    SIGHUP reloads the lead definition. Health and Prometheus metrics are served on
    CRMBRIDGE_METRICS_PORT when it is set. With CRMBRIDGE_RUNTIME=procrastinate this process is
    one worker of the scaled runtime (see crmbridge worker).
    """
    from crmbridge.runtime.scaled.adapter import runtime_for

    b = bridge(ctx)
    runtime = runtime_for(b)
    b.store  # noqa: B018 - open (and migrate) the store before the first cycle
    runtime.serve(max_cycles=cycles)


@app.command()
@reports_errors
def sync(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle and exit (required).")
    ] = False,
    pipeline: PipelineOption = None,
    dry_run: DryRunOption = False,
) -> None:
    """Run one sync cycle of each pipeline and print what it did."""
    if not once:
        fail("`crmbridge sync` runs one cycle; pass --once (or use `crmbridge run` for the daemon)")
    b = bridge(ctx)
    pipelines = [p for p in load_pipelines(b.settings) if pipeline in (None, p.name)]
    if not pipelines:
        fail(f"no pipeline named {pipeline!r}")
    failed = False
    for p in pipelines:
        runner = PipelineRunner(b, p)
        try:
            result = runner.run_cycle(dry_run=dry_run)
        finally:
            if not dry_run:
                b.store.release_lease(runner.name, runner.owner)
            runner.close()
        _print_result(result, dry_run)
        failed |= result.status not in ("ok",)
    if failed:
        raise typer.Exit(1)


def _print_result(result: CycleResult, dry_run: bool, kind: str = "cycle") -> None:
    c = result.counts
    label = f"{kind} (dry run)" if dry_run else kind
    console.print(
        f"pipeline {result.pipeline} {label} {result.status}: pulled {c.pulled} (valid {c.valid}, "
        f"quarantined {c.quarantined}), handed off {c.handed_off}, held {c.held}, outcomes "
        f"{c.outcomes}, written back {c.written_back}, SLA breaches {c.sla_breaches}, refused "
        f"{c.refused}, conflicts {c.conflicts}, API calls "
        + ", ".join(f"{k} {v}" for k, v in c.api_calls.items()),
        highlight=False,
    )
    if result.error is not None and result.status != "ok":
        console.print(
            f"  [yellow]{type(result.error).__name__}: {result.error}[/]", highlight=False
        )
    if dry_run:
        _print_plan(result)


def _print_plan(result: CycleResult) -> None:
    by_system = result.plan.by_system()
    if not by_system:
        console.print("  nothing would be written", highlight=False)
    for system, writes in by_system.items():
        table = Table(
            title=f"{system}: {len(writes)} write(s) a real run would make", title_justify="left"
        )
        table.add_column("action")
        table.add_column("lead")
        table.add_column("record")
        table.add_column("changes")
        for w in writes[:50]:
            changes = ", ".join(f"{k}={_short(v)}" for k, v in w.changes.items() if v is not None)
            table.add_row(w.action, w.email, w.native_id or "(new)", changes)
        console.print(table)
        if len(writes) > 50:
            console.print(f"  … and {len(writes) - 50} more", highlight=False)


def _short(value: object) -> str:
    text = value.isoformat(timespec="minutes") if isinstance(value, datetime) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _parse_date(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{flag} {text!r} is not a date", hint="use YYYY-MM-DD or an ISO 8601 date and time")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command()
@reports_errors
def backfill(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="From this date (inclusive).")],
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this date (exclusive).")
    ] = None,
    pipeline: PipelineOption = None,
    dry_run: DryRunOption = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start over instead of resuming a stopped backfill.")
    ] = False,
) -> None:
    """Take in every marketing record modified in a date range; resumable after interruption.

    Running the same command again resumes from where it stopped. Leads that qualify are handed to
    sales in bulk as the backfill goes. Memory stays flat: records are streamed page by page. With
    CRMBRIDGE_RUNTIME=procrastinate the range is split into chunks the workers take in side by
    side, and this command follows them.
    """
    start = _parse_date(since, "--since")
    end = _parse_date(until, "--until") if until else None
    b = bridge(ctx)
    from crmbridge.runtime.scaled.adapter import runtime_for

    runtime = runtime_for(b)
    pipelines = [p for p in load_pipelines(b.settings) if pipeline in (None, p.name)]
    if len(pipelines) != 1:
        fail("backfill runs one pipeline; pick it with --pipeline NAME")
    runner = PipelineRunner(b, pipelines[0])
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[rate]} rec/s · {task.fields[calls]} API calls · "
                "{task.fields[handed]} handed off · {task.fields[quarantined]} quarantined"
            ),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task(
                f"backfill {runner.name}", total=None, rate="-", calls=0, handed=0, quarantined=0
            )
            started = datetime.now(UTC)

            def show(p: BackfillProgress) -> None:
                elapsed = max(0.001, (datetime.now(UTC) - started).total_seconds())
                bar.update(
                    task,
                    completed=p.records,
                    total=p.total,
                    rate=f"{p.records / elapsed:,.0f}",
                    calls=p.api_calls,
                    handed=p.handed_off,
                    quarantined=p.quarantined,
                )

            try:
                result = runtime.backfill(
                    runner, start, end, dry_run=dry_run, restart=restart, stop=stop, progress=show
                )
            except KeyboardInterrupt:
                stop.set()
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.close()
    _print_result(result, dry_run, "backfill")
    if result.status == "stopped":
        console.print("stopped; run the same command again to resume", highlight=False)
    if result.status != "ok":
        raise typer.Exit(1)
