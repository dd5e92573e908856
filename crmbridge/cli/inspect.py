"""``crmbridge lead show``, ``report``, ``quarantine``, ``status``: reading what crmbridge did."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from crmbridge.cli.app import app, console, fail, reports_errors
from crmbridge.cli.common import bridge
from crmbridge.lead import normalize_email
from crmbridge.report import build_report, render_html, render_text
from crmbridge.store.lifecycle import jsonable

lead_app = typer.Typer(help="One lead's journey.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Records held back: see, retry, drop.", no_args_is_help=True)
app.add_typer(lead_app, name="lead")
app.add_typer(quarantine_app, name="quarantine")

PipelineOption = Annotated[str, typer.Option("--pipeline", "-p", help="Pipeline name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _t(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


@lead_app.command("show")
@reports_errors
def lead_show(
    ctx: typer.Context,
    email: str,
    pipeline: PipelineOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Why is this lead at its stage, who has it now, and everything that happened to it."""
    b = bridge(ctx)
    store = b.store
    row = store.lead(normalize_email(email), pipeline)
    if row is None:
        fail(
            f"no lead {email!r} in pipeline {pipeline!r}",
            hint="emails are matched lower-cased and trimmed",
        )
    with store.engine.connect() as conn:
        links = store.links_of(conn, [row.id]).get(row.id, [])
        outcomes = store.outcomes_of(conn, [row.id]).get(row.id, [])
    handoffs = store.handoffs_of(row.id)
    journey = store.journey(row.id)
    if as_json:
        data = {
            "lead": jsonable(row.__dict__ if hasattr(row, "__dict__") else _slots(row)),
            "links": [jsonable(_slots(link)) for link in links],
            "handoffs": [jsonable(_slots(h)) for h in handoffs],
            "outcomes": [jsonable(_slots(o)) for o in outcomes],
            "journey": [jsonable(_slots(e)) for e in journey],
        }
        console.print_json(json.dumps(data, default=str))
        return
    out = console.print
    out(
        f"[bold]{escape(row.email)}[/]  crmbridge id {row.crmbridge_id}, pipeline {row.pipeline}",
        highlight=False,
    )
    out(
        f"stage: [bold]{row.stage}[/]   score {row.score} "
        f"(fit {row.fit}, engagement {row.engagement})",
        highlight=False,
    )
    out(f"why: {escape(row.why or '-')}", highlight=False)
    out(
        f"definition: version {row.definition_version}; recycled {row.recycles} time(s)",
        highlight=False,
    )
    for link in links:
        state = (
            "deleted " + _t(link.deleted_at)
            if link.deleted_at
            else "last seen " + _t(link.native_modified_at)
        )
        out(
            f"{link.system}: record {link.native_id} ({state}; "
            f"crmbridge last wrote {_t(link.written_at)})",
            highlight=False,
        )
    if handoffs:
        h = handoffs[-1]
        owner = h.owner or f"{h.sales_system}'s assignment rules"
        if h.outcome:
            clock = f"answered {h.outcome} at {_t(h.outcome_at)}"
        elif h.sla_breached_at:
            clock = f"SLA BREACHED (due {_t(h.sla_due_at)})"
        else:
            clock = f"waiting for sales, SLA due {_t(h.sla_due_at)}"
        out(f"handoff: to {escape(owner)} at {_t(h.handed_off_at)}; {clock}", highlight=False)
    table = Table("when", "what", "by", "details", title="journey", title_justify="left")
    for e in journey:
        by = e.actor or e.system or ""
        table.add_row(_t(e.at), e.kind, escape(by), escape(e.summary))
    out(table)


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in getattr(obj, "__slots__", ())} or dict(vars(obj))


@app.command()
@reports_errors
def report(
    ctx: typer.Context,
    pipeline: PipelineOption = "default",
    as_json: JsonOption = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page.")
    ] = None,
) -> None:
    """The funnel by stage and source, conversion, reasons, SLA breaches, time to first touch."""
    b = bridge(ctx)
    result = build_report(b.store, b.definition, pipeline, b.clock())
    if html is not None:
        html.write_text(render_html(result), encoding="utf-8")
        console.print(f"wrote {html}", highlight=False)
    if as_json:
        console.print_json(json.dumps(result.to_dict(), default=str))
    elif html is None:
        console.print(escape(render_text(result)), highlight=False)


@quarantine_app.command("list")
@reports_errors
def quarantine_list(
    ctx: typer.Context,
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    status: Annotated[str, typer.Option(help="open, retry, dropped, resolved or all")] = "open",
    as_json: JsonOption = False,
) -> None:
    """Records held back, with the field and the rule they broke."""
    b = bridge(ctx)
    entries = b.store.quarantined(status=None if status == "all" else status, pipeline=pipeline)
    if as_json:
        console.print_json(json.dumps([jsonable(_slots(q)) for q in entries], default=str))
        return
    table = Table("id", "system", "record", "where", "email", "field", "rule", "tries", "error")
    for q in entries:
        table.add_row(
            str(q.id),
            q.system,
            q.native_id,
            q.stage,
            escape(q.email or "-"),
            escape(q.field or "-"),
            escape(q.rule or "-"),
            str(q.attempts),
            escape(q.error[:120]),
        )
    console.print(table)
    console.print(f"{len(entries)} record(s) {status}", highlight=False)


@quarantine_app.command("show")
@reports_errors
def quarantine_show(ctx: typer.Context, entry: int) -> None:
    """One quarantined record: the error in full and the record as it was read."""
    b = bridge(ctx)
    q = b.store.quarantined_one(entry)
    if q is None:
        fail(f"no quarantine entry {entry}")
    console.print(
        f"#{q.id} {q.system} record {q.native_id} ({q.stage}), status {q.status}, "
        f"tried {q.attempts} time(s)",
        highlight=False,
    )
    console.print(f"field {q.field}, rule {q.rule}: {escape(q.error)}", highlight=False)
    console.print_json(json.dumps(q.raw, default=str))


@quarantine_app.command("retry")
@reports_errors
def quarantine_retry(ctx: typer.Context, entries: list[int]) -> None:
    """Try these records again at the next cycle (after fixing the data or the definition)."""
    b = bridge(ctx)
    chosen = [b.store.quarantined_one(e) for e in entries]
    missing = [e for e, q in zip(entries, chosen, strict=True) if q is None]
    if missing:
        fail(f"no quarantine entry {', '.join(map(str, missing))}")
    changed = b.store.set_quarantine_status(entries, "retry")
    for q in chosen:
        if q is not None and q.stage.endswith(" update") and q.email:
            row = b.store.lead(q.email, q.pipeline)
            if row is not None:
                with b.store.transaction() as conn:
                    b.store.set_dirty(conn, [row.id], q.stage.split()[0], True)
    console.print(f"{changed} record(s) will be retried at the next cycle", highlight=False)


@quarantine_app.command("drop")
@reports_errors
def quarantine_drop(ctx: typer.Context, entries: list[int]) -> None:
    """Stop listing these records (they are kept, marked dropped)."""
    b = bridge(ctx)
    changed = b.store.set_quarantine_status(entries, "dropped")
    console.print(f"{changed} record(s) dropped", highlight=False)


@app.command()
@reports_errors
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Pipelines, their last runs, who holds them, and what is waiting (on the scaled runtime also
    their lag, the locks held, stuck and failed jobs, and the workers alive)."""
    from crmbridge.sync import load_pipelines

    b = bridge(ctx)
    if b.settings.runtime == "procrastinate":
        from crmbridge.runtime.scaled.adapter import ScaledRuntime
        from crmbridge.runtime.scaled.status import render_status, scaled_status

        ScaledRuntime(b)  # checks the settings: PostgreSQL, the worker timeout
        try:
            report = scaled_status(b)
        finally:
            b.store.close()
        if as_json:
            console.print_json(json.dumps(report, default=str))
        else:
            render_status(console, report)
        return
    rows: list[dict[str, Any]] = []
    now = b.clock()
    for p in load_pipelines(b.settings):
        runs = b.store.runs(p.name, limit=1)
        lease = b.store.lease(p.name)
        held = lease is not None and lease.expires_at > now
        rows.append(
            {
                "pipeline": p.name,
                "marketing": p.marketing,
                "sales": p.sales,
                "last_run": runs[0].started_at if runs else None,
                "last_status": runs[0].status if runs else None,
                "held_by": lease.owner if held and lease else None,
                "quarantined": len(b.store.quarantined(pipeline=p.name)),
            }
        )
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table("pipeline", "marketing → sales", "last run", "status", "held by", "quarantined")
    for r in rows:
        table.add_row(
            r["pipeline"],
            f"{r['marketing']} → {r['sales']}",
            _t(r["last_run"]),
            r["last_status"] or "-",
            r["held_by"] or "-",
            str(r["quarantined"]),
        )
    console.print(table)
