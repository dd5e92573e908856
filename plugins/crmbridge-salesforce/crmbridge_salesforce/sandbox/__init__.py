"""The Salesforce sandbox: a local emulator of the Salesforce APIs simple-salesforce uses.

Serve it with the harness (``SandboxServer(SalesforceEmulator(options))``) or through the
``salesforce_sandbox`` pytest fixture, and reach it with
:func:`crmbridge_salesforce.transport.sandbox_session`.
"""

from __future__ import annotations

from crmbridge_salesforce.sandbox.app import SalesforceEmulator
from crmbridge_salesforce.sandbox.config import SandboxConfig, SandboxConfigError

__all__ = ["SalesforceEmulator", "SandboxConfig", "SandboxConfigError"]
