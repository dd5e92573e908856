"""``crmbridge check`` and ``crmbridge setup`` end to end: the installed plugin's entry point, the
settings read from ``CRMBRIDGE_HUBSPOT__*``, and a sandbox portal behind them.

The sales side is an installed but unconfigured connector (the in-memory one, from a local plugin
file), which ``check`` reports as a warning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from crmbridge_hubspot.connector.schema import CRMBRIDGE_PROPERTIES
from crmbridge_hubspot.pytest_plugin import HubSpotSandbox
from crmbridge_hubspot.testing import add_option
from typer.testing import CliRunner, Result

from crmbridge.app import default_definition_path
from crmbridge.cli import app

pytestmark = pytest.mark.sandbox

Invoke = Callable[..., Result]
SALES_PLUGIN = "from crmbridge.testing.memory import crm_register_connectors  # noqa: F401\n"


@pytest.fixture
def invoke(
    hubspot_sandbox: HubSpotSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Invoke:
    """Run ``crmbridge ARGS`` in-process with the env pointing HubSpot at the sandbox."""
    for key in list(os.environ):
        if key.startswith("CRMBRIDGE_"):
            monkeypatch.delenv(key)
    plugin = tmp_path / "sales_plugin.py"
    plugin.write_text(SALES_PLUGIN, encoding="utf-8")
    env = {
        **hubspot_sandbox.env(),
        "CRMBRIDGE_LOAD_PLUGINS": "hubspot",
        "CRMBRIDGE_PLUGIN_FILE": str(plugin),
        "CRMBRIDGE_DEFINITION": str(default_definition_path()),
        "CRMBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'crmbridge.sqlite3'}",
        "CRMBRIDGE_PIPELINE__MARKETING": "hubspot",
        "CRMBRIDGE_PIPELINE__SALES": "memory_sales",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return run


def test_check_then_setup_then_check(invoke: Invoke, hubspot_sandbox: HubSpotSandbox) -> None:
    first = invoke("check")
    assert first.exit_code == 1, first.output
    lines = first.stdout.splitlines()
    assert any(
        line.startswith("✓ hubspot: connection: HubSpot answered at http://127.0.0.1:")
        for line in lines
    )
    missing = ", ".join(spec.name for spec in CRMBRIDGE_PROPERTIES)
    assert (
        f"✗ hubspot: crmbridge properties: {len(CRMBRIDGE_PROPERTIES)} of crmbridge's contact "
        f"properties are missing: {missing} — run `crmbridge setup`"
    ) in lines
    assert (
        "! sales connector 'memory_sales' is not configured (no CRMBRIDGE_MEMORY_SALES__* "
        "settings); skipped"
    ) in lines
    assert hubspot_sandbox.token not in first.output

    setup = invoke("setup")
    assert setup.exit_code == 0, setup.output
    created = [line for line in setup.stdout.splitlines() if line.startswith("+ hubspot:")]
    assert created[0] == "+ hubspot: created property group crmbridge"
    assert "+ hubspot: created contact property crmbridge_outcome (enumeration)" in created
    assert len(created) == 1 + len(CRMBRIDGE_PROPERTIES)

    again = invoke("setup")
    assert again.exit_code == 0, again.output
    assert "hubspot: nothing to change" in again.stdout.splitlines()

    second = invoke("check")
    assert second.exit_code == 0, second.output
    lines = second.stdout.splitlines()
    assert "✓ hubspot: crmbridge properties: all present" in lines
    assert "✓ hubspot: matches the lead definition" in lines
    assert any(line.startswith("! hubspot: property numemployees:") for line in lines)


def test_check_reports_drift_and_fails(invoke: Invoke, hubspot_sandbox: HubSpotSandbox) -> None:
    assert invoke("setup").exit_code == 0
    add_option(hubspot_sandbox, "lifecyclestage", "recycled")
    result = invoke("check")
    assert result.exit_code == 1, result.output
    assert (
        "✗ hubspot: drift: lead-definition.toml: [systems.hubspot.picklists.lifecyclestage] has "
        "no mapping for lifecyclestage 'recycled' (found in the hubspot picklist); add it or mark "
        "it `ignore = true`"
    ) in result.stdout.splitlines()


def test_check_reports_a_refused_token(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMBRIDGE_HUBSPOT__ACCESS_TOKEN", "pat-na1-not-the-token")
    result = invoke("check")
    assert result.exit_code == 1
    [line] = [x for x in result.stdout.splitlines() if x.startswith("✗ hubspot: token:")]
    assert "HubSpot refused the access token" in line
    assert "CRMBRIDGE_HUBSPOT__ACCESS_TOKEN" in line
    assert "pat-na1-not-the-token" not in result.output


def test_the_installed_plugin_registers_the_connector_and_the_sandbox(invoke: Invoke) -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    [hubspot] = [p for p in json.loads(result.stdout) if p["name"] == "hubspot"]
    assert hubspot["kind"] == "entrypoint"
    assert hubspot["module"] == "crmbridge_hubspot.plugin"
    assert hubspot["hooks"] == ["crm_register_connectors", "crm_register_sandboxes"]
    assert hubspot["connectors"] == ["hubspot"]
    assert hubspot["sandboxes"] == ["hubspot"]
