"""The Salesforce connector passes crmbridge's connector conformance suite, in both roles,
against the sandbox org, through simple-salesforce over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import SalesforceHarness

from crmbridge.testing.conformance import ConnectorConformance

pytestmark = pytest.mark.sandbox


class TestSalesforceAsSales(ConnectorConformance):
    @pytest.fixture
    def harness(
        self, salesforce_sandbox_factory: Callable[..., SalesforceSandbox]
    ) -> SalesforceHarness:
        return SalesforceHarness(salesforce_sandbox_factory(), frozenset({"sales"}))


class TestSalesforceAsMarketing(ConnectorConformance):
    @pytest.fixture
    def harness(
        self, salesforce_sandbox_factory: Callable[..., SalesforceSandbox]
    ) -> SalesforceHarness:
        return SalesforceHarness(salesforce_sandbox_factory(), frozenset({"marketing"}))
