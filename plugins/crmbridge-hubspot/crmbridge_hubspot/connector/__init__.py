"""The HubSpot connector: reads contacts as leads, writes verdicts back, and can play sales."""

from __future__ import annotations

from crmbridge_hubspot.connector.connector import HubSpotConnector
from crmbridge_hubspot.connector.settings import HubSpotSettings

__all__ = ["HubSpotConnector", "HubSpotSettings"]
