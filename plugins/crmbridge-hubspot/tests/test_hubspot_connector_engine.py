"""The HubSpot connector inside crmbridge's sync engine: HubSpot (the sandbox) as marketing, the
in-memory connector as sales. A lead qualifies in HubSpot, is handed off, rejected in sales, and
recycled back to nurture in HubSpot — the lifecycle stage moved backwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crmbridge_hubspot import plugin
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.settings import load_settings
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

pytestmark = pytest.mark.sandbox

EMAIL = "grace@navy.example"


@pytest.fixture
def runner(
    hubspot_sandbox: HubSpotSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineRunner]:
    env = {
        **hubspot_sandbox.env(),
        "CRMBRIDGE_DEFINITION": str(default_definition_path()),
        "CRMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CRMBRIDGE_PIPELINE__MARKETING": "hubspot",
        "CRMBRIDGE_PIPELINE__SALES": "memory_sales",
        "CRMBRIDGE_MEMORY_SALES__WORLD": "hubspot-engine",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    memory.memory_world("hubspot-engine", fresh=True)
    bridge = CrmBridge(
        load_settings(), entrypoints=False, extra_plugins=[("hubspot", plugin), ("memory", memory)]
    )
    with bridge.connector("hubspot") as connector:
        connector.setup()
    r = PipelineRunner(bridge)
    yield r
    r.close()


def hubspot_contact(sandbox: HubSpotSandbox) -> dict[str, Any]:
    found: dict[str, Any] = sandbox.control.control("get_contact", email=EMAIL)
    props: dict[str, Any] = found["properties"]
    return props


def test_a_lead_is_handed_off_rejected_and_recycled_in_hubspot(
    runner: PipelineRunner, hubspot_sandbox: HubSpotSandbox
) -> None:
    hubspot_sandbox.control.control(
        "seed_contacts",
        contacts=[
            {
                "email": EMAIL,
                "firstname": "Grace",
                "lastname": "Hopper",
                "company": "Navy Labs",
                "jobtitle": "VP of Engineering",
                "industry": "Software",
                "numemployees": "500-1000",
                "country": "US",
                "lead_source": "webinar",
                "hs_analytics_num_page_views": "20",
                "hs_email_click": "5",
                "lifecyclestage": "lead",
            }
        ],
    )
    first = runner.run_cycle()
    assert first.status == "ok", first.error
    assert (first.counts.pulled, first.counts.quarantined, first.counts.handed_off) == (1, 0, 1)
    world = memory.memory_world("hubspot-engine")
    assert world.sales_get(EMAIL)["Status"] == "Open - Not Contacted"
    props = hubspot_contact(hubspot_sandbox)
    assert props["lifecyclestage"] == "marketingqualifiedlead"
    assert props["crmbridge_stage"] == "mql"
    assert props["crmbridge_id"].startswith("cb-")
    assert props["crmbridge_handed_off_at"] < props["crmbridge_sla_due_at"]

    world.sales_set_status(EMAIL, "Closed - Not Converted", "Bad Timing")
    second = runner.run_cycle()
    assert second.status == "ok", second.error
    assert second.counts.outcomes == 1
    props = hubspot_contact(hubspot_sandbox)
    assert props["lifecyclestage"] == "lead"  # moved back: what HubSpot's own sync cannot do
    assert props["hs_lead_status"] == "UNQUALIFIED"
    assert props["crmbridge_outcome"] == "rejected"
    assert props["crmbridge_outcome_reason"] == "Bad timing"

    # crmbridge's own writes, read back, change nothing: no write, no handoff, no stage change.
    third = runner.run_cycle()
    assert third.status == "ok", third.error
    counts = third.counts
    assert (counts.handed_off, counts.outcomes, counts.written_back) == (0, 0, 0)
    assert counts.stage_changes == 0
    assert counts.api_calls["hubspot"] <= 3
