"""The CSV connector passes crmbridge's connector conformance suite (marketing role; the sales
tests skip), on a fresh folder per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from crmbridge_csv.testing import CsvHarness

from crmbridge.testing.conformance import ConnectorConformance


class TestCsvConnector(ConnectorConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> CsvHarness:
        return CsvHarness(tmp_path / "lead-lists")
