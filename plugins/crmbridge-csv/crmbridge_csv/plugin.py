"""The plugin module the ``crmbridge`` entry point names: it registers the CSV connector."""

from __future__ import annotations

from collections.abc import Callable

from crmbridge import Connector, hookimpl
from crmbridge_csv.connector import CsvConnector


@hookimpl
def crm_register_connectors(register: Callable[[type[Connector]], None]) -> None:
    """Register :class:`CsvConnector` under the name ``csv``."""
    register(CsvConnector)
