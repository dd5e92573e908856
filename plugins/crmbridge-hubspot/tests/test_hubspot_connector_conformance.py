"""The HubSpot connector passes crmbridge's connector conformance suite, in both roles, against
the sandbox (with a rejection-reason property, since HubSpot as the sales system has no standard
one)."""

from __future__ import annotations

import pytest
from crmbridge_hubspot.conformance import HubSpotHarness
from crmbridge_hubspot.pytest_plugin import SandboxFactory
from crmbridge_hubspot.testing import REASON_PROPERTY

from crmbridge.testing.conformance import ConnectorConformance

pytestmark = pytest.mark.sandbox


class TestHubSpotConnector(ConnectorConformance):
    @pytest.fixture
    def harness(self, hubspot_sandbox_factory: SandboxFactory) -> HubSpotHarness:
        sandbox = hubspot_sandbox_factory(properties=[REASON_PROPERTY])
        return HubSpotHarness(sandbox, frozenset({"marketing", "sales"}))
