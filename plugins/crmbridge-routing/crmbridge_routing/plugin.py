"""The routing plugin: ``crm_route_lead`` by territory, round robin among each territory's owners.

Registered through the ``crmbridge`` entry point as the object :data:`plugin`. Until
``CRMBRIDGE_ROUTING__TERRITORIES`` or ``CRMBRIDGE_ROUTING__DEFAULT_QUEUE`` is set it answers
``None``, so installing it changes nothing and the next plugin (or crmbridge's default, the sales
system's own assignment rules) decides.
"""

from __future__ import annotations

import threading
from pathlib import Path

from crmbridge import Handoff, HookContext, Lead, Route, RunCounts, hookimpl
from crmbridge_routing.rotation import Rotation
from crmbridge_routing.settings import RoutingSettings, SettingsCache


class RoutingPlugin:
    """Territory and round-robin routing. One instance per process holds the rotation."""

    def __init__(self) -> None:
        self._settings = SettingsCache()
        self._lock = threading.Lock()
        self._rotations: dict[Path | None, Rotation] = {}

    def settings(self, ctx: HookContext) -> RoutingSettings:
        """The routing settings of the run's settings (read once per settings object)."""
        return self._settings.get(ctx.settings)

    def rotation(self, settings: RoutingSettings) -> Rotation:
        """The rotation saved to ``settings.state_file`` (one in memory when unset)."""
        with self._lock:
            found = self._rotations.get(settings.state_file)
            if found is None:
                found = self._rotations[settings.state_file] = Rotation(settings.state_file)
            return found

    @staticmethod
    def _key(ctx: HookContext, territory: str) -> str:
        return f"{ctx.pipeline or 'default'}:{territory}"

    @hookimpl
    def crm_route_lead(self, ctx: HookContext, lead: Lead) -> Route | None:
        """The territory's next owner in turn, its queue, or the default queue."""
        settings = self.settings(ctx)
        if not settings.configured:
            return None
        value = lead.get(settings.field)
        territory = settings.territory_of(value)
        if territory is None:
            if settings.default_queue is None:
                return None
            return Route(
                queue=settings.default_queue,
                reason=f"{settings.field} {value!r} is in no territory; default queue",
            )
        owners = settings.owners.get(territory) or []
        if not owners:
            return Route(
                queue=settings.queues[territory],
                reason=f"territory {territory} ({settings.field} {value}): its queue",
            )
        owner, turn = self.rotation(settings).next_owner(
            self._key(ctx, territory),
            lead.email,
            owners,
            dry_run_id=_dry_run_id(ctx),
        )
        return Route(
            owner=owner,
            reason=f"territory {territory} ({settings.field} {value}): round robin, turn "
            f"{turn + 1}, owner {owners.index(owner) + 1} of {len(owners)}",
        )

    @hookimpl
    def crm_after_handoff(self, ctx: HookContext, lead: Lead, handoff: Handoff) -> None:
        """The lead is with its owner: a later handoff of it (after a recycle) takes a new turn."""
        settings = self.settings(ctx)
        territory = settings.territory_of(lead.get(settings.field))
        if territory is not None and settings.owners.get(territory):
            self.rotation(settings).handed_off(self._key(ctx, territory), lead.email)

    @hookimpl
    def crm_cycle_finished(self, ctx: HookContext, counts: RunCounts) -> None:
        """Save the rotation (a dry run's copy is thrown away)."""
        settings = self.settings(ctx)
        if settings.configured:
            self.rotation(settings).finish_run(_dry_run_id(ctx))


def _dry_run_id(ctx: HookContext) -> str | None:
    """The run a dry-run copy of the rotation belongs to; ``None`` for a real run."""
    return (ctx.run_id or "dry-run") if ctx.dry_run else None


plugin = RoutingPlugin()
"""The instance the ``crmbridge`` entry point registers."""
