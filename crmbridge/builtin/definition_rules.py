"""The lead definition's own validation, scoring and qualification, as default plugins.

They run ``trylast``: a plugin's own scoring adds to these points, and a plugin's qualification
(a ``firstresult`` hook) replaces the definition's thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmbridge.context import HookContext
from crmbridge.definition import Problem, Qualification, ScoreCard, ScoreReason
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Lead


@hookimpl(trylast=True)
def crm_validate_lead(ctx: HookContext, lead: Lead) -> Sequence[Problem] | None:
    """Types, formats, lengths and first-stage required fields from the definition."""
    return ctx.definition.validate(lead) or None


@hookimpl(trylast=True)
def crm_score_lead(ctx: HookContext, lead: Lead) -> Sequence[ScoreReason] | None:
    """The definition's fit and engagement rules."""
    return list(ctx.definition.score(lead).reasons) or None


@hookimpl(trylast=True)
def crm_qualify_lead(ctx: HookContext, lead: Lead, score: ScoreCard) -> Qualification | None:
    """The definition's thresholds, required fields and disqualification rules."""
    return ctx.definition.qualify(lead, score)
