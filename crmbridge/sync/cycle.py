"""One sync cycle of a pipeline, in order:

1. pull marketing changes since the cursor → capture, normalize, validate, match, score, qualify;
2. hand the leads at the handoff stage to sales;
3. pull sales' verdicts and record them;
4. sweep handoffs past their SLA;
5. tell marketing (and sales) what changed;
6. record the run's counts and announce them.

Cursors move only in the transaction that stores what their batch brought, under the pipeline's
lease, so a cycle stopped or killed at any point resumes without losing or repeating anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from crmbridge.app import CrmBridge
from crmbridge.connector import Connector, Cursor
from crmbridge.context import RunCounts
from crmbridge.definition import LeadDefinition
from crmbridge.errors import CrmBridgeError, PipelineHeld, QuotaExhausted
from crmbridge.logs import fields as log_fields
from crmbridge.store import Store
from crmbridge.sync.courtesy import QuotaGuard
from crmbridge.sync.cycle_context import Cycle, Stopped
from crmbridge.sync.handoff import handoff_step
from crmbridge.sync.hooks import HookRunner
from crmbridge.sync.intake import intake_batch
from crmbridge.sync.leases import take_lease
from crmbridge.sync.outcomes import take_outcomes
from crmbridge.sync.pipeline import Pipeline
from crmbridge.sync.plan import Plan
from crmbridge.sync.prefetch import prefetch
from crmbridge.sync.sla import sla_step
from crmbridge.sync.writeback import writeback_step


def retry_quarantined(cy: Cycle) -> None:
    """Read again the marketing records a person asked to retry (``crmbridge quarantine retry``)."""
    entries = cy.store.quarantined(status="retry", pipeline=cy.pipeline)
    ids = [q.native_id for q in entries if q.stage == "read" and q.system == cy.marketing_system]
    if not ids:
        return
    try:
        changes = cy.marketing.fetch(ids)
    except NotImplementedError:
        log.warning(
            "%s cannot fetch records by id; %d quarantined record(s) are retried when they change",
            cy.marketing.name,
            len(ids),
        )
        return
    from crmbridge.connector import ChangeBatch

    position = cy.store.cursor(cy.pipeline, cy.marketing_system, "changes")
    intake_batch(cy, ChangeBatch(changes, Cursor(position)))


log = logging.getLogger("crmbridge.sync")


def process_owner() -> str:
    """Who this process is, as a lease holder: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class CycleResult:
    """How a cycle ended: ``ok``, ``stopped``, ``paused`` (quota), ``held`` or ``failed``."""

    run_id: str
    pipeline: str
    status: str
    counts: RunCounts
    plan: Plan = field(default_factory=Plan)
    error: CrmBridgeError | Exception | None = None


class PipelineRunner:
    """Runs the cycles of one pipeline, keeping its connectors (and their sessions) between them."""

    def __init__(
        self,
        bridge: CrmBridge,
        pipeline: Pipeline | None = None,
        *,
        owner: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.root = bridge
        self.pipeline = pipeline or Pipeline(bridge.settings)
        self.bridge = (
            bridge
            if self.pipeline.settings is bridge.settings
            else CrmBridge(
                self.pipeline.settings,
                plugin_manager=bridge.pm,
                definition=bridge.definition,
                clock=bridge.clock,
            )
        )
        self.owner = owner or process_owner()
        self.store = store or bridge.store
        self.hooks = HookRunner(bridge.pm)
        self._marketing: Connector | None = None
        self._sales: Connector | None = None

    @property
    def name(self) -> str:
        return self.pipeline.name

    def connectors(self) -> tuple[Connector, Connector]:
        """The marketing and sales connectors, built on first use."""
        if self._marketing is None:
            self._marketing = self.bridge.connector(self.pipeline.marketing)
            self._check_role(self._marketing, "marketing")
        if self._sales is None:
            self._sales = self.bridge.connector(self.pipeline.sales)
            self._check_role(self._sales, "sales")
        return self._marketing, self._sales

    @staticmethod
    def _check_role(connector: Connector, role: str) -> None:
        if role not in connector.roles:
            raise CrmBridgeError(
                f"connector {connector.name!r} cannot act as the {role} side "
                f"(it plays {', '.join(sorted(connector.roles))})",
                hint=f"set CRMBRIDGE_PIPELINE__{role.upper()} to a connector that can",
            )

    def close(self) -> None:
        for connector in (self._marketing, self._sales):
            if connector is not None:
                connector.close()
        self._marketing = self._sales = None

    def reset(self, *, definition: LeadDefinition | None = None) -> None:
        """Drop the connectors (rebuilt at the next cycle), optionally with a new definition."""
        if definition is not None:
            self.bridge.use_definition(definition)
        self.close()

    def run_cycle(
        self, *, dry_run: bool = False, stop: threading.Event | None = None
    ) -> CycleResult:
        """Run one cycle; a failure is recorded in the run and returned, not raised."""
        bridge = self.bridge
        marketing, sales = self.connectors()
        definition = bridge.definition
        run_id = uuid.uuid4().hex[:12]
        now = bridge.clock()
        lease = None
        if not dry_run:
            try:
                lease = take_lease(
                    self.store,
                    self.name,
                    self.owner,
                    timedelta(seconds=bridge.settings.lease_seconds),
                    now,
                )
            except PipelineHeld as exc:
                log.warning("%s", exc, extra=log_fields(pipeline=self.name))
                return CycleResult(run_id, self.name, "held", RunCounts(), error=exc)
            self.store.start_run(
                run_id, self.name, "sync", now, dry_run=False, version=definition.version
            )
        cy = Cycle(
            pipeline=self.name,
            store=self.store,
            definition=definition,
            hooks=self.hooks,
            ctx=bridge.context(
                run_id=run_id, pipeline=self.name, dry_run=dry_run, store=self.store
            ),
            marketing=marketing,
            sales=sales,
            owner=self.owner,
            lease=lease,
            run_id=run_id,
            clock=bridge.clock,
            quota=QuotaGuard(bridge.settings.quota_reserve),
            dry_run=dry_run,
            stop=stop or threading.Event(),
        )
        calls_before = {c.system_name(): c.api_usage().calls for c in (marketing, sales)}
        errors_before = self.hooks.errors
        status = "ok"
        error: Exception | None = None
        try:
            run_steps(cy)
        except Stopped as exc:
            status, error = "stopped", exc
            log.info("%s", exc, extra=log_fields(pipeline=self.name))
        except QuotaExhausted as exc:
            status, error = "paused", exc
            log.warning(
                "pipeline %s paused: %s", self.name, exc, extra=log_fields(pipeline=self.name)
            )
        except PipelineHeld as exc:
            status, error = "held", exc
            log.warning("%s", exc, extra=log_fields(pipeline=self.name))
        except Exception as exc:
            status, error = "failed", exc
            log.error(
                "pipeline %s: cycle failed: %s: %s",
                self.name,
                type(exc).__name__,
                exc,
                exc_info=exc,
                extra=log_fields(pipeline=self.name),
            )
        finally:
            cy.close()
        counts = cy.counts
        counts.errors += self.hooks.errors - errors_before + (1 if status == "failed" else 0)
        for connector in (marketing, sales):
            system = connector.system_name()
            counts.api_calls[system] = connector.api_usage().calls - calls_before.get(system, 0)
        if not dry_run:
            self.store.finish_run(
                run_id,
                bridge.clock(),
                status=status,
                counts=counts.to_dict(),
                error=str(error) if error else None,
            )
        self.hooks.notify("crm_cycle_finished", ctx=cy.ctx, counts=counts)
        log.info(
            "pipeline %s cycle %s %s: pulled %d, quarantined %d, handed off %d, outcomes %d, "
            "written back %d, SLA breaches %d",
            self.name,
            run_id,
            status,
            counts.pulled,
            counts.quarantined,
            counts.handed_off,
            counts.outcomes,
            counts.written_back,
            counts.sla_breaches,
            extra=log_fields(pipeline=self.name, run=run_id, status=status),
        )
        return CycleResult(run_id, self.name, status, counts, cy.plan, error)


def run_steps(cy: Cycle) -> None:
    """The steps of a cycle, in order (see the module docstring)."""
    cy.quota.check(cy.marketing)
    retry_quarantined(cy)
    position = cy.store.cursor(cy.pipeline, cy.marketing_system, "changes")
    for batch in prefetch(cy.marketing.pull_changes(Cursor(position))):
        cy.check_stop()
        intake_batch(cy, batch)
        cy.quota.check(cy.marketing)
    handoff_step(cy)
    cy.quota.check(cy.sales)
    position = cy.store.cursor(cy.pipeline, cy.sales_system, "outcomes")
    for outcome_batch in prefetch(cy.sales.pull_outcomes(Cursor(position))):
        cy.check_stop()
        take_outcomes(cy, outcome_batch)
        cy.quota.check(cy.sales)
    sla_step(cy)
    writeback_step(cy)
