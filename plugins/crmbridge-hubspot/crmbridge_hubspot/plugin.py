"""The crmbridge HubSpot plugin: registers the connector and the sandbox emulator.

Installed, this distribution's ``crmbridge`` entry point names this module, so crmbridge loads it
exactly as it loads a user's plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crmbridge import Connector, hookimpl
from crmbridge_hubspot.connector import HubSpotConnector

if TYPE_CHECKING:
    from crmbridge.testing.sandbox import Emulator


@hookimpl
def crm_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register :class:`~crmbridge_hubspot.connector.HubSpotConnector` as ``hubspot``."""
    register(HubSpotConnector)


@hookimpl
def crm_register_sandboxes(register: Callable[[type[Emulator]], None]) -> None:
    """Register the HubSpot emulator (imported only when sandboxes are asked for)."""
    from crmbridge_hubspot.sandbox import HubSpotEmulator

    register(HubSpotEmulator)
