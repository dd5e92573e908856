"""What the scaled-runtime tests, ``scripts/scaled_soak.py`` and ``benchmarks/scaled_backfill.py``
share: many pipelines against sandbox emulators, ``crmbridge worker`` processes, the same inputs
given to a scaled run and to a single-process run, and the final state of both compared.

Each pipeline has its own HubSpot portal and Salesforce org (two emulators served from threads of
this process: one asyncio loop each, light enough for forty of them); the workers are real
``crmbridge worker`` processes talking to them over loopback HTTP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.settings import load_settings
from crmbridge.store import Store, open_store
from crmbridge.store import tables as t
from crmbridge.sync import PipelineRunner, load_pipelines
from crmbridge.testing.sandbox import SandboxProcess, SandboxServer

ROOT = Path(__file__).resolve().parents[2]

HUBSPOT_PROPERTIES = (
    "email", "lifecyclestage", "hs_lead_status", "crmbridge_id", "crmbridge_stage",
    "crmbridge_score", "crmbridge_outcome", "crmbridge_outcome_reason", "crmbridge_owner",
    "crmbridge_deal_amount", "crmbridge_definition_version",
)  # fmt: skip
"""What the state comparison reads of a HubSpot contact (times left out: they differ by run)."""
SALESFORCE_FIELDS = (
    "Email", "Status", "IsConverted", "Company", "LastName", "LeadSource",
    "CrmBridge_Id__c", "CrmBridge_Stage__c", "CrmBridge_Score__c",
)  # fmt: skip
FAST_RETRIES = {
    "RETRY_ATTEMPTS": "6",
    "RETRY_BASE_SECONDS": "0.05",
    "RETRY_CAP_SECONDS": "0.5",
    "MAX_RETRY_AFTER_SECONDS": "2",
}
QUIET = ("handed_off", "outcomes", "written_back", "stage_changes", "created")
"""A cycle with none of these did nothing but read: its pipeline has settled."""


def base_env(database_url: str, pipelines_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker (or a single-process run): no CRMBRIDGE_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMBRIDGE_")}
    env.update(
        {
            "CRMBRIDGE_DATABASE_URL": database_url,
            "CRMBRIDGE_RUNTIME": "procrastinate",
            "CRMBRIDGE_DEFINITION": str(default_definition_path()),
            "CRMBRIDGE_PIPELINES_DIR": str(pipelines_dir),
            "CRMBRIDGE_LOAD_PLUGINS": "hubspot,salesforce",
            "CRMBRIDGE_LOG_LEVEL": "INFO",
            "CRMBRIDGE_LEASE_SECONDS": "60",
            "CRMBRIDGE_SCALED__DISPATCH_SECONDS": "1",
            "CRMBRIDGE_SCALED__REAP_SECONDS": "1",
            "CRMBRIDGE_SCALED__HEARTBEAT_SECONDS": "0.5",
            "CRMBRIDGE_SCALED__WORKER_TIMEOUT_SECONDS": "3",
            "CRMBRIDGE_SCALED__CONCURRENCY": "4",
        }
    )
    env.update(extra)
    return env


# -- sandboxes ----------------------------------------------------------------------------------


@dataclass
class Sandboxes:
    """One pipeline's two systems: a HubSpot portal and a Salesforce org."""

    name: str
    hubspot: SandboxServer | SandboxProcess
    salesforce: SandboxServer | SandboxProcess

    def env(self) -> dict[str, str]:
        from crmbridge_hubspot.sandbox import HubSpotEmulator
        from crmbridge_salesforce.sandbox import SalesforceEmulator

        out = {
            "CRMBRIDGE_PIPELINE__NAME": self.name,
            "CRMBRIDGE_PIPELINE__MARKETING": "hubspot",
            "CRMBRIDGE_PIPELINE__SALES": "salesforce",
        }
        out.update(HubSpotEmulator({}).env(self.hubspot.url))
        out.update(SalesforceEmulator({}).env(self.salesforce.url))
        for key, value in FAST_RETRIES.items():
            out[f"CRMBRIDGE_HUBSPOT__{key}"] = value
        return out

    def state(self) -> dict[str, Any]:
        """The systems as the comparison sees them: HubSpot contacts and Salesforce leads by
        email, without ids and times (they differ from run to run)."""
        contacts = self.hubspot.control.control(
            "export_contacts", properties=list(HUBSPOT_PROPERTIES)
        )
        hubspot = {
            str(c["properties"]["email"]).lower(): {
                k: v for k, v in c["properties"].items() if k != "email" and v not in (None, "")
            }
            for c in contacts
        }
        rows = self.salesforce.control.control(
            "query", soql=f"SELECT {', '.join(SALESFORCE_FIELDS)} FROM Lead"
        )
        salesforce: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            email = str(row.get("Email") or "").lower()
            salesforce.setdefault(email, []).append(
                {k: row.get(k) for k in SALESFORCE_FIELDS if k not in ("Email", "attributes")}
            )
        for leads in salesforce.values():
            leads.sort(key=repr)
        return {"hubspot": hubspot, "salesforce": salesforce}


class Fleet:
    """``count`` pipelines ``p00``, ``p01`` …, each with its own sandboxes, described by one env
    file each in ``folder`` (the ``CRMBRIDGE_PIPELINES_DIR`` of the workers)."""

    def __init__(
        self,
        count: int,
        folder: Path,
        *,
        hubspot_options: Mapping[str, Any] | None = None,
        salesforce_options: Mapping[str, Any] | None = None,
        poll_seconds: float = 1.0,
        processes: bool = False,
    ) -> None:
        self.count = count
        self.folder = folder
        self.hubspot_options = dict(hubspot_options or {})
        self.salesforce_options = {"bulk_job_delay_seconds": 0.05, **(salesforce_options or {})}
        self.poll_seconds = poll_seconds
        self.processes = processes
        self.pipelines: list[Sandboxes] = []

    def start(self) -> Fleet:
        from crmbridge_hubspot.sandbox import HubSpotEmulator
        from crmbridge_salesforce.sandbox import SalesforceEmulator

        self.folder.mkdir(parents=True, exist_ok=True)
        for i in range(self.count):
            hubspot: SandboxServer | SandboxProcess
            salesforce: SandboxServer | SandboxProcess
            if self.processes:
                hubspot = SandboxProcess(HubSpotEmulator, options=self.hubspot_options).start()
                salesforce = SandboxProcess(
                    SalesforceEmulator, options=self.salesforce_options
                ).start()
            else:
                hubspot = SandboxServer(HubSpotEmulator(self.hubspot_options)).start()
                salesforce = SandboxServer(SalesforceEmulator(self.salesforce_options)).start()
            box = Sandboxes(f"p{i:02d}", hubspot, salesforce)
            self.pipelines.append(box)
            lines = [f"{k}={v}" for k, v in box.env().items()]
            lines.append(f"CRMBRIDGE_PIPELINE__POLL_SECONDS={self.poll_seconds}")
            path = self.folder / f"{box.name}.env"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            path.chmod(0o600)
        return self

    def stop(self) -> None:
        for box in self.pipelines:
            box.hubspot.stop()
            box.salesforce.stop()

    def seed_demo(self, leads: int, seed: int = 42) -> None:
        """Both systems of every pipeline seeded with messy demo data (pipeline ``i`` with seed
        ``seed + i``, so two fleets seeded alike hold the same data)."""
        for i, box in enumerate(self.pipelines):
            box.hubspot.control.control("seed_demo", count=leads, seed=seed + i)
            box.salesforce.control.control("seed_demo", count=leads, seed=seed + i)

    def setup(self, env: Mapping[str, str]) -> None:
        """``crmbridge setup`` of every pipeline: the custom fields crmbridge writes."""

        def one(path: Path) -> None:
            bridge = CrmBridge(load_settings([path]))
            for name in ("hubspot", "salesforce"):
                with bridge.connector(name) as connector:
                    connector.setup()

        with environment(env), ThreadPoolExecutor(8) as pool:
            list(pool.map(one, sorted(self.folder.glob("*.env"))))

    def state(self) -> dict[str, Any]:
        return {box.name: box.state() for box in self.pipelines}

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` replaced by ``env`` for the block (settings read the environment)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- inputs: what marketers and sales reps do -----------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """A form filled in on one pipeline's HubSpot portal."""

    pipeline: int
    email: str
    properties: Mapping[str, Any]
    page_views: int = 0
    email_clicks: int = 0


def submissions(count: int, pipelines: int, seed: int = 7) -> list[Submission]:
    """``count`` form submissions spread over the pipelines, most of them qualifying leads."""
    import random

    rng = random.Random(seed)
    titles = ("VP of Sales", "Head of Marketing", "CTO", "Analyst", "Intern")
    out = []
    for n in range(count):
        company = rng.choice(("Northwind", "Contoso", "Initech", "Umbrella", "Hooli"))
        out.append(
            Submission(
                pipeline=n % pipelines,
                email=f"visitor{n}@{company.lower()}.example.com",
                properties={
                    "firstname": rng.choice(("Ana", "Chen", "Dalia", "Emile")),
                    "lastname": f"Visitor {n}",
                    "company": f"{company} Inc",
                    "jobtitle": rng.choice(titles),
                    "industry": "Software",
                    "numemployees": rng.choice(("100-500", "500-1000", "1000+")),
                    "country": rng.choice(("US", "GB", "DE")),
                    "lead_source": "demo_request",
                    "lifecyclestage": "lead",
                },
                page_views=rng.randrange(5, 40),
                email_clicks=rng.randrange(0, 6),
            )
        )
    return out


def submit(fleet: Fleet, items: Sequence[Submission]) -> None:
    """The forms filled in, and the visitors' page views and clicks tracked."""
    for item in items:
        control = fleet.pipelines[item.pipeline].hubspot.control
        control.control(
            "submit_form", email=item.email, form="Demo Request", properties=dict(item.properties)
        )
        control.control(
            "add_engagement",
            email=item.email,
            page_views=item.page_views,
            email_clicks=item.email_clicks,
        )


class Marketers(threading.Thread):
    """Forms arriving while the workers run, spread over ``seconds``."""

    def __init__(self, fleet: Fleet, items: Sequence[Submission], seconds: float) -> None:
        super().__init__(name="marketers", daemon=True)
        self.fleet = fleet
        self.items = list(items)
        self.seconds = seconds
        self.error: BaseException | None = None

    def run(self) -> None:
        pause = self.seconds / max(1, len(self.items))
        try:
            for item in self.items:
                submit(self.fleet, [item])
                time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the test that started it
            self.error = exc


def give_verdicts(fleet: Fleet) -> int:
    """Sales answers the leads crmbridge handed off, the same way in every fleet: by email order,
    accept one, reject the next with a reason, convert the third; how many verdicts."""
    given = 0
    for box in fleet.pipelines:
        rows = box.salesforce.control.control(
            "query",
            soql="SELECT Id, Email FROM Lead WHERE CrmBridge_Id__c != null AND IsConverted = false",
        )
        for n, row in enumerate(sorted(rows, key=lambda r: str(r["Email"]).lower())[:6]):
            lead_id = row["Id"]
            if n % 3 == 0:
                box.salesforce.control.control(
                    "set_lead_status", lead_id=lead_id, status="Working - Contacted"
                )
            elif n % 3 == 1:
                box.salesforce.control.control(
                    "set_lead_status",
                    lead_id=lead_id,
                    status="Closed - Not Converted",
                    reason="No Budget",
                )
            else:
                box.salesforce.control.control("convert_lead", lead_id=lead_id, amount=12000.0)
            given += 1
    return given


# -- workers ------------------------------------------------------------------------------------


@dataclass
class Workers:
    """``crmbridge worker`` processes, their output in ``logs``."""

    env: Mapping[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int = 1, *args: str) -> list[subprocess.Popen[bytes]]:
        self.logs.mkdir(parents=True, exist_ok=True)
        started = []
        for _ in range(count):
            n = len(self.procs)
            log = (self.logs / f"worker-{n}.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "crmbridge.cli", "worker", *args],
                env=dict(self.env),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            self.procs.append(proc)
            started.append(proc)
        return started

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every worker still running and wait for each."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}"
            for p in sorted(self.logs.glob("worker-*.log"))
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took (AssertionError naming ``what``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# -- the single-process run ----------------------------------------------------------------------


def run_single(env: Mapping[str, str], *, rounds: int = 30) -> int:
    """Every pipeline's cycles in this process, one after another, until each is quiet (the
    single-process reference); the cycles run."""
    ran = 0
    with environment(env):
        bridge = CrmBridge(load_settings())
        runners = [PipelineRunner(bridge, p) for p in load_pipelines(bridge.settings)]
        settled: set[str] = set()
        try:
            for _ in range(rounds):
                for runner in runners:
                    if runner.name in settled:
                        continue
                    result = runner.run_cycle()
                    bridge.store.release_lease(runner.name, runner.owner)
                    ran += 1
                    assert result.status == "ok", (runner.name, result.error)
                    if not any(getattr(result.counts, k) for k in QUIET):
                        settled.add(runner.name)
                if len(settled) == len(runners):
                    return ran
        finally:
            for runner in runners:
                runner.close()
            bridge.store.close()
    raise AssertionError(f"pipelines not quiet after {rounds} rounds: {sorted(settled)} settled")


def settled(store: Store, pipelines: Sequence[str], since: datetime) -> bool:
    """Whether each pipeline's last two sync runs started after ``since`` and did nothing."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.runs.c.pipeline, t.runs.c.status, t.runs.c.counts)
            .where(t.runs.c.kind == "sync", t.runs.c.started_at > since)
            .order_by(t.runs.c.started_at)
        ).all()
    last: dict[str, list[Any]] = {}
    for row in rows:
        last.setdefault(row.pipeline, []).append(row)
    for name in pipelines:
        runs = [r for r in last.get(name, []) if r.status is not None][-2:]
        if len(runs) < 2 or any(
            r.status != "ok" or any((r.counts or {}).get(k) for k in QUIET) for r in runs
        ):
            return False
    return True


def now() -> datetime:
    return datetime.now(UTC)


def drain(store: Store, pipelines: Sequence[str], timeout: float = 60.0) -> float:
    """Wait until the workers have brought every pipeline to rest; seconds waited."""
    since = now() - timedelta(seconds=0.5)
    return wait_for(lambda: settled(store, pipelines, since), timeout, "every pipeline to settle")


# -- the store, compared -------------------------------------------------------------------------


def store_state(url: str) -> dict[str, Any]:
    """What crmbridge knows, by pipeline and email, without ids and times."""
    store = open_store(url, migrate=False)
    try:
        with store.engine.connect() as conn:
            emails = {r.id: (r.pipeline, r.email) for r in conn.execute(select(t.leads))}
            out: dict[str, Any] = {}
            for r in conn.execute(select(t.leads)):
                out.setdefault(r.pipeline, {}).setdefault("leads", {})[r.email] = {
                    "stage": r.stage,
                    "score": r.score,
                    "fit": r.fit,
                    "engagement": r.engagement,
                    "recycles": r.recycles,
                    "marketing_dirty": r.marketing_dirty,
                    "sales_dirty": r.sales_dirty,
                    "fields": dict(sorted((r.fields or {}).items())),
                }
            for r in conn.execute(select(t.handoffs)):
                _pipeline, email = emails[r.lead_id]
                out[r.pipeline].setdefault("handoffs", {}).setdefault(email, []).append(
                    (r.sales_system, r.outcome, r.outcome_reason, r.closed)
                )
            for r in conn.execute(select(t.outcomes)):
                _pipeline, email = emails[r.lead_id]
                out[r.pipeline].setdefault("outcomes", {}).setdefault(email, []).append(
                    (r.kind, r.reason, r.written_back_at is not None)
                )
            for r in conn.execute(select(t.links)):
                _pipeline, email = emails[r.lead_id]
                out[r.pipeline].setdefault("links", {}).setdefault(email, []).append(
                    (r.system, r.deleted_at is not None)
                )
            for r in conn.execute(select(t.quarantine)):
                out.setdefault(r.pipeline, {}).setdefault("quarantine", []).append(
                    (r.system, r.native_id, r.stage, r.rule, r.status)
                )
    finally:
        store.close()
    for per in out.values():
        for key in ("handoffs", "outcomes", "links"):
            for items in per.get(key, {}).values():
                items.sort(key=repr)
        per.get("quarantine", []).sort(key=repr)
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two states differ (the first 20 places), for an assertion message."""
    found: list[str] = []
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                found.append(f"{path}/{key}: only in {'second' if key not in a else 'first'}")
            else:
                found.extend(differences(a[key], b[key], f"{path}/{key}"))
    elif a != b:
        found.append(f"{path}: {a!r} != {b!r}")
    return found[:20]


# -- PostgreSQL schemas for the scripts (the tests use the ``pg_url`` fixture) -------------------

POSTGRES = os.environ.get(
    "CRMBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def fresh_schema(prefix: str) -> tuple[str, str]:
    """A new, empty schema named ``<prefix>_<random>`` and a URL whose connections see only it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = create_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={name}"})
    return name, url.render_as_string(hide_password=False)


def drop_schema(name: str) -> None:
    engine = create_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()
