"""Test helpers: the example lead definition with ``[systems.csv]``, lead lists written like a
trade-show export, and the conformance harness that drives a folder of them.

Needs pytest (``pip install crmbridge-csv[test]``); the connector itself does not.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from crmbridge import ANNOTATIONS, Connector, LeadDefinition
from crmbridge.app import default_definition_path
from crmbridge.testing.conformance import ConformanceHarness
from crmbridge_csv import definition_snippet
from crmbridge_csv.connector import CsvConnector
from crmbridge_csv.reader import native_id as row_id
from crmbridge_csv.settings import CsvSettings

EXPORT_HEADERS = {
    "email": "E-mail",
    "first_name": "First Name",
    "last_name": "Last Name",
    "company": "Company Name",
    "job_title": "Job Title",
    "phone": "Phone",
    "country": "Country",
    "employees": "Employees",
    "industry": "Industry",
    "website": "Website",
    "lead_source": "Lead Source",
}
"""How the harness names the columns of the lists it writes (export style, not shared names)."""


def csv_definition() -> LeadDefinition:
    """crmbridge's example lead definition with the ``[systems.csv]`` snippet appended."""
    base = default_definition_path().read_text(encoding="utf-8")
    return LeadDefinition.from_text(
        base + "\n" + definition_snippet(), filename="lead-definition.toml"
    )


def write_lead_list(
    path: Path, rows: Sequence[Mapping[str, Any]], *, headers: Mapping[str, str] | None = None
) -> None:
    """Write ``rows`` (shared field names) as a lead list with export-style headers."""
    names = dict(headers or EXPORT_HEADERS)
    fields = [f for f in names if any(f in row for row in rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([names[f] for f in fields])
        for row in rows:
            writer.writerow(["" if row.get(f) is None else str(row[f]) for f in fields])


class CsvHarness(ConformanceHarness):
    """Drives a folder of lead lists for :class:`~crmbridge.testing.conformance.
    ConnectorConformance` (marketing role only; the sales tests skip)."""

    roles: ClassVar[frozenset[str]] = frozenset({"marketing"})
    page_size: ClassVar[int] = 100

    def __init__(self, folder: Path, definition: LeadDefinition | None = None) -> None:
        self.folder = folder
        self._definition = definition or csv_definition()
        self.settings = CsvSettings(folder=folder, page_size=self.page_size)
        self._connector: CsvConnector | None = None
        self._files = 0

    def connector(self) -> Connector:
        return self.csv_connector

    @property
    def csv_connector(self) -> CsvConnector:
        if self._connector is None:
            self._connector = CsvConnector(self.settings, self._definition)
        return self._connector

    # -- acting as people ----------------------------------------------------------------------

    def add_source_leads(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        self._files += 1
        rel = f"leads-{self._files:03d}.csv"
        write_lead_list(self.folder / rel, [self._shared(r) for r in rows])
        return [row_id(rel, str(r["email"]), i + 2) for i, r in enumerate(rows)]

    def edit_source_lead(self, native_id: str, fields: Mapping[str, Any]) -> None:
        rel, rows = self._rows_of(native_id)
        for ident, row in rows:
            if ident == native_id:
                row.update(fields)
        write_lead_list(self.folder / rel, [row for _, row in rows])

    def delete_source_lead(self, native_id: str) -> None:
        rel, rows = self._rows_of(native_id)
        write_lead_list(self.folder / rel, [row for ident, row in rows if ident != native_id])

    # -- reading back --------------------------------------------------------------------------

    def read_record(self, native_id: str) -> dict[str, Any]:
        _rel, rows = self._rows_of(native_id)
        [row] = [row for ident, row in rows if ident == native_id]
        mapping = self._definition.system("csv")
        fields, _problems = mapping.from_native({mapping.fields[k]: v for k, v in row.items()})
        result = self.csv_connector.results.read().get(native_id, {})
        annotations = {k: result[k] for k in ANNOTATIONS if result.get(k)}
        return {**fields, "stage": result.get("stage") or None, "annotations": annotations}

    def record_count(self) -> int:
        return sum(len(self._rows(path)) for path in self._lists())

    def inject_drift(self) -> str:
        value = "Booth Scan"
        write_lead_list(
            self.folder / "drift.csv",
            [{"email": "drift@example.com", "company": "Drift Co", "lead_source": value}],
        )
        return value

    def fail_next_write_partially(self) -> None:
        """Rows vanish from the lists before the write-back: every other row of each list."""
        for path in self._lists():
            rows = self._rows(path)
            write_lead_list(path, [row for i, (_, row) in enumerate(rows) if i % 2])

    def http_calls(self) -> int:
        return self.csv_connector.calls

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _shared(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k in EXPORT_HEADERS}

    def _lists(self) -> list[Path]:
        results = self.settings.results_file
        return sorted(p for p in self.folder.glob("*.csv") if p.name != results)

    def _rows(self, path: Path) -> list[tuple[str, dict[str, Any]]]:
        by_header = {v: k for k, v in EXPORT_HEADERS.items()}
        rel = path.relative_to(self.folder).as_posix()
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            return [
                (
                    row_id(rel, row.get("E-mail"), reader.line_num),
                    {by_header[k]: v for k, v in row.items() if k in by_header},
                )
                for row in reader
            ]

    def _rows_of(self, native_id: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        rel = native_id.split("#", 1)[0]
        return rel, self._rows(self.folder / rel)
