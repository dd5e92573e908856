"""The crmbridge Salesforce plugin: registers the connector and the sandbox emulator.

Installed, this distribution's ``crmbridge`` entry point names this module, so crmbridge loads it
exactly as it loads a user's plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crmbridge import Connector, hookimpl
from crmbridge_salesforce.connector import SalesforceConnector

if TYPE_CHECKING:
    from crmbridge.testing.sandbox import Emulator


@hookimpl
def crm_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register :class:`~crmbridge_salesforce.connector.SalesforceConnector` as ``salesforce``."""
    register(SalesforceConnector)


@hookimpl
def crm_register_sandboxes(register: Callable[[type[Emulator]], None]) -> None:
    """Register the Salesforce emulator (imported only when sandboxes are asked for)."""
    from crmbridge_salesforce.sandbox import SalesforceEmulator

    register(SalesforceEmulator)
