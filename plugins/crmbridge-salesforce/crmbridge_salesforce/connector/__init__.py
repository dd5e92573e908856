"""The Salesforce connector: hands leads to sales, reads sales' verdicts, and can play marketing."""

from __future__ import annotations

from crmbridge_salesforce.connector.connector import SalesforceConnector
from crmbridge_salesforce.connector.settings import SalesforceSettings

__all__ = ["SalesforceConnector", "SalesforceSettings"]
