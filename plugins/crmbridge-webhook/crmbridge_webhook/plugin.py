"""The webhook plugin: SLA breaches as they are found, and a digest of the leads sales rejected in
a cycle when the cycle finishes.

Registered through the ``crmbridge`` entry point as the object :data:`plugin`. Until
``CRMBRIDGE_WEBHOOK__URL`` is set it does nothing.

A webhook is a notification, never part of the sync: a post that fails after its retries is
logged (with the event and the endpoint's host, never its path, which often holds a token) and the
cycle goes on. Once a post failed in a cycle, later posts of that cycle are tried once, without
retries, so a dead endpoint cannot stall a cycle. In a dry run nothing is posted; the log says what
would have been.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from crmbridge import (
    CrmBridgeError,
    Handoff,
    HookContext,
    Lead,
    Outcome,
    OutcomeKind,
    RunCounts,
    hookimpl,
)
from crmbridge_webhook.delivery import Delivery, WebhookClient
from crmbridge_webhook.settings import SettingsCache, WebhookSettings

log = logging.getLogger("crmbridge.plugins.webhook")

LEAD_FIELDS = ("first_name", "last_name", "company", "job_title", "country", "lead_source")


class WebhookPlugin:
    """Posts ``sla_breached`` events and ``rejected_digest`` documents. One per process."""

    def __init__(self, *, sleep: Callable[[float], None] | None = None) -> None:
        self._settings = SettingsCache()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rejected: dict[str, list[dict[str, Any]]] = {}
        self._failing_runs: set[str] = set()

    def settings(self, ctx: HookContext) -> WebhookSettings:
        """The webhook settings of the run's settings (read once per settings object)."""
        return self._settings.get(ctx.settings)

    # -- hooks ---------------------------------------------------------------------------------

    @hookimpl
    def crm_sla_breached(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        """Post the breach at once: someone should call this lead now."""
        settings = self.settings(ctx)
        if not settings.configured:
            return
        now = ctx.now()
        late = (now - handoff.sla_due_at).total_seconds() / 60
        document = {
            "event": "sla_breached",
            "pipeline": ctx.pipeline,
            "run_id": ctx.run_id,
            "sent_at": _iso(now),
            "lead": _lead(lead),
            "handoff": {
                "id": handoff.id,
                "sales_system": handoff.sales_system,
                "native_id": handoff.native_id,
                "owner": handoff.owner,
                "handed_off_at": _iso(handoff.handed_off_at),
                "sla_due_at": _iso(handoff.sla_due_at),
                "sla_breached_at": _iso(handoff.sla_breached_at),
                "minutes_late": round(late, 1),
            },
        }
        ident = handoff.id if handoff.id is not None else _digest(lead.email, handoff.sla_due_at)
        self._send(ctx, settings, Delivery("sla_breached", f"sla-{ident}", document))

    @hookimpl
    def crm_handoff_outcome(
        self, ctx: HookContext, lead: Lead, handoff: Handoff, outcome: Outcome
    ) -> None:
        """Remember a rejection for the cycle's digest."""
        if outcome.kind is not OutcomeKind.REJECTED or not self.settings(ctx).configured:
            return
        reason = outcome.reason
        spec = ctx.definition.reasons.get(reason) if reason else None
        entry = {
            **_lead(lead),
            "owner": outcome.owner or handoff.owner,
            "reason": reason,
            "reason_label": spec.label if spec is not None else None,
            "native_value": outcome.native_value,
            "rejected_at": _iso(outcome.occurred_at),
            "sales_system": outcome.system,
            "native_id": outcome.native_id,
        }
        with self._lock:
            self._rejected.setdefault(_run(ctx), []).append(entry)

    @hookimpl
    def crm_cycle_finished(self, ctx: HookContext, counts: RunCounts) -> None:
        """Post the digest of this cycle's rejections (nothing when there were none)."""
        run = _run(ctx)
        with self._lock:
            rejected = self._rejected.pop(run, [])
        try:
            settings = self.settings(ctx)
            if not rejected or not settings.configured:
                return
            listed = rejected[: settings.digest_limit]
            document = {
                "event": "rejected_digest",
                "pipeline": ctx.pipeline,
                "run_id": ctx.run_id,
                "sent_at": _iso(ctx.now()),
                "count": len(rejected),
                "listed": len(listed),
                "leads": listed,
            }
            self._send(ctx, settings, Delivery("rejected_digest", f"digest-{run}", document))
        finally:
            with self._lock:
                self._failing_runs.discard(run)

    # -- posting -------------------------------------------------------------------------------

    def _send(self, ctx: HookContext, settings: WebhookSettings, delivery: Delivery) -> None:
        if ctx.dry_run:
            log.info(
                "dry run: would post %s (%s) to %s",
                delivery.event,
                delivery.delivery_id,
                settings.url_for_logs,
            )
            return
        run = _run(ctx)
        with self._lock:
            failing = run in self._failing_runs
        client = WebhookClient(settings, sleep=self._sleep)
        try:
            client.post(delivery, attempts=1 if failing else None)
        except CrmBridgeError as exc:
            with self._lock:
                self._failing_runs.add(run)
            log.error(
                "webhook: %s %s not delivered to %s: %s; the cycle goes on",
                delivery.event,
                delivery.delivery_id,
                settings.url_for_logs,
                exc,
            )


def _run(ctx: HookContext) -> str:
    return ctx.run_id or f"pipeline:{ctx.pipeline or 'default'}"


def _lead(lead: Lead) -> dict[str, Any]:
    return {
        "email": lead.email,
        "stage": lead.stage,
        "score": lead.score,
        **{name: lead.get(name) for name in LEAD_FIELDS},
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _digest(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


plugin = WebhookPlugin()
"""The instance the ``crmbridge`` entry point registers."""
