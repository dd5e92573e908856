"""crmbridge-csv: lead lists in CSV files (trade-show exports, imports) as a marketing source.

The connector is registered as ``csv``; its system needs a ``[systems.csv]`` table in the lead
definition, shipped as :func:`definition_snippet` (``systems-csv.toml``).
"""

from __future__ import annotations

from importlib.resources import files

from crmbridge_csv.columns import ALIASES, ColumnMapper, header_key
from crmbridge_csv.connector import CsvConnector
from crmbridge_csv.reader import native_id
from crmbridge_csv.settings import CsvSettings

__version__ = "0.1.0"
__all__ = [
    "ALIASES",
    "ColumnMapper",
    "CsvConnector",
    "CsvSettings",
    "__version__",
    "definition_snippet",
    "header_key",
    "native_id",
]


def definition_snippet() -> str:
    """The ``[systems.csv]`` tables to append to a lead definition (``systems-csv.toml``)."""
    return (files("crmbridge_csv") / "systems-csv.toml").read_text(encoding="utf-8")
