"""The Salesforce connector inside crmbridge's sync engine: the in-memory marketing system as the
source, Salesforce (the sandbox) as sales. A lead qualifies, is handed off, accepted, converted
and won in Salesforce, and marketing sees each verdict; a cycle with nothing new writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crmbridge_salesforce import plugin
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.testing import FAST_RETRIES, default_definition, give_outcome

from crmbridge import OutcomeKind
from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.settings import load_settings
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

pytestmark = pytest.mark.sandbox

EMAIL = "grace@navy.example"
WORLD = "salesforce-engine"


@pytest.fixture
def runner(
    salesforce_sandbox: SalesforceSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineRunner]:
    env = {
        **salesforce_sandbox.env(),
        **{f"CRMBRIDGE_SALESFORCE__{k.upper()}": str(v) for k, v in FAST_RETRIES.items()},
        "CRMBRIDGE_DEFINITION": str(default_definition_path()),
        "CRMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite3'}",
        "CRMBRIDGE_PIPELINE__MARKETING": "memory_marketing",
        "CRMBRIDGE_PIPELINE__SALES": "salesforce",
        "CRMBRIDGE_MEMORY_MARKETING__WORLD": WORLD,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    memory.memory_world(WORLD, fresh=True)
    bridge = CrmBridge(
        load_settings(),
        entrypoints=False,
        extra_plugins=[("salesforce", plugin), ("memory", memory)],
    )
    r = PipelineRunner(bridge)
    yield r
    r.close()


def sales_lead(sandbox: SalesforceSandbox) -> dict[str, object]:
    [found] = sandbox.control.control("find_leads", email=EMAIL)
    return dict(found)


def test_a_lead_is_handed_off_accepted_converted_and_won(
    runner: PipelineRunner, salesforce_sandbox: SalesforceSandbox
) -> None:
    world = memory.memory_world(WORLD)
    world.marketing_add(
        email=EMAIL, firstname="Grace", lastname="Hopper", company="Navy Labs",
        jobtitle="VP of Engineering", industry="Software", numemployees=800, country="US",
        lead_source="webinar", hs_analytics_num_page_views=20, hs_email_click=5,
        lifecyclestage="lead",
    )  # fmt: skip
    first = runner.run_cycle()
    assert first.status == "ok", first.error
    assert (first.counts.pulled, first.counts.handed_off) == (1, 1)
    lead = sales_lead(salesforce_sandbox)
    assert lead["Status"] == "Open - Not Contacted"
    assert lead["Company"] == "Navy Labs"
    assert lead["CrmBridge_Stage__c"] == "mql"
    assert str(lead["CrmBridge_Id__c"]).startswith("cb-")
    assert world.marketing_get(EMAIL)["crmbridge_stage"] == "mql"

    mapping = default_definition().system("salesforce")
    give_outcome(salesforce_sandbox, mapping, str(lead["Id"]), OutcomeKind.ACCEPTED)
    second = runner.run_cycle()
    assert second.status == "ok", second.error
    assert second.counts.outcomes == 1
    assert world.marketing_get(EMAIL)["hs_lead_status"] == "IN_PROGRESS"

    give_outcome(salesforce_sandbox, mapping, str(lead["Id"]), OutcomeKind.WON, amount=48_000.0)
    third = runner.run_cycle()
    assert third.status == "ok", third.error
    assert third.counts.outcomes == 2  # converted, then won
    contact = world.marketing_get(EMAIL)
    assert contact["lifecyclestage"] == "customer"
    assert contact["crmbridge_deal_amount"] == 48_000.0

    fourth = runner.run_cycle()
    assert fourth.status == "ok", fourth.error
    counts = fourth.counts
    assert (counts.handed_off, counts.outcomes, counts.written_back) == (0, 0, 0)
    # Leads and opportunities since the cursor, and the delete log: three calls.
    assert counts.api_calls["salesforce"] == 3
