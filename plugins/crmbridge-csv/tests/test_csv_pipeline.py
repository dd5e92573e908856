"""A trade-show list through the whole sync engine: CSV as marketing, the in-memory sales system:
bad rows quarantined with their file, row and column, good ones handed off, sales' verdict
written to the results file, an appended row read once."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from crmbridge_csv import plugin as csv_plugin
from crmbridge_csv.testing import csv_definition, write_lead_list

from crmbridge import load_settings
from crmbridge.app import CrmBridge
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory


def attendee(email: str, **more: str) -> dict[str, str]:
    """A badge scan that qualifies as an MQL under the example definition."""
    return {
        "email": email,
        "first_name": "Grace",
        "last_name": "Hopper",
        "company": "Navy Labs",
        "job_title": "VP of Engineering",
        "country": "US",
        "employees": "1200",
        "industry": "Software",
        "lead_source": "demo_request",
        **more,
    }


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PipelineRunner]:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)
    memory.memory_world("csv-pipeline", fresh=True)
    env = tmp_path / "crmbridge.env"
    env.write_text(
        f"CRMBRIDGE_DATABASE_URL=sqlite:///{tmp_path / 'store.sqlite3'}\n"
        "CRMBRIDGE_PIPELINE__MARKETING=csv\n"
        "CRMBRIDGE_PIPELINE__SALES=memory_sales\n"
        f"CRMBRIDGE_CSV__FOLDER={tmp_path / 'lists'}\n"
        "CRMBRIDGE_MEMORY_SALES__WORLD=csv-pipeline\n",
        encoding="utf-8",
    )
    bridge = CrmBridge(
        load_settings([env]),
        definition=csv_definition(),
        entrypoints=False,
        extra_plugins=[("csv", csv_plugin), ("memory", memory)],
    )
    r = PipelineRunner(bridge)
    yield r
    r.close()


def results(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "crmbridge-results.csv").open(encoding="utf-8-sig", newline="") as handle:
        return {row["email"]: row for row in csv.DictReader(handle)}


def test_a_trade_show_list_through_a_cycle(runner: PipelineRunner, tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    world = memory.memory_world("csv-pipeline")
    write_lead_list(
        folder / "reinvent-2026.csv",
        [
            attendee("grace@navy.example"),
            attendee("nobody-at-all"),
            attendee("linus@kernel.example", employees="a few"),
        ],
    )
    first = runner.run_cycle()
    assert first.status == "ok", first.error
    assert (first.counts.pulled, first.counts.valid, first.counts.quarantined) == (3, 1, 2)
    assert first.counts.handed_off == 1
    assert world.sales_get("grace@navy.example")["Company"] == "Navy Labs"
    quarantined = {q.email: q for q in runner.store.quarantined(pipeline=runner.name)}
    assert quarantined["linus@kernel.example"].error.endswith(
        "employees: reinvent-2026.csv row 4, column 'Employees': 'a few' cannot be read as an "
        "integer (rule type)"
    )
    assert quarantined["linus@kernel.example"].field == "employees"
    assert "reinvent-2026.csv row 3, column 'E-mail'" in "".join(
        q.error for q in quarantined.values()
    )
    handed = results(folder)["grace@navy.example"]
    assert handed["stage"] == "mql"
    assert handed["file"] == "reinvent-2026.csv"
    assert handed["handed_off_at"]

    world.sales_set_status("grace@navy.example", "Closed - Not Converted", "No Budget")
    with (folder / "reinvent-2026.csv").open("a", encoding="utf-8", newline="") as handle:
        late = attendee("ada@engines.example")
        csv.writer(handle).writerow([late[k] for k in late])
    second = runner.run_cycle()
    assert second.status == "ok", second.error
    assert second.counts.pulled == 1, "only the appended row is read"
    assert second.counts.outcomes == 1
    rejected = results(folder)["grace@navy.example"]
    assert (rejected["outcome"], rejected["outcome_reason"], rejected["stage"]) == (
        "rejected",
        "No budget",
        "recycled",
    )
    assert results(folder)["ada@engines.example"]["stage"] == "mql"

    third = runner.run_cycle()
    assert (third.counts.pulled, third.counts.written_back) == (0, 0), "a quiet cycle"
