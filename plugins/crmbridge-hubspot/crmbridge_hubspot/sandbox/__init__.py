"""The HubSpot sandbox: a local emulator of HubSpot's CRM v3 APIs for the real SDK.

``HubSpotEmulator`` serves contacts (objects, batch, search), their properties and owners, with
HubSpot's auth, error bodies, rate limits, search cap and index lag. Serve it with
:class:`crmbridge.testing.sandbox.SandboxServer` or ``SandboxProcess``, or use the pytest fixtures
of :mod:`crmbridge_hubspot.pytest_plugin`.
"""

from __future__ import annotations

from crmbridge_hubspot.sandbox.app import HubSpotEmulator
from crmbridge_hubspot.sandbox.config import DEFAULT_TOKEN, TIER_LIMITS, HubSpotOptions

__all__ = ["DEFAULT_TOKEN", "TIER_LIMITS", "HubSpotEmulator", "HubSpotOptions"]
