"""Default routing: no owner chosen; the sales system's own assignment rules decide."""

from __future__ import annotations

from crmbridge.context import HookContext, Route
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Lead


@hookimpl(trylast=True)
def crm_route_lead(ctx: HookContext, lead: Lead) -> Route | None:
    """Leave assignment to the sales system (its lead assignment rules or default owner)."""
    return Route(
        reason="no routing plugin chose an owner; the sales system's assignment rules decide"
    )
