"""``crmbridge report``: the funnel by stage and by source, MQL → SAL → SQL → won conversion,
acceptance and rejection reasons, SLA breaches, and the time sales took to first answer.

Rendered as text, as JSON, or as one self-contained HTML page with a funnel chart; every value
that came from a system is escaped in the HTML (a lead named ``<script>`` or ``=HYPERLINK(...)``
shows as text, and a value a spreadsheet would take for a formula is shown after a ``'``).
"""

from __future__ import annotations

import html
import itertools
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from crmbridge.definition import LeadDefinition
from crmbridge.store import Store
from crmbridge.store import tables as t

STEPS = ("handed off (MQL)", "accepted (SAL)", "converted (SQL)", "won")


@dataclass
class Report:
    """The numbers ``crmbridge report`` shows."""

    pipeline: str
    generated_at: str
    definition_version: str
    leads: int
    by_stage: dict[str, int]
    by_source: dict[str, dict[str, int]]
    funnel: dict[str, int]
    conversion: dict[str, float | None]
    outcomes: dict[str, int]
    rejection_reasons: dict[str, int]
    loss_reasons: dict[str, int]
    handoffs: int
    sla_breaches: int
    open_breaches: int
    first_touch_minutes: dict[str, float | None] = field(default_factory=dict)
    quarantined: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(store: Store, definition: LeadDefinition, pipeline: str, now: datetime) -> Report:
    """Compute the report from the store (one pass over leads, handoffs and outcomes)."""
    with store.engine.connect() as conn:
        by_stage: dict[str | None, int] = dict(
            conn.execute(
                select(t.leads.c.stage, func.count())
                .where(t.leads.c.pipeline == pipeline)
                .group_by(t.leads.c.stage)
            ).all()
        )
        sources: dict[int, str] = {}
        stage_of: dict[int, str | None] = {}
        for row in conn.execute(
            select(t.leads.c.id, t.leads.c.stage, t.leads.c.fields).where(
                t.leads.c.pipeline == pipeline
            )
        ):
            sources[row.id] = str((row.fields or {}).get("lead_source") or "unknown")
            stage_of[row.id] = row.stage
        handoffs = conn.execute(select(t.handoffs).where(t.handoffs.c.pipeline == pipeline)).all()
        outcomes = conn.execute(select(t.outcomes).where(t.outcomes.c.pipeline == pipeline)).all()
        quarantined = conn.execute(
            select(func.count())
            .select_from(t.quarantine)
            .where(t.quarantine.c.pipeline == pipeline, t.quarantine.c.status == "open")
        ).scalar_one()
    handed = {h.lead_id for h in handoffs}
    kinds: dict[str, set[int]] = {}
    for o in outcomes:
        if o.handoff_id is not None:  # the funnel follows the leads crmbridge handed over
            kinds.setdefault(o.kind, set()).add(o.lead_id)
    accepted = (
        kinds.get("accepted", set()) | kinds.get("converted", set()) | kinds.get("won", set())
    )
    converted = kinds.get("converted", set()) | kinds.get("won", set())
    won = kinds.get("won", set())
    funnel = dict(zip(STEPS, (len(handed), len(accepted), len(converted), len(won)), strict=True))
    steps = list(funnel.values())
    conversion = {
        f"{a} → {b}": (round(steps[i + 1] / steps[i], 3) if steps[i] else None)
        for i, (a, b) in enumerate(itertools.pairwise(STEPS))
    }
    by_source: dict[str, dict[str, int]] = {}
    for lead_id, source in sources.items():
        tally = by_source.setdefault(source, {"leads": 0, **dict.fromkeys(STEPS, 0)})
        tally["leads"] += 1
        for step, members in zip(STEPS, (handed, accepted, converted, won), strict=True):
            tally[step] += lead_id in members
    reasons = Counter((o.kind, o.reason) for o in outcomes if o.reason)
    labels = {code: spec.label for code, spec in definition.reasons.items()}
    touches = [
        (h.accepted_at or h.outcome_at) - h.handed_off_at
        for h in handoffs
        if (h.accepted_at or h.outcome_at) is not None
    ]
    minutes = sorted(d.total_seconds() / 60 for d in touches)
    return Report(
        pipeline=pipeline,
        generated_at=now.isoformat(timespec="seconds"),
        definition_version=definition.version,
        leads=len(sources),
        by_stage={
            str(k): v for k, v in sorted(by_stage.items(), key=lambda kv: _order(definition, kv[0]))
        },
        by_source=dict(sorted(by_source.items())),
        funnel=funnel,
        conversion=conversion,
        outcomes=dict(Counter(o.kind for o in outcomes)),
        rejection_reasons={
            labels.get(r, r): n for (k, r), n in reasons.most_common() if k == "rejected"
        },
        loss_reasons={labels.get(r, r): n for (k, r), n in reasons.most_common() if k == "lost"},
        handoffs=len(handoffs),
        sla_breaches=sum(1 for h in handoffs if h.sla_breached_at is not None),
        open_breaches=sum(
            1 for h in handoffs if h.sla_breached_at is not None and h.outcome is None
        ),
        first_touch_minutes={
            "median": round(statistics.median(minutes), 1) if minutes else None,
            "p90": round(minutes[int(0.9 * (len(minutes) - 1))], 1) if minutes else None,
            "answered": len(minutes),
        },
        quarantined=int(quarantined),
    )


def _order(definition: LeadDefinition, stage: str | None) -> tuple[int, str]:
    if stage is None or stage not in definition.stages:
        return (99, str(stage))
    position = definition.stages[stage].position
    return (position if position is not None else 50, stage)


def render_text(report: Report) -> str:
    """A plain-text report for the terminal."""
    lines = [
        f"crmbridge report — pipeline {report.pipeline}, {report.generated_at}, "
        f"definition {report.definition_version}",
        "",
        f"leads: {report.leads} (quarantined: {report.quarantined})",
        "by stage: " + ", ".join(f"{k} {v}" for k, v in report.by_stage.items()),
        "",
        "funnel:",
    ]
    widest = max(report.funnel.values(), default=0) or 1
    for step, n in report.funnel.items():
        lines.append(f"  {step:<18} {n:>7}  {'█' * max(0, round(30 * n / widest))}")
    for step, rate in report.conversion.items():
        lines.append(f"  {step:<40} {'-' if rate is None else f'{rate:.0%}'}")
    lines += [
        "",
        f"handoffs: {report.handoffs}, SLA breaches: {report.sla_breaches} "
        f"({report.open_breaches} still unanswered)",
    ]
    touch = report.first_touch_minutes
    if touch.get("median") is not None:
        lines.append(f"time to first touch: median {touch['median']} min, p90 {touch['p90']} min")
    if report.rejection_reasons:
        lines.append(
            "rejections: " + ", ".join(f"{k} {v}" for k, v in report.rejection_reasons.items())
        )
    if report.loss_reasons:
        lines.append("losses: " + ", ".join(f"{k} {v}" for k, v in report.loss_reasons.items()))
    lines += ["", "by source:"]
    for source, row in report.by_source.items():
        lines.append(
            f"  {source:<18} leads {row['leads']:>6}, " + ", ".join(f"{s} {row[s]}" for s in STEPS)
        )
    return "\n".join(lines)


def render_html(report: Report) -> str:
    """One self-contained HTML page (inline CSS and SVG, no scripts), every value escaped."""
    e = html.escape
    widest = max(report.funnel.values(), default=0) or 1
    bars = []
    for i, (step, n) in enumerate(report.funnel.items()):
        width = max(2, round(560 * n / widest))
        x = (600 - width) // 2
        y = 10 + i * 52
        bars.append(
            f'<rect x="{x}" y="{y}" width="{width}" height="40" rx="4" fill="#2f6fb0"></rect>'
            f'<text x="300" y="{y + 26}" text-anchor="middle" fill="#fff">{e(step)}: {n}</text>'
        )
    chart = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{20 + 52 * len(bars)}" '
        f'role="img" aria-label="funnel">{"".join(bars)}</svg>'
    )

    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{e(str(h))}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    conversion = [[k, "-" if v is None else f"{v:.0%}"] for k, v in report.conversion.items()]
    sources = [[s, r["leads"], *(r[step] for step in STEPS)] for s, r in report.by_source.items()]
    touch = report.first_touch_minutes
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>crmbridge report: {e(report.pipeline)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 900px; color: #222 }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem }}
td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; text-align: left }}
th {{ background: #f2f4f7 }}
.kpi {{ display: inline-block; margin-right: 2rem }}
.kpi b {{ display: block; font-size: 1.6rem }}
</style></head><body>
<h1>crmbridge report — {e(report.pipeline)}</h1>
<p>{e(report.generated_at)} · lead definition {e(report.definition_version)}</p>
<p><span class="kpi"><b>{report.leads}</b>leads</span>
<span class="kpi"><b>{report.handoffs}</b>handoffs</span>
<span class="kpi"><b>{report.sla_breaches}</b>SLA breaches</span>
<span class="kpi"><b>{e(str(touch.get("median") or "-"))}</b>median minutes to first touch</span>
<span class="kpi"><b>{report.quarantined}</b>quarantined</span></p>
<h2>Funnel</h2>{chart}
{table(["step", "conversion"], conversion)}
<h2>By stage</h2>{table(["stage", "leads"], _rows(report.by_stage))}
<h2>By source</h2>{table(["source", "leads", *STEPS], sources)}
<h2>Why sales rejected</h2>{table(["reason", "leads"], _rows(report.rejection_reasons))}
<h2>Why deals were lost</h2>{table(["reason", "deals"], _rows(report.loss_reasons))}
</body></html>
"""


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?[0-9.,]+%?")


def _cell(value: Any) -> str:
    """A table cell's text, escaped; text a spreadsheet would read as a formula (``=``, ``+``,
    ``-``, ``@`` first, as OWASP lists them) is shown after a ``'``, so a page pasted into one
    stays text. Plain numbers such as ``-1`` are left as they are."""
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        text = "'" + text
    return html.escape(text)


def _rows(counts: dict[str, int]) -> list[list[Any]]:
    return [[k, v] for k, v in counts.items()]
