"""Courtesy towards the systems crmbridge shares with everyone else: a reserve of each API quota."""

from __future__ import annotations

import logging

from crmbridge.connector import Connector
from crmbridge.errors import QuotaExhausted

log = logging.getLogger("crmbridge.sync")


class QuotaGuard:
    """Stops a pipeline before it spends the share of a quota kept for others.

    ``reserve`` is the share of each system's quota crmbridge leaves unused (0.2 keeps 20 %).
    """

    def __init__(self, reserve: float) -> None:
        self.reserve = reserve

    def check(self, connector: Connector) -> None:
        """Raise :class:`QuotaExhausted` when the connector's system is into the reserve."""
        usage = connector.api_usage()
        share = usage.share_used()
        if share is None or usage.limit is None or usage.used is None:
            return
        allowed = 1.0 - self.reserve
        if share >= allowed:
            raise QuotaExhausted(
                f"{usage.used:,} of {usage.limit:,} API calls of the {usage.window} quota are used "
                f"({share:.0%}); crmbridge keeps {self.reserve:.0%} for everyone else and pauses "
                "until the quota resets",
                system=usage.system,
                resets_at=usage.resets_at,
                hint="lower CRMBRIDGE_QUOTA_RESERVE to let crmbridge use more of it",
            )
        if share >= allowed * 0.9:
            log.warning(
                "%s: %.0f%% of the %s API quota used; crmbridge pauses at %.0f%%",
                usage.system,
                share * 100,
                usage.window,
                allowed * 100,
            )
