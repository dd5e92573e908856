"""One seeded scenario of the whole loop, and the state it ends in.

Both sandboxes run as processes of their own with state files (they are the systems crmbridge
talks to, not the process a test kills). The scenario seeds them with ``leads`` demo leads, runs a
backfill, then ``rounds`` rounds of: a marketing team acting in HubSpot (form submissions, new
engagement, edits), a sales team acting in Salesforce on what crmbridge handed them (accept,
reject with a reason, convert, win, lose, or ignore), and a sync cycle. It ends by syncing until a
cycle finds nothing left to do.

Every action is drawn from the seed and from the state *at the start of a round*, which two runs
of the same seed share, never from wall time: a run that was killed and restarted sees the same
actions as a clean one. Part of each round's sales actions (``down``) happen while crmbridge is
down: right after a kill when the round has one, else after its sync. Leads acted on while down
are left alone the next round, so every action is seen on its own by a sync in both runs, even if
one run saw it a round earlier.

:func:`capture` reads the final state of both emulators and of the store as comparable data, and
:func:`compare` says what one run lost, duplicated or changed against another. *Identical* means:

* Salesforce: one Lead per crmbridge id (``CrmBridge_Id__c``) and per email, each with the same
  status, conversion, reasons, fields and crmbridge fields; the same opportunities (stage,
  amount, loss reason) per converted lead; the same number of leads crmbridge does not know;
* HubSpot: one contact per email with the same lifecycle stage, lead status and ``crmbridge_*``
  properties, and the same sequence of outcomes written to ``crmbridge_outcome`` (each verdict
  written back once, in order);
* the store: the same leads (stage, scores, fields, recycles), handoffs (owner, outcome, reason,
  closed) and outcomes (kind, reason, value, amount, stage) per lead, and the same open
  quarantine entries (system, record, stage, field, rule).

Times are not compared (when a handoff happened differs between any two runs), only whether a
time is there; nor are native ids, which each emulator hands out in the order it was written to.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmbridge.cli.sandbox_cmd import Sandboxes, write_env
from crmbridge.lead import normalize_email
from crmbridge.plugins import make_plugin_manager, sandbox_classes
from crmbridge.testing.sandbox import FaultKind, FaultRule, SandboxControl

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "configs" / "lead-definition.toml"
SINCE = "2000-01-01"
REJECTIONS = ("No Budget", "Bad Timing", "Not Decision Maker", "Not a Fit", "Competitor")
LOSSES = ("Price", "Competitor", "No Decision", "Timing")
TITLES = ("VP Sales", "Head of Marketing", "CTO", "Analyst", "Intern", "Director of IT")
COMPANIES = ("Northwind", "Contoso", "Initech", "Umbrella", "Hooli", "Globex")
FORMS = ("Demo Request", "Pricing Page", "Webinar Registration", "Ebook Download")
OPEN = "Open - Not Contacted"
WORKING = "Working - Contacted"
REJECTED = "Closed - Not Converted"
SF_LEAD_FIELDS = (
    "Id", "Email", "FirstName", "LastName", "Company", "Title", "Status", "IsConverted",
    "Rejection_Reason__c", "ConvertedOpportunityId", "CrmBridge_Id__c", "CrmBridge_Score__c",
    "CrmBridge_Stage__c", "CrmBridge_Why__c", "CrmBridge_Handoff_At__c", "CrmBridge_SLA_Due__c",
    "CrmBridge_SLA_Breached__c", "CrmBridge_Definition_Version__c", "Owner.Name",
)  # fmt: skip
FROZEN_AT_VERDICT = (
    "FirstName", "LastName", "Company", "Title", "CrmBridge_Score__c", "CrmBridge_Why__c",
    "CrmBridge_Stage__c",
)  # fmt: skip
"""What crmbridge stops writing to a Salesforce lead once sales closed it (converted: its contact
and opportunity are followed instead; rejected: it goes back to marketing's nurture). The values
it keeps depend on when sales gave its verdict relative to crmbridge's cycles, which the killed
run moves on purpose (people act while crmbridge is down), so they are not compared; the verdict
itself, the status, the reason and the opportunity are."""
HS_PROPERTIES = (
    "email", "firstname", "lastname", "company", "jobtitle", "lifecyclestage", "hs_lead_status",
    "crmbridge_id", "crmbridge_stage", "crmbridge_score", "crmbridge_why", "crmbridge_outcome",
    "crmbridge_outcome_reason", "crmbridge_owner", "crmbridge_deal_amount",
    "crmbridge_sla_breached", "crmbridge_definition_version", "crmbridge_handed_off_at",
    "crmbridge_sla_due_at", "crmbridge_accepted_at",
)  # fmt: skip
TIMES = frozenset(
    {
        "CrmBridge_Handoff_At__c", "CrmBridge_SLA_Due__c", "crmbridge_handed_off_at",
        "crmbridge_sla_due_at", "crmbridge_accepted_at",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    """What a scenario does; two runs with the same config see the same actions."""

    leads: int = 20_000
    seed: int = 2026
    rounds: int = 5
    acting: float = 0.35
    """The share of open handed-off leads a rep acts on in a round."""

    @property
    def forms(self) -> int:
        """New form submissions per round."""
        return max(4, self.leads // 500)

    @property
    def engaged(self) -> int:
        """Existing contacts that engage (page views, clicks) per round."""
        return max(4, self.leads // 250)

    @property
    def edits(self) -> int:
        """Handed-off contacts whose job title a marketer edits per round."""
        return max(2, self.leads // 1000)


# -- the systems -----------------------------------------------------------------------------------


class World:
    """Both sandboxes (processes with state files in ``workdir``) and the env file that points a
    crmbridge process at them and at a SQLite store in ``workdir``."""

    def __init__(self, workdir: Path, *, settings: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.settings = dict(settings or {})
        self.boxes = Sandboxes()
        self.env_file = workdir / "crmbridge.env"
        self.store_path = workdir / "store.sqlite3"

    def start(self) -> World:
        """Start both sandboxes (reusing their state files) and write the env file."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        classes = sandbox_classes(make_plugin_manager())
        chosen = {name: classes[name] for name in ("hubspot", "salesforce")}
        state = self.workdir / "sandboxes"
        state.mkdir(exist_ok=True)
        self.boxes.start(chosen, options=sandbox_options(), state_dir=state)
        write_env(self.env_file, self.boxes.env(sandbox_options()), self.env())
        return self

    def env(self) -> dict[str, str]:
        """crmbridge's settings for this world (besides where the sandboxes are)."""
        return {
            "CRMBRIDGE_DATABASE_URL": f"sqlite:///{self.store_path}",
            "CRMBRIDGE_DEFINITION": str(DEFINITION),
            "CRMBRIDGE_LOAD_PLUGINS": "hubspot,salesforce",
            "CRMBRIDGE_LOG_LEVEL": "WARNING",
            # A killed process's lease runs out soon, so its successor takes over quickly.
            "CRMBRIDGE_LEASE_SECONDS": "3",
            "CRMBRIDGE_HUBSPOT__LOOKBACK_SECONDS": "5",
            "CRMBRIDGE_SALESFORCE__LOOKBACK_SECONDS": "5",
            "CRMBRIDGE_SALESFORCE__BULK_POLL_SECONDS": "0.2",
            **fast_retries(),
            **self.settings,
        }

    @property
    def hubspot(self) -> SandboxControl:
        return self.boxes.running["hubspot"].control

    @property
    def salesforce(self) -> SandboxControl:
        return self.boxes.running["salesforce"].control

    def set_faults(self, rules: Mapping[str, list[FaultRule]], seed: int) -> None:
        """Fault rules per sandbox (``{"hubspot": [...], "salesforce": [...]}``)."""
        for name, box in self.boxes.running.items():
            box.control.set_faults(list(rules.get(name, [])), seed=seed)

    def stop(self) -> None:
        self.boxes.stop()


def sandbox_options() -> dict[str, dict[str, Any]]:
    """Both emulators as a real org has them: a duplicate rule on Lead email in Salesforce."""
    return {
        "hubspot": {"tier": "professional"},
        "salesforce": {"duplicate_rule_on_email": True, "bulk_job_delay_seconds": 0.1},
    }


def fast_retries() -> dict[str, str]:
    """Short waits for both connectors, so faults cost a test little time (a 429's
    ``Retry-After`` is still honoured up to a second)."""
    out: dict[str, str] = {}
    for system in ("HUBSPOT", "SALESFORCE"):
        out |= {
            f"CRMBRIDGE_{system}__RETRY_ATTEMPTS": "8",
            f"CRMBRIDGE_{system}__RETRY_BASE_SECONDS": "0.05",
            f"CRMBRIDGE_{system}__RETRY_CAP_SECONDS": "0.5",
            f"CRMBRIDGE_{system}__MAX_RETRY_AFTER_SECONDS": "1",
            f"CRMBRIDGE_{system}__RETRY_MAX_SECONDS": "30",
        }
    return out


def fault_rules(seed: int) -> dict[str, list[FaultRule]]:
    """The faults of the fault-equivalence scenario: 5 % 5xx, 2 % 429 with a short Retry-After,
    dropped connections before and after the request is handled (1 % each), a Salesforce session
    expiring every 37 calls, and 10 % of batch writes failing part of their records.

    Each kind also fires on fixed early calls, so a short run meets every kind at least once (a
    rule counts the requests it matched; the first rule that fires takes the request).
    """
    writes = r"batch/(update|upsert)$|composite/sobjects|jobs/ingest/[^/]+/batches$"

    def common() -> list[FaultRule]:
        return [
            FaultRule(kind=FaultKind.DROP_AFTER, path=writes, on_calls=(1,)),
            FaultRule(
                kind=FaultKind.PARTIAL, path=writes, probability=0.1, fail_share=0.1, on_calls=(2,)
            ),
            FaultRule(kind=FaultKind.STATUS, status=503, probability=0.05, on_calls=(3,)),
            FaultRule(
                kind=FaultKind.STATUS, status=429, retry_after=0.2, probability=0.02, on_calls=(5,)
            ),
            FaultRule(kind=FaultKind.DROP, probability=0.01, on_calls=(7,)),
            FaultRule(kind=FaultKind.DROP_AFTER, probability=0.01),
        ]

    expire = FaultRule(kind=FaultKind.EXPIRE_SESSION, on_calls=tuple(range(37, 100_000, 37)))
    return {"hubspot": common(), "salesforce": [expire, *common()]}


# -- running crmbridge -----------------------------------------------------------------------------


@dataclass
class KillPlan:
    """When to kill: seconds into the work of each attempt of each phase (counted from when its
    run is in the store, so a slow start-up of the interpreter cannot make a kill miss), drawn
    from the seed.

    ``delays[phase]`` are consumed in order, one per attempt. A kill whose moment comes after its
    attempt finished has missed; it is drawn again within the work of the next attempt (of this
    phase or a later one), so every planned kill lands somewhere; the scenario runs extra quiet
    syncs at the end while kills remain.
    """

    timings: dict[str, Timing]
    seed: int
    delays: dict[str, list[float]] = field(default_factory=dict)
    carried: int = 0
    landed: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:kills")
        # Only phases that record a run (backfill, sync) are killed; ``setup`` is not in scope.
        self.killable = {n: t for n, t in self.timings.items() if t.began > 0 and t.working > 0}

    @classmethod
    def draw(cls, kills: int, phases: Mapping[str, Timing], seed: int) -> KillPlan:
        """``kills`` moments spread over the phases in proportion to how long each worked in a
        clean run, each within the phase's work (counted from its run's start)."""
        plan = cls(dict(phases), seed)
        names = list(plan.killable)
        weights = [plan.killable[n].working for n in names]
        for _ in range(kills if names else 0):
            phase = plan.rng.choices(names, weights)[0]
            plan.delays.setdefault(phase, []).append(plan._moment(plan.killable[phase]))
        for delays in plan.delays.values():
            delays.sort()
        return plan

    def _moment(self, timing: Timing) -> float:
        return self.rng.uniform(0.0, 1.0) * timing.working

    def next_delay(self, phase: str) -> float | None:
        queue = self.delays.setdefault(phase, [])
        if self.carried:
            self.carried -= 1
            timing = self.killable.get(phase) or self.quietest()
            queue.insert(0, self._moment(timing))
        return queue.pop(0) if queue else None

    def quietest(self) -> Timing:
        """The clean run's shortest killable phase (a sync with nothing to do)."""
        return min(self.killable.values(), key=lambda t: t.took)

    def missed(self, _delay: float) -> None:
        self.carried += 1

    def carry_over(self) -> None:
        """Kills planned for phases that will not run again (a phase of the clean run the killed
        run did not need) land in the quiet syncs at the end instead."""
        self.carried += sum(len(d) for d in self.delays.values())
        self.delays.clear()

    @property
    def remaining(self) -> int:
        return self.carried + sum(len(d) for d in self.delays.values())


@dataclass(frozen=True)
class Timing:
    """How long a phase's process took: ``began`` seconds to start up (until its run was in the
    store), ``took`` seconds in all."""

    began: float
    took: float

    @property
    def working(self) -> float:
        return max(0.0, self.took - self.began)


class Crmbridge:
    """Runs ``crmbridge`` commands as processes against a world; kills them as planned.

    :param on_kill: called once per phase, right after the first kill in it (while no crmbridge
        process runs): the scenario acts then as people do while a system is down.
    """

    def __init__(
        self, world: World, plan: KillPlan | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.world = world
        self.plan = plan
        self.log = log
        self.timings: dict[str, Timing] = {}
        self.attempts: Counter[str] = Counter()

    def command(self, *args: str) -> list[str]:
        env_file = str(self.world.env_file)
        return [sys.executable, "-m", "crmbridge.cli", "--env-file", env_file, *args]

    def run(
        self, phase: str, args: Sequence[str], on_kill: Callable[[], None] | None = None
    ) -> str:
        """Run the command until it exits 0, killing and restarting it as planned; its output."""
        acted = False
        while True:
            self.attempts[phase] += 1
            delay = self.plan.next_delay(phase) if self.plan else None
            killed, code, output, timing = self._attempt(args, delay)
            if killed:
                assert delay is not None
                assert self.plan is not None
                self.plan.landed.append((phase, delay))
                self.log(
                    f"  killed {phase} {delay:.2f} s into its run (kill {len(self.plan.landed)})"
                )
                if on_kill is not None and not acted:
                    acted = True
                    on_kill()
                continue
            if delay is not None and self.plan is not None:
                self.plan.missed(delay)
            if code == 0:
                break
            if "is held by" in output:
                time.sleep(0.5)  # the killed process's lease has not run out yet
                continue
            raise RuntimeError(f"crmbridge {' '.join(args)} failed ({code}):\n{output}")
        if on_kill is not None and not acted:
            on_kill()
        self.timings[phase] = timing
        return output

    def _attempt(self, args: Sequence[str], delay: float | None) -> tuple[bool, int, str, Timing]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBRIDGE_")}
        env["COLUMNS"] = "200"
        runs = run_count(self.world.store_path)
        began: float | None = None
        with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                self.command(*args), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
            killed = False
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if began is None and run_count(self.world.store_path) > runs:
                    began = elapsed
                if delay is not None and began is not None and elapsed - began >= delay:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed = True
                    break
                time.sleep(0.01)
            took = time.monotonic() - started
            out.seek(0)
            output = out.read()
        return killed, proc.returncode, output, Timing(min(began or 0.0, took), took)


def run_count(store_path: Path) -> int:
    """Runs the store has recorded (0 before it exists): a new one means a process is at work."""
    if not store_path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=1) as db:
            (count,) = db.execute("SELECT count(*) FROM runs").fetchone()
    except sqlite3.OperationalError:
        return 0  # not migrated yet, or busy: no new run seen this time
    return int(count)


# -- people ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One thing a person does: ``kind`` on the record ``key`` (a crmbridge id or an email)."""

    kind: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


class People:
    """The marketing and sales teams of one run, acting through the sandboxes' control APIs."""

    def __init__(self, world: World, config: Config) -> None:
        self.world = world
        self.config = config
        self.left_alone: set[str] = set()

    # -- planning ------------------------------------------------------------------------------

    def plan(self, round_no: int) -> tuple[list[Action], list[Action]]:
        """This round's actions: those before the sync, and those while crmbridge is down."""
        rng = random.Random(f"{self.config.seed}:round:{round_no}")
        before = self._marketing(rng, round_no)
        sales = self._sales(rng)
        down = [a for a in sales if rng.random() < 0.5]
        before += [a for a in sales if a not in down]
        self.left_alone = {a.key for a in down}
        return before, down

    def _marketing(self, rng: random.Random, round_no: int) -> list[Action]:
        contacts = self.world.hubspot.control(
            "export_contacts", properties=["email", "crmbridge_handed_off_at"]
        )
        emails = sorted(
            str(c["properties"]["email"]) for c in contacts if c["properties"].get("email")
        )
        # Handed off, by the time crmbridge wrote with the handoff (its id alone is written to
        # other contacts too, sooner or later depending on how many cycles ran).
        handed = sorted(
            str(c["properties"]["email"])
            for c in contacts
            if c["properties"].get("crmbridge_handed_off_at") and c["properties"].get("email")
        )
        actions = []
        for i in range(self.config.forms):
            company = rng.choice(COMPANIES)
            senior = rng.random() < 0.6
            actions.append(
                Action(
                    "submit",
                    f"visitor{round_no}.{i}.{rng.randrange(10**6)}@{company.lower()}.example.com",
                    {
                        "form": "Demo Request" if senior else rng.choice(FORMS),
                        "properties": {
                            "firstname": rng.choice(("Ana", "Bjørn", "Chen", "Dalia", "Émile")),
                            "lastname": rng.choice(("Ng", "O'Brien", "Şahin", "Müller", "Okafor")),
                            "company": f"{company} {rng.choice(('Inc', 'GmbH', 'Ltd'))}",
                            "jobtitle": rng.choice(TITLES[:3] if senior else TITLES),
                            "industry": "Software",
                            "numemployees": rng.choice(("100-500", "500-1000", "1000+")),
                            "country": rng.choice(("US", "GB", "DE")),
                            "lifecyclestage": "lead",
                        },
                    },
                )
            )
        for email in rng.sample(emails, min(self.config.engaged, len(emails))):
            actions.append(
                Action("engage", email, {"page_views": rng.randrange(5, 40),
                                         "email_clicks": rng.randrange(0, 6)})
            )  # fmt: skip
        for email in rng.sample(handed, min(self.config.edits, len(handed))):
            actions.append(Action("edit", email, {"jobtitle": f"{rng.choice(TITLES)} (updated)"}))
        return actions

    def _sales(self, rng: random.Random) -> list[Action]:
        leads = self.world.salesforce.control(
            "query",
            soql="SELECT Id, CrmBridge_Id__c, Status, IsConverted, ConvertedOpportunityId "
            "FROM Lead WHERE CrmBridge_Id__c != null ORDER BY CrmBridge_Id__c",
        )
        opportunities = {
            o["Id"]: o
            for o in self.world.salesforce.control(
                "query", soql="SELECT Id, IsClosed FROM Opportunity"
            )
        }
        actions = []
        for lead in leads:
            key = str(lead["CrmBridge_Id__c"])
            draw = rng.random()
            if key in self.left_alone:
                continue
            if lead["IsConverted"]:
                opportunity = opportunities.get(lead.get("ConvertedOpportunityId") or "")
                if opportunity is not None and not opportunity["IsClosed"] and draw < 0.4:
                    if rng.random() < 0.6:
                        actions.append(Action("win", key))
                    else:
                        actions.append(Action("lose", key, {"reason": rng.choice(LOSSES)}))
            elif lead["Status"] == OPEN and draw < self.config.acting:
                choice = rng.choices(("accept", "reject", "convert", "ignore"), (35, 25, 25, 15))[0]
                if choice == "reject":
                    actions.append(Action("reject", key, {"reason": rng.choice(REJECTIONS)}))
                elif choice == "convert":
                    actions.append(Action("convert", key, {"amount": rng.randrange(8, 90) * 1000}))
                elif choice == "accept":
                    actions.append(Action("accept", key))
            elif lead["Status"] == WORKING and draw < self.config.acting / 2:
                if rng.random() < 0.6:
                    actions.append(Action("convert", key, {"amount": rng.randrange(8, 90) * 1000}))
                else:
                    actions.append(Action("reject", key, {"reason": rng.choice(REJECTIONS)}))
        return actions

    # -- acting --------------------------------------------------------------------------------

    def act(self, actions: Iterable[Action]) -> None:
        """Carry the actions out, in order."""
        chosen = list(actions)
        keys = [a.key for a in chosen if a.kind in {"accept", "reject", "convert", "win", "lose"}]
        leads = self._leads_by_key(keys)
        hs, sf = self.world.hubspot, self.world.salesforce
        for a in chosen:
            if a.kind == "submit":
                hs.control("submit_form", email=a.key, form=a.params["form"],
                           properties=a.params["properties"])  # fmt: skip
            elif a.kind == "engage":
                hs.control("add_engagement", email=a.key, **a.params)
            elif a.kind == "edit":
                hs.control("edit_contact", email=a.key, properties=a.params)
            elif a.kind == "accept":
                sf.control("set_lead_status", lead_id=leads[a.key]["Id"], status=WORKING)
            elif a.kind == "reject":
                sf.control("set_lead_status", lead_id=leads[a.key]["Id"], status=REJECTED,
                           reason=a.params["reason"])  # fmt: skip
            elif a.kind == "convert":
                sf.control("convert_lead", lead_id=leads[a.key]["Id"],
                           amount=float(a.params["amount"]))  # fmt: skip
            elif a.kind in ("win", "lose"):
                sf.control(
                    "close_opportunity",
                    opportunity_id=leads[a.key]["ConvertedOpportunityId"],
                    won=a.kind == "win",
                    loss_reason=a.params.get("reason"),
                )

    def _leads_by_key(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        found = self.world.salesforce.control(
            "query",
            soql="SELECT Id, CrmBridge_Id__c, ConvertedOpportunityId FROM Lead "
            "WHERE CrmBridge_Id__c != null",
        )
        return {str(r["CrmBridge_Id__c"]): r for r in found}


# -- the scenario ----------------------------------------------------------------------------------


class Scenario:
    """The steps of one run, through :class:`Crmbridge` (processes that may be killed)."""

    def __init__(self, world: World, config: Config, runner: Crmbridge) -> None:
        self.world = world
        self.config = config
        self.runner = runner
        self.people = People(world, config)
        self.log = runner.log

    def seed(self) -> dict[str, Any]:
        """Demo data in both systems and crmbridge's fields and properties set up."""
        seeded = {
            "hubspot": self.world.hubspot.control(
                "seed_demo", count=self.config.leads, seed=self.config.seed
            ),
            "salesforce": self.world.salesforce.control(
                "seed_demo", count=self.config.leads, seed=self.config.seed
            ),
        }
        self.runner.run("setup", ["setup"])
        return seeded

    def backfill(self) -> None:
        """The backfill of everything, then syncs until nothing waits (so the first round starts
        from the same state in every run)."""
        self.runner.run("backfill", ["backfill", "--since", SINCE])
        self._until_settled("backfill")

    def round(self, round_no: int) -> None:
        """People act, then crmbridge syncs until the round's work is done."""
        before, down = self.people.plan(round_no)
        self.people.act(before)
        phase = f"round {round_no}"
        self.runner.run(phase, ["sync", "--once"], on_kill=lambda: self.people.act(down))
        self._until_settled(phase)
        self.log(
            f"  round {round_no}: {len(before)} actions before the sync, {len(down)} while "
            "crmbridge was down (or after its sync)"
        )

    def _until_settled(self, phase: str, most: int = 8) -> None:
        for n in range(1, most + 1):
            if settled(self.world.store_path):
                return
            self.runner.run(f"{phase}, again {n}", ["sync", "--once"])
        raise RuntimeError(f"{phase}: the store did not settle in {most} more cycles")

    def settle(self, most: int = 8) -> int:
        """Sync until a cycle hands off, records and writes back nothing and nothing waits; the
        cycles it took."""
        for n in range(1, most + 1):
            self.runner.run(f"settle {n}", ["sync", "--once"])
            counts = last_run_counts(self.world.store_path)
            busy = counts.get("handed_off", 0) + counts.get("outcomes", 0)
            busy += counts.get("written_back", 0)
            if not busy and settled(self.world.store_path):
                return n
        raise RuntimeError(f"the scenario did not settle in {most} cycles")

    def run(self) -> None:
        """Every step, in order; then quiet syncs while planned kills have not landed yet."""
        self.seed()
        self.backfill()
        for r in range(1, self.config.rounds + 1):
            self.round(r)
        self.settle()
        plan = self.runner.plan
        if plan is not None:
            plan.carry_over()
        extra = 0
        while plan is not None and plan.remaining and extra < 4 * len(plan.landed) + 20:
            extra += 1
            self.runner.run(f"extra {extra}", ["sync", "--once"])
        if extra:
            self.settle()


@dataclass
class Run:
    """What one run ended with: its state, its runner (timings, attempts, kills), and the faults
    the sandboxes injected, by kind and sandbox (``{"salesforce partial": 12, ...}``)."""

    state: State
    runner: Crmbridge
    faults: Counter[str]


def run_scenario(
    workdir: Path,
    config: Config,
    *,
    plan: KillPlan | None = None,
    faults: bool = False,
    log: Callable[[str], None] = print,
) -> Run:
    """One whole run in ``workdir`` (its own sandboxes and store)."""
    world = World(workdir).start()
    try:
        if faults:
            world.set_faults(fault_rules(config.seed), seed=config.seed)
        runner = Crmbridge(world, plan, log=log)
        Scenario(world, config, runner).run()
        world.set_faults({}, seed=0)
        fired: Counter[str] = Counter()
        for name, box in world.boxes.running.items():
            fired.update(f"{name} {c.fault}" for c in box.control.calls() if c.fault)
        state = capture(world)
    finally:
        world.stop()
    return Run(state, runner, fired)


def last_run_counts(store_path: Path) -> dict[str, Any]:
    """The counts of the store's latest sync run."""
    with sqlite3.connect(store_path) as db:
        row = db.execute(
            "SELECT counts FROM runs WHERE kind = 'sync' ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    return dict(json.loads(row[0] or "{}")) if row else {}


def settled(store_path: Path) -> bool:
    """Whether crmbridge has nothing left to do: no lead waits for a write to either side, and no
    record waits to be written again after a transient failure (quarantined as ``retry``)."""
    with sqlite3.connect(store_path) as db:
        (dirty,) = db.execute(
            "SELECT count(*) FROM leads WHERE marketing_dirty OR sales_dirty"
        ).fetchone()
        (waiting,) = db.execute("SELECT count(*) FROM quarantine WHERE status = 'retry'").fetchone()
    return not dirty and not waiting


# -- the state, and comparing two -----------------------------------------------------------------


@dataclass
class State:
    """What a run ended with, as comparable data: ``{kind: {key: [values, ...]}}``.

    Each key holds a list: one entry per record found under it, so a duplicate is a list of two.
    """

    parts: dict[str, dict[str, list[Any]]]

    def to_json(self) -> str:
        return json.dumps(self.parts, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> State:
        return cls(json.loads(text))


def capture(world: World) -> State:
    """The final state of both emulators and of the store."""
    parts: dict[str, dict[str, list[Any]]] = {}
    sf_leads = world.salesforce.control(
        "query", soql=f"SELECT {', '.join(SF_LEAD_FIELDS)} FROM Lead ORDER BY Id"
    )
    opportunities = {
        o["Id"]: o
        for o in world.salesforce.control(
            "query",
            soql="SELECT Id, StageName, Amount, IsWon, IsClosed, Loss_Reason__c FROM Opportunity",
        )
    }
    sf_key_of: dict[str, str] = {}
    known = parts.setdefault("salesforce lead", {})
    by_email = parts.setdefault("salesforce lead by email", {})
    unknown = 0
    for lead in sf_leads:
        key = lead.get("CrmBridge_Id__c")
        email = normalize_email(lead.get("Email") or "")
        if not key:
            unknown += 1
            by_email.setdefault(email, []).append("unknown to crmbridge")
            continue
        sf_key_of[str(lead["Id"])] = str(key)
        values = {
            k: (bool(v) if k in TIMES else v)
            for k, v in lead.items()
            if k not in ("attributes", "Id", "ConvertedOpportunityId", "Owner")
        }
        values["Owner"] = (lead.get("Owner") or {}).get("Name")
        if lead.get("IsConverted") or str(lead.get("Status") or "").startswith("Closed"):
            for name in FROZEN_AT_VERDICT:
                values.pop(name, None)
        opportunity = opportunities.get(lead.get("ConvertedOpportunityId") or "")
        if opportunity is not None:
            values["Opportunity"] = {k: v for k, v in opportunity.items() if k not in
                                     ("attributes", "Id")}  # fmt: skip
        known.setdefault(str(key), []).append(values)
        by_email.setdefault(email, []).append(str(key))
    parts["salesforce leads unknown to crmbridge"] = {"count": [unknown]}
    contacts = world.hubspot.control(
        "export_contacts", properties=list(HS_PROPERTIES), history=["crmbridge_outcome"]
    )
    hs = parts.setdefault("hubspot contact", {})
    for contact in contacts:
        props = contact["properties"]
        email = normalize_email(props.get("email") or "") or f"id {contact['id']}"
        values = {k: (bool(v) if k in TIMES else v) for k, v in props.items() if k != "email"}
        values["outcomes written"] = contact["history"]["crmbridge_outcome"]
        hs.setdefault(email, []).append(values)
    parts.update(_store_state(world.store_path, sf_key_of))
    return State(parts)


def _store_state(path: Path, sf_key_of: Mapping[str, str]) -> dict[str, dict[str, list[Any]]]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        email_of = {r["id"]: r["email"] for r in db.execute("SELECT id, email FROM leads")}
        leads: dict[str, list[Any]] = {}
        for r in db.execute(
            "SELECT email, stage, score, fit, engagement, recycles, fields, why FROM leads"
        ):
            leads.setdefault(r["email"], []).append(
                {**dict(r), "fields": json.loads(r["fields"] or "{}"), "email": None}
            )
        handoffs: dict[str, list[Any]] = {}
        for r in db.execute(
            "SELECT lead_id, owner, outcome, outcome_reason, closed, accepted_at IS NOT NULL "
            "AS accepted, sla_breached_at IS NOT NULL AS breached FROM handoffs ORDER BY id"
        ):
            handoffs.setdefault(email_of[r["lead_id"]], []).append(
                {k: v for k, v in dict(r).items() if k != "lead_id"}
            )
        outcomes: dict[str, list[Any]] = {}
        for r in db.execute(
            "SELECT lead_id, kind, reason, native_value, amount, stage, written_back_at IS NOT "
            "NULL AS written_back FROM outcomes ORDER BY occurred_at, id"
        ):
            outcomes.setdefault(email_of[r["lead_id"]], []).append(
                {k: v for k, v in dict(r).items() if k != "lead_id"}
            )
        quarantine: dict[str, list[Any]] = {}
        for r in db.execute(
            "SELECT system, native_id, stage, field, rule FROM quarantine WHERE status = 'open'"
        ):
            record = sf_key_of.get(r["native_id"], r["native_id"])
            quarantine.setdefault(f"{r['system']} {record} ({r['stage']})", []).append(
                {"field": r["field"], "rule": r["rule"]}
            )
    finally:
        db.close()
    return {
        "store lead": leads,
        "store handoffs": {k: [v] for k, v in handoffs.items()},
        "store outcomes": {k: [v] for k, v in outcomes.items()},
        "store quarantine": quarantine,
    }


@dataclass
class Difference:
    """How a run's state differs from the reference: records lost, duplicated, or changed."""

    compared: dict[str, int]
    lost: list[str]
    duplicated: list[str]
    changed: list[str]

    @property
    def identical(self) -> bool:
        return not (self.lost or self.duplicated or self.changed)

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {kind}" for kind, n in self.compared.items())
        return (
            f"compared {counts}: {len(self.lost)} lost, {len(self.duplicated)} duplicated, "
            f"{len(self.changed)} changed"
        )

    def details(self, most: int = 20) -> str:
        lines = []
        for label, items in (("lost", self.lost), ("duplicated", self.duplicated),
                             ("changed", self.changed)):  # fmt: skip
            for item in items[:most]:
                lines.append(f"  {label}: {item}")
            if len(items) > most:
                lines.append(f"  … and {len(items) - most} more {label}")
        return "\n".join(lines)


def compare(reference: State, run: State) -> Difference:
    """What ``run`` lost, duplicated or changed against ``reference``."""
    compared: dict[str, int] = {}
    lost: list[str] = []
    duplicated: list[str] = []
    changed: list[str] = []
    for kind in sorted(set(reference.parts) | set(run.parts)):
        ours, theirs = reference.parts.get(kind, {}), run.parts.get(kind, {})
        compared[kind] = len(ours)
        for key in sorted(set(ours) | set(theirs)):
            want, got = ours.get(key, []), theirs.get(key, [])
            if not got:
                lost.append(f"{kind} {key}")
            elif not want:
                duplicated.append(f"{kind} {key} (not in the reference run)")
            elif len(got) > len(want):
                duplicated.append(f"{kind} {key}: {len(got)} instead of {len(want)}")
            elif len(got) < len(want):
                lost.append(f"{kind} {key}: {len(got)} instead of {len(want)}")
            elif _canonical(want) != _canonical(got):
                changed.append(f"{kind} {key}: {_diff(want, got)}")
    return Difference(compared, lost, duplicated, changed)


def _canonical(values: list[Any]) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True, default=str) for v in values)


def _diff(want: list[Any], got: list[Any]) -> str:
    if len(want) == 1 and isinstance(want[0], dict) and isinstance(got[0], dict):
        keys = sorted(set(want[0]) | set(got[0]))
        parts = [
            f"{k} {want[0].get(k)!r} → {got[0].get(k)!r}"
            for k in keys
            if want[0].get(k) != got[0].get(k)
        ]
        return "; ".join(parts)[:400]
    return f"{json.dumps(want, default=str)[:200]} → {json.dumps(got, default=str)[:200]}"
