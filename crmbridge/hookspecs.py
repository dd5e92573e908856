"""Every hook crmbridge fires, in the order of the lead lifecycle.

Hooks are called with keyword arguments only; an implementation may accept any subset of a hook's
arguments, so adding an argument later breaks no plugin. Every lifecycle hook receives ``ctx``, the
same :class:`~crmbridge.context.HookContext` (settings, the lead definition, the store, a logger,
the run id, the pipeline, the dry-run flag, the clock).

Calling styles:

* *collect-all* hooks gather every plugin's contribution (a list of non-``None`` results, the last
  registered plugin first, ``trylast`` ones at the end);
* *firstresult* hooks make a decision: the first non-``None`` result wins and the rest are not
  called; crmbridge's own default is registered ``trylast``, so any plugin can override it;
* *notify* hooks return nothing; an exception in one is logged with the plugin's name and the cycle
  goes on (it never loses or blocks a lead).

Docs for each hook live in ``docs/hooks.md``; a test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from crmbridge.connector import Connector
    from crmbridge.context import Hold, HookContext, Route, RunCounts
    from crmbridge.definition import Problem, Qualification, ScoreCard, ScoreReason
    from crmbridge.lead import Handoff, Lead, Outcome
    from crmbridge.store.records import QuarantinedRecord
    from crmbridge.testing.sandbox import Emulator

PROJECT = "crmbridge"
hookspec = pluggy.HookspecMarker(PROJECT)


# -- registration (once, when the plugin manager is built) ---------------------------------------


@hookspec
def crm_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register connector classes.

    Fires once, while the plugin manager is being built, before any pipeline runs.

    :param register: call ``register(ConnectorClass)`` for each connector the plugin provides.
        The class must subclass :class:`crmbridge.Connector` and set a ``name``; a name registered
        twice stops start-up with an error naming both classes.
    :return: nothing; the return value is ignored.
    """


@hookspec
def crm_register_sandboxes(register: Callable[[type[Emulator]], None]) -> None:
    """Register sandbox emulators (the vendor API emulators ``crmbridge sandbox`` runs).

    Fires when a command or test asks for the sandboxes.

    :param register: call ``register(EmulatorClass)`` for each emulator; the class must subclass
        :class:`crmbridge.testing.sandbox.Emulator` and set a ``name`` (the lead definition's
        system key, e.g. ``"salesforce"``).
    :return: nothing; the return value is ignored.
    """


# -- the lead lifecycle, in order ----------------------------------------------------------------


@hookspec
def crm_lead_captured(ctx: HookContext, lead: Lead, system: str) -> None:
    """A lead was read from the marketing system, before anything else happens to it.

    Notify hook: the return value is ignored.

    :param ctx: the hook context.
    :param lead: the lead as the connector mapped it (shared field names; not yet normalized).
        Treat it as read-only; change fields through :func:`crm_normalize_lead`.
    :param system: the system it was read from (``"hubspot"``).
    """


@hookspec
def crm_normalize_lead(ctx: HookContext, lead: Lead) -> Mapping[str, Any] | None:
    """Clean a lead's fields before validation (trim, fix case, map country names …).

    Collect-all: every plugin sees the lead as captured; crmbridge's own trimming (``trylast``)
    is applied first and the plugins' changes after it, so a plugin's change to a field wins
    (between two plugins, the one registered first wins).

    :param ctx: the hook context.
    :param lead: the lead so far.
    :return: a mapping of shared field name → new value (``None`` clears the field), or ``None``
        for no change. Changes are recorded in the lead's journey.
    """


@hookspec
def crm_validate_lead(ctx: HookContext, lead: Lead) -> Sequence[Problem] | None:
    """Check a lead against rules; any problem quarantines it (the rest of the batch goes on).

    Collect-all: problems from every plugin are gathered; crmbridge's own check of the lead
    definition (types, formats, required fields) runs as a ``trylast`` plugin.

    :param ctx: the hook context.
    :param lead: the normalized lead.
    :return: a list of :class:`crmbridge.Problem` (field, rule, message), or ``None``/``[]``.
    """


@hookspec(firstresult=True)
def crm_match_lead(ctx: HookContext, lead: Lead) -> Lead | None:
    """Find the known lead this one is, when system ids and the normalized email found none.

    Firstresult: the first plugin to return a lead wins.

    :param ctx: the hook context (``ctx.store`` answers queries on known leads).
    :param lead: the incoming lead.
    :return: the existing :class:`crmbridge.Lead` (with its ``id``) this lead is, or ``None`` for a
        new lead.
    """


@hookspec
def crm_score_lead(ctx: HookContext, lead: Lead) -> Sequence[ScoreReason] | None:
    """Give a lead points, each with a reason.

    Collect-all: every plugin's points are added up. The lead definition's fit and engagement rules
    run as a ``trylast`` plugin.

    :param ctx: the hook context.
    :param lead: the matched lead.
    :return: a list of :class:`crmbridge.ScoreReason` (rule, dimension ``"fit"`` or
        ``"engagement"``, points, detail), or ``None``.
    """


@hookspec(firstresult=True)
def crm_qualify_lead(ctx: HookContext, lead: Lead, score: ScoreCard) -> Qualification | None:
    """Decide the stage a lead has earned, up to the handoff stage.

    Firstresult: the first non-``None`` answer wins; the lead definition's thresholds are the
    ``trylast`` default. The answer is still judged by the definition's transition rules: a stage
    change it forbids is refused and recorded.

    :param ctx: the hook context.
    :param lead: the matched lead (``lead.stage`` is its current stage).
    :param score: the lead's :class:`crmbridge.ScoreCard` from :func:`crm_score_lead`.
    :return: a :class:`crmbridge.Qualification` (stage and reasons), or ``None`` to defer.
    """


@hookspec(firstresult=True)
def crm_route_lead(ctx: HookContext, lead: Lead) -> Route | None:
    """Choose the owner or queue in sales for a lead about to be handed off.

    Firstresult: the first non-``None`` route wins; the default (``trylast``) leaves assignment to
    the sales system's own rules.

    :param ctx: the hook context.
    :param lead: the lead being handed off.
    :return: a :class:`crmbridge.Route` (``owner`` or ``queue`` and the reason), or ``None``.
    """


@hookspec
def crm_before_handoff(ctx: HookContext, lead: Lead, route: Route) -> Hold | None:
    """Last word before a lead goes to sales: return a :class:`crmbridge.Hold` to keep it back.

    Collect-all: if any plugin holds the lead, it is not handed off this cycle; every hold's reason
    is recorded in the lead's journey and it is considered again next cycle.

    :param ctx: the hook context.
    :param lead: the lead about to be handed off.
    :param route: where it would go.
    :return: a :class:`crmbridge.Hold` with a reason, or ``None`` to let it go.
    """


@hookspec
def crm_after_handoff(ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
    """A lead was written to sales and its handoff recorded, with its SLA due time.

    Notify hook.

    :param ctx: the hook context.
    :param lead: the lead handed off.
    :param handoff: the :class:`crmbridge.Handoff` (sales system, native id, owner, SLA due).
    """


@hookspec
def crm_handoff_outcome(ctx: HookContext, lead: Lead, handoff: Handoff, outcome: Outcome) -> None:
    """Sales gave a verdict on a handed-off lead (accepted, rejected, recycled, converted, won,
    lost); it is recorded and about to be written back to marketing.

    Notify hook.

    :param ctx: the hook context.
    :param lead: the lead, with the stage the outcome moved it to.
    :param handoff: the handoff, with the outcome filled in.
    :param outcome: the :class:`crmbridge.Outcome` as read from the sales system.
    """


@hookspec
def crm_sla_breached(ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
    """Sales did not answer a handoff within its SLA; the breach is being flagged on both sides.

    Notify hook; fires once per breached handoff.

    :param ctx: the hook context.
    :param lead: the lead handed off.
    :param handoff: the handoff, with ``sla_due_at`` in the past and ``sla_breached_at`` set.
    """


@hookspec
def crm_lead_quarantined(ctx: HookContext, record: QuarantinedRecord) -> None:
    """A record was quarantined: it breaks the lead definition or a system refused it.

    Notify hook. The record stays listed by ``crmbridge quarantine list`` until retried or dropped.

    :param ctx: the hook context.
    :param record: the :class:`crmbridge.QuarantinedRecord` (system, native id, email, field,
        rule, error message, the raw record, attempts).
    """


@hookspec
def crm_cycle_finished(ctx: HookContext, counts: RunCounts) -> None:
    """A sync cycle (or a backfill) finished and its counts were recorded.

    Notify hook; fires after the cursors were committed, also for a dry run.

    :param ctx: the hook context.
    :param counts: the :class:`crmbridge.RunCounts` of the run (pulled, valid, quarantined,
        handed off, outcomes, written back, SLA breaches, errors, API calls).
    """
