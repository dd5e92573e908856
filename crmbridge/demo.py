"""The live demo: the sandboxes with seeded demo data, the daemon on the embedded runtime, a
simulated sales team and marketing team, and a live feed of the loop closing.

Demo time runs faster than real time (120 times by default: an hour of SLA passes every half
minute), on both sides: crmbridge's clock and the emulators' clocks move together, so a
demo-request lead sales ignores breaches its one-hour SLA about half a minute after its handoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from crmbridge.app import CrmBridge
from crmbridge.context import HookContext, RunCounts
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Handoff, Lead, Outcome
from crmbridge.logs import configure_logging
from crmbridge.plugins import sandbox_classes
from crmbridge.report import build_report, render_html, render_text
from crmbridge.runtime import Daemon
from crmbridge.settings import load_settings
from crmbridge.store import Store
from crmbridge.store import tables as t
from crmbridge.testing.sandbox import SandboxControl

REJECTIONS = ("No Budget", "Bad Timing", "Not Decision Maker", "Not a Fit", "Competitor")
LOSSES = ("Price", "Competitor", "No Decision", "Timing")
FORMS = ("Demo Request", "Pricing Page", "Webinar Registration", "Ebook Download")


class WarpClock:
    """Demo time: real time, ``speed`` times faster, shared with the emulators."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.started = time.monotonic()
        self.origin = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            elapsed = time.monotonic() - self.started
        return self.origin + timedelta(seconds=elapsed * self.speed)

    def restart(self) -> None:
        """Demo time starts now (setting up the sandboxes does not count)."""
        with self._lock:
            self.started = time.monotonic()
            self.origin = datetime.now(UTC)

    def offset_seconds(self) -> float:
        """How far demo time is ahead of real time."""
        return (self() - datetime.now(UTC)).total_seconds()


@dataclass(eq=False)  # a plugin must be hashable: pluggy keeps plugins in sets
class Feed:
    """A crmbridge plugin printing the loop as it closes (a plugin like any other)."""

    console: Console
    clock: Callable[[], datetime]
    counts: RunCounts = field(default_factory=RunCounts)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _say(self, mark: str, text: str) -> None:
        stamp = self.clock().strftime("%H:%M")
        with self.lock:
            self.console.print(f"[dim]{stamp}[/] {mark} {text}", highlight=False)

    @hookimpl
    def crm_after_handoff(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        due = (handoff.sla_due_at - handoff.handed_off_at).total_seconds() / 3600
        self._say(
            "[cyan]→[/]",
            f"handed off [bold]{lead.email}[/] to {handoff.sales_system} "
            f"(score {lead.score}, SLA {due:g} h)",
        )

    @hookimpl
    def crm_handoff_outcome(
        self, ctx: HookContext, lead: Lead, handoff: Handoff, outcome: Outcome
    ) -> None:
        reason = f" — {outcome.reason}" if outcome.reason else ""
        amount = f" — {outcome.amount:,.0f}" if outcome.amount else ""
        colour = {"won": "green", "accepted": "green", "converted": "green"}.get(
            str(outcome.kind), "yellow"
        )
        self._say(
            f"[{colour}]←[/]",
            f"sales [bold]{outcome.kind}[/] {lead.email}{reason}{amount}; marketing now shows "
            f"stage {lead.stage}",
        )

    @hookimpl
    def crm_sla_breached(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        self._say(
            "[red]✗[/]",
            f"SLA breached: {lead.email} handed off {handoff.handed_off_at:%H:%M}, due "
            f"{handoff.sla_due_at:%H:%M}, no answer — flagged in both systems",
        )

    @hookimpl
    def crm_cycle_finished(self, ctx: HookContext, counts: RunCounts) -> None:
        with self.lock:
            self.counts.add(counts)


class SalesTeam(threading.Thread):
    """Reps who work what crmbridge hands them: accept, reject with a reason, convert and close,
    or ignore (and let the SLA run out)."""

    def __init__(self, store: Store, pipeline: str, salesforce: SandboxControl, seed: int) -> None:
        super().__init__(name="demo-sales-team", daemon=True)
        self.store = store
        self.pipeline = pipeline
        self.sf = salesforce
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.decided: dict[str, str] = {}
        self.opportunities: dict[str, str] = {}
        self.errors = 0

    def run(self) -> None:
        while not self.stop_event.wait(2.0):
            self.work()

    def work(self) -> None:
        with self.store.engine.connect() as conn:
            open_handoffs = conn.execute(
                select(t.handoffs.c.native_id).where(
                    t.handoffs.c.pipeline == self.pipeline,
                    t.handoffs.c.native_id.is_not(None),
                    t.handoffs.c.closed.is_(False),
                )
            ).all()
        for (lead_id,) in open_handoffs:
            try:
                self._work_one(lead_id)
            except Exception:  # noqa: BLE001 - a rep's click failing must not end the demo
                self.errors += 1

    def _work_one(self, lead_id: str) -> None:
        choice = self.decided.get(lead_id)
        if choice is None:
            choice = self.rng.choices(("accept", "reject", "convert", "ignore"), (35, 25, 25, 15))[
                0
            ]
            self.decided[lead_id] = choice
            if choice == "accept":
                self.sf.control("set_lead_status", lead_id=lead_id, status="Working - Contacted")
            elif choice == "reject":
                self.sf.control(
                    "set_lead_status",
                    lead_id=lead_id,
                    status="Closed - Not Converted",
                    reason=self.rng.choice(REJECTIONS),
                )
            elif choice == "convert":
                ids = self.sf.control(
                    "convert_lead",
                    lead_id=lead_id,
                    amount=float(self.rng.randrange(8, 90) * 1000),
                )
                if ids.get("opportunity_id") or ids.get("opportunityId"):
                    self.opportunities[lead_id] = ids.get("opportunity_id") or ids["opportunityId"]
            return
        opportunity = self.opportunities.pop(lead_id, None)
        if opportunity is not None:
            won = self.rng.random() < 0.6
            self.sf.control(
                "close_opportunity",
                opportunity_id=opportunity,
                won=won,
                loss_reason=None if won else self.rng.choice(LOSSES),
            )


class MarketingTeam(threading.Thread):
    """New form submissions and engagement arriving in HubSpot while the demo runs."""

    def __init__(self, hubspot: SandboxControl, seed: int) -> None:
        super().__init__(name="demo-marketing", daemon=True)
        self.hs = hubspot
        self.rng = random.Random(seed + 1)
        self.stop_event = threading.Event()
        self.submitted = 0

    def run(self) -> None:
        n = 0
        while not self.stop_event.wait(3.0):
            n += 1
            company = self.rng.choice(("Northwind", "Contoso", "Initech", "Umbrella", "Hooli"))
            email = f"visitor{n}.{self.rng.randrange(10**6)}@{company.lower()}.example.com"
            try:
                self.hs.control(
                    "submit_form",
                    email=email,
                    form=self.rng.choice(FORMS),
                    properties={
                        "firstname": self.rng.choice(("Ana", "Bjørn", "Chen", "Dalia", "Émile")),
                        "lastname": self.rng.choice(("Ng", "O'Brien", "Şahin", "Müller", "Okafor")),
                        "company": f"{company} {self.rng.choice(('Inc', 'GmbH', 'Ltd'))}",
                        "jobtitle": self.rng.choice(
                            ("VP Sales", "Head of Marketing", "CTO", "Analyst")
                        ),
                        "industry": "Software",
                        "numemployees": self.rng.choice(("100-500", "500-1000", "1000+")),
                        "country": self.rng.choice(("US", "GB", "DE")),
                        "lead_source": "demo_request",
                        "lifecyclestage": "lead",
                    },
                )
                self.submitted += 1
            except Exception:  # noqa: BLE001 - a visitor's failed form must not end the demo
                continue


def run_demo(
    workdir: Path,
    *,
    duration: float = 100.0,
    leads: int = 300,
    seed: int = 42,
    speed: float = 120.0,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the whole demo; returns the final report as a dict."""
    from crmbridge.cli.sandbox_cmd import Sandboxes, write_env
    from crmbridge.plugins import make_plugin_manager

    out = console or Console()
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("crmbridge.sqlite3*"):
        old.unlink()
    configure_logging("WARNING")
    clock = WarpClock(speed)
    classes = sandbox_classes(make_plugin_manager())
    missing = {"hubspot", "salesforce"} - set(classes)
    if missing:
        raise RuntimeError(f"the demo needs the {', '.join(sorted(missing))} sandbox plugin(s)")
    options = {"hubspot": {"search_index_lag_ms": 200}}
    out.print("[bold]crmbridge demo[/]: starting the Salesforce and HubSpot sandboxes …")
    boxes = Sandboxes().start(classes, options=options, latency_ms=15)
    daemon: Daemon | None = None
    runner: threading.Thread | None = None
    teams: list[Any] = []
    try:
        hubspot, salesforce = boxes.running["hubspot"].control, boxes.running["salesforce"].control
        seeded = {
            name: p.control.control("seed_demo", count=leads, seed=seed)
            for name, p in boxes.running.items()
        }
        out.print(f"seeded demo data: {seeded}", highlight=False)
        env_file = workdir / "demo.env"
        write_env(
            env_file,
            boxes.env(options),
            {
                "CRMBRIDGE_DATABASE_URL": f"sqlite:///{workdir / 'crmbridge.sqlite3'}",
                "CRMBRIDGE_PIPELINE__NAME": "demo",
                "CRMBRIDGE_PIPELINE__POLL_SECONDS": "3",
                "CRMBRIDGE_LOG_LEVEL": "WARNING",
            },
        )
        bridge = CrmBridge(load_settings([env_file]), clock=clock)
        feed = Feed(out, clock)
        bridge.pm.register(feed, name="demo-feed")
        for name in ("hubspot", "salesforce"):
            with bridge.connector(name) as connector:
                report = connector.setup()
                if report.created:
                    out.print(
                        f"set up {name}: created {', '.join(report.created)}", highlight=False
                    )
        store = bridge.store
        daemon = Daemon(bridge)
        sales_team = SalesTeam(store, "demo", salesforce, seed)
        marketers = MarketingTeam(hubspot, seed)
        teams = [sales_team, marketers]
        warp = threading.Thread(
            target=_keep_in_step, args=(clock, boxes, daemon.stop_event), daemon=True
        )
        out.print(
            f"demo time runs {speed:g} times faster than real time; running for {duration:g} s "
            f"(about {duration * speed / 3600:.1f} demo hours)\n",
            highlight=False,
        )
        runner = threading.Thread(target=daemon.run, name="crmbridge-daemon", daemon=True)
        clock.restart()
        runner.start()
        warp.start()
        for team in teams:
            team.start()
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and runner.is_alive():
            time.sleep(0.5)
    finally:
        for team in teams:
            team.stop_event.set()
        if daemon is not None:
            daemon.stop_event.set()
        if runner is not None:
            runner.join(timeout=120)
        boxes.stop()
    final = build_report(store, bridge.definition, "demo", clock())
    out.print()
    out.print(render_text(final), highlight=False)
    html = workdir / "demo-report.html"
    html.write_text(render_html(final), encoding="utf-8")
    out.print(
        f"\nthe report as a page: {html}\nthe journey of one lead: crmbridge --env-file "
        f"{env_file} lead show EMAIL --pipeline demo",
        highlight=False,
    )
    return final.to_dict()


def _keep_in_step(clock: WarpClock, boxes: Any, stop: threading.Event) -> None:
    """Move the emulators' clocks along with demo time."""
    applied = 0.0
    while not stop.wait(1.0):
        target = clock.offset_seconds()
        step = target - applied
        if step <= 0:
            continue
        for proc in boxes.running.values():
            try:
                proc.control.advance_clock(step)
            except OSError:
                return
        applied = target
