"""``check`` and ``setup``: crmbridge's Lead fields with exactly what an admin adds, mapped fields
the org lacks, picklist drift by value name — and ``crmbridge check`` / ``crmbridge setup`` end to
end through the installed plugin, the env from the sandbox, and the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from crmbridge_salesforce.connector.schema import crmbridge_fields
from crmbridge_salesforce.pytest_plugin import SalesforceSandbox
from crmbridge_salesforce.sandbox.describe import LEAD_STATUSES
from crmbridge_salesforce.testing import connector_for
from typer.testing import CliRunner, Result

from crmbridge import FatalError, LeadWrite
from crmbridge.app import default_definition_path
from crmbridge.cli import app

pytestmark = pytest.mark.sandbox

Factory = Callable[..., SalesforceSandbox]
NEW = "Setup → Object Manager → Lead → Fields & Relationships → New"
STATUSES = [v.value for v in LEAD_STATUSES]


def test_a_complete_org_checks_clean(salesforce_sandbox: SalesforceSandbox) -> None:
    report = connector_for(salesforce_sandbox).check()
    assert report.ok
    assert report.drift == []
    assert [(i.level, i.subject) for i in report.items] == [
        ("ok", "connection"),
        ("ok", "crmbridge fields"),
        ("ok", "API usage"),
    ]


def test_an_unreachable_org_is_an_error_in_the_report(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    connector = connector_for(
        salesforce_sandbox, sandbox_url="http://127.0.0.1:9", connect_timeout_seconds=0.5
    )
    report = connector.check()
    [item] = report.items
    assert (item.level, item.subject) == ("error", "connection")
    assert item.message.startswith("client_credentials login: the connection failed")


def test_missing_crmbridge_fields_say_exactly_what_to_add(
    salesforce_sandbox_factory: Factory,
) -> None:
    sandbox = salesforce_sandbox_factory(lead_custom_fields=["CrmBridge_Score__c"])
    connector = connector_for(sandbox)
    report = connector.check()
    errors = {i.subject: i for i in report.items if i.level == "error"}
    assert sorted(errors) == [
        "Lead.CrmBridge_Definition_Version__c",
        "Lead.CrmBridge_Handoff_At__c",
        "Lead.CrmBridge_Id__c",
        "Lead.CrmBridge_SLA_Breached__c",
        "Lead.CrmBridge_SLA_Due__c",
        "Lead.CrmBridge_Stage__c",
        "Lead.CrmBridge_Why__c",
    ]
    assert errors["Lead.CrmBridge_Id__c"].message == "is missing"
    assert errors["Lead.CrmBridge_Id__c"].fix == (
        f"Lead.CrmBridge_Id__c: Text(64), External ID, Unique (case-insensitive) — {NEW}"
    )
    assert errors["Lead.CrmBridge_Why__c"].fix == (
        f"Lead.CrmBridge_Why__c: Long Text Area(32768) — {NEW}"
    )
    assert errors["Lead.CrmBridge_SLA_Breached__c"].fix == (
        f"Lead.CrmBridge_SLA_Breached__c: Checkbox, default unchecked — {NEW}"
    )
    with pytest.raises(FatalError) as caught:
        connector.push_leads(
            [LeadWrite(email="a@x.com", crmbridge_id="cb-1", fields={"last_name": "A"})]
        )
    assert "the org lacks crmbridge's Lead fields Lead.CrmBridge_Id__c" in str(caught.value)
    assert f"Lead.CrmBridge_Stage__c: Text(40) — {NEW}" in str(caught.value)

    setup = connector.setup()
    assert setup.created == []
    assert setup.existing == ["Lead.CrmBridge_Score__c", "Lead.Rejection_Reason__c",
                              "Opportunity.Loss_Reason__c"]  # fmt: skip
    assert f"Lead.CrmBridge_Id__c: Text(64), External ID, Unique (case-insensitive) — {NEW}" in (
        setup.manual
    )
    assert len(setup.manual) == 7
    assert connector.setup() == setup


def test_drift_and_missing_mapped_fields_are_reported_by_name(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    control = salesforce_sandbox.control
    control.control("set_picklist", field="Lead.Status", values=[*STATUSES[1:], "Nurture"])
    control.control("remove_field", object="Lead", field="Title")
    control.control("remove_field", object="Lead", field="Rejection_Reason__c")
    report = connector_for(salesforce_sandbox).check()
    assert not report.ok
    drift = {(d.picklist, d.value, d.kind) for d in report.drift}
    assert drift == {
        ("Lead.Status", "Nurture", "unmapped"),
        ("Lead.Status", "Open - Not Contacted", "missing"),
    }
    [nurture] = [d for d in report.drift if d.value == "Nurture"]
    assert nurture.message == (
        'lead-definition.toml: [systems.salesforce.picklists."Lead.Status"] has no mapping for '
        "Lead.Status 'Nurture' (found in the salesforce picklist); add it or mark it "
        "`ignore = true`"
    )
    errors = {i.subject: i for i in report.items if i.level == "error"}
    assert errors["Lead.Title"].message == (
        "is mapped to 'job_title' in [systems.salesforce.fields] but the org has no such Lead field"
    )
    reason = errors["Lead.Rejection_Reason__c"]
    assert reason.fix.startswith(
        "Lead.Rejection_Reason__c: Picklist with the values No Budget, Bad Timing, "
    )
    assert reason.fix.endswith(NEW)


def test_the_marketing_fields_are_listed_for_an_admin_when_salesforce_plays_marketing(
    salesforce_sandbox: SalesforceSandbox,
) -> None:
    specs = {s.name: s for s in crmbridge_fields("CrmBridge_Id__c") if s.marketing}
    assert sorted(specs) == [
        "CrmBridge_Accepted_At__c",
        "CrmBridge_Deal_Amount__c",
        "CrmBridge_Outcome_Reason__c",
        "CrmBridge_Outcome__c",
        "CrmBridge_Owner__c",
    ]
    assert specs["CrmBridge_Deal_Amount__c"].instruction() == (
        f"Lead.CrmBridge_Deal_Amount__c: Currency(16, 2) — {NEW}"
    )
    # The example definition makes Salesforce the sales side: these are not asked for.
    assert connector_for(salesforce_sandbox).check().ok


# -- the command line ------------------------------------------------------------------------------

Invoke = Callable[..., Result]
MARKETING_PLUGIN = "from crmbridge.testing.memory import crm_register_connectors  # noqa: F401\n"


@pytest.fixture
def invoke(
    salesforce_sandbox: SalesforceSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Invoke:
    """Run ``crmbridge ARGS`` in-process, Salesforce pointed at the sandbox by its ``env()``."""
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    plugin = tmp_path / "marketing_plugin.py"
    plugin.write_text(MARKETING_PLUGIN, encoding="utf-8")
    env = {
        **salesforce_sandbox.env(),
        "CRMBRIDGE_LOAD_PLUGINS": "salesforce",
        "CRMBRIDGE_PLUGIN_FILE": str(plugin),
        "CRMBRIDGE_DEFINITION": str(default_definition_path()),
        "CRMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'crmbridge.sqlite3'}",
        "CRMBRIDGE_PIPELINE__MARKETING": "memory_marketing",
        "CRMBRIDGE_PIPELINE__SALES": "salesforce",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return run


def test_crmbridge_check_reports_injected_drift_by_name(
    invoke: Invoke, salesforce_sandbox: SalesforceSandbox
) -> None:
    clean = invoke("check")
    assert clean.exit_code == 0, clean.output
    lines = clean.stdout.splitlines()
    assert (
        "! marketing connector 'memory_marketing' is not configured (no "
        "CRMBRIDGE_MEMORY_MARKETING__* settings); skipped"
    ) in lines
    assert any(
        line.startswith("✓ salesforce: connection: logged in with client_credentials to ")
        for line in lines
    )
    assert "✓ salesforce: matches the lead definition" in lines

    salesforce_sandbox.control.control(
        "set_picklist", field="Lead.Status", values=[*STATUSES, "Nurture"]
    )
    drifted = invoke("check")
    assert drifted.exit_code == 1, drifted.output
    assert (
        '✗ salesforce: drift: lead-definition.toml: [systems.salesforce.picklists."Lead.Status"] '
        "has no mapping for Lead.Status 'Nurture' (found in the salesforce picklist); add it or "
        "mark it `ignore = true`"
    ) in drifted.stdout.splitlines()
    secret = salesforce_sandbox.env()["CRMBRIDGE_SALESFORCE__CLIENT_SECRET"]
    assert secret not in drifted.output


def test_crmbridge_setup_twice_changes_nothing(invoke: Invoke) -> None:
    first = invoke("setup")
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert "= salesforce: Lead.CrmBridge_Id__c exists" in lines
    assert "salesforce: nothing to change" in lines
    assert not any(line.startswith("+ ") for line in lines)
    second = invoke("setup")
    assert second.exit_code == 0
    assert second.stdout == first.stdout


@pytest.mark.salesforce_sandbox(lead_custom_fields=False)
def test_crmbridge_setup_tells_the_admin_what_to_add(invoke: Invoke) -> None:
    result = invoke("setup")
    assert result.exit_code == 0, result.output
    assert (
        "! salesforce: an admin must add Lead.CrmBridge_Id__c: Text(64), External ID, Unique "
        f"(case-insensitive) — {NEW}"
    ) in result.stdout.splitlines()
    assert invoke("setup").stdout == result.stdout


def test_the_installed_plugin_registers_the_connector_and_the_sandbox(invoke: Invoke) -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    [salesforce] = [p for p in json.loads(result.stdout) if p["name"] == "salesforce"]
    assert salesforce["connectors"] == ["salesforce"]
    assert salesforce["sandboxes"] == ["salesforce"]
    assert salesforce["hooks"] == ["crm_register_connectors", "crm_register_sandboxes"]
