"""Target Accounts: fit points for the companies sales is going after, and no disposable
addresses in the funnel.

Settings, in the env file::

    CRMBRIDGE_TARGET_ACCOUNTS__DOMAINS=acme.example,globex.example
    CRMBRIDGE_TARGET_ACCOUNTS__POINTS=25
"""

from __future__ import annotations

from typing import Any

from crmbridge import HookContext, Lead, Problem, ScoreReason, Settings, hookimpl
from crmbridge.settings import connector_settings
from pydantic import BaseModel, field_validator

DISPOSABLE = frozenset({"mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com"})
"""Domains of throw-away mailboxes: nobody there will answer a sales call."""


class TargetSettings(BaseModel):
    """``CRMBRIDGE_TARGET_ACCOUNTS__*``: the target accounts' email domains and their points."""

    domains: frozenset[str] = frozenset()
    points: int = 25

    @field_validator("domains", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {part.strip().lower() for part in value.split(",") if part.strip()}
        return value


_read: dict[int, tuple[Settings, TargetSettings]] = {}


def settings_of(ctx: HookContext) -> TargetSettings:
    """This plugin's settings, read once per crmbridge settings object."""
    found = _read.get(id(ctx.settings))
    if found is None or found[0] is not ctx.settings:
        found = (ctx.settings, connector_settings(TargetSettings, "target_accounts", ctx.settings))
        _read[id(ctx.settings)] = found
    return found[1]


def domain(lead: Lead) -> str:
    """The part of the lead's email after the @."""
    return lead.email.rpartition("@")[2]


@hookimpl
def crm_validate_lead(lead: Lead) -> list[Problem] | None:
    """Quarantine leads with a disposable address (collect-all: every problem counts)."""
    if domain(lead) in DISPOSABLE:
        return [Problem("email", "disposable_address", f"{domain(lead)} is a throw-away mailbox")]
    return None


@hookimpl
def crm_score_lead(ctx: HookContext, lead: Lead) -> list[ScoreReason] | None:
    """Fit points for a lead at a target account (collect-all: added to the others)."""
    settings = settings_of(ctx)
    if domain(lead) not in settings.domains:
        return None
    return [ScoreReason("target_account", "fit", settings.points, f"{domain(lead)} is a target")]
