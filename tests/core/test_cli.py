"""The ``crmbridge`` commands of the core: check, plugins, config show, init, db upgrade.

Installed plugins are left out (``CRMBRIDGE_LOAD_PLUGINS=""``) so these tests see the core and
the plugins they bring themselves, whatever else is installed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from crmbridge.cli import app, basic
from crmbridge.definition import LeadDefinition
from crmbridge.settings import load_settings
from crmbridge.store.migrate import head_revision
from tests.core.conftest import DEFINITION_PATH, DEFINITION_TEXT

Invoke = Callable[..., Result]
DB_PASSWORD = "Pg-pass-9e1f77"
TOKEN = "demo-key-5d41402abc4b2a76"

DEMO_PLUGIN = """
from pydantic import SecretStr

from crmbridge import ApiUsage, CheckReport, Connector, ConnectorSettings, SetupReport, hookimpl


class DemoSettings(ConnectorSettings):
    api_key: SecretStr
    region: str = "eu"


class DemoConnector(Connector):
    name = "demo"
    system = "hubspot"
    settings_class = DemoSettings

    def check(self):
        report = CheckReport(self.name)
        report.add("ok", "api", "reachable")
        actual = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
                  "opportunity", "customer", "other", "nurture"]
        report.drift.extend(self.mapping.picklist("lifecyclestage").drift(actual))
        return report

    def setup(self, *, dry_run=False):
        return SetupReport(self.name)

    def api_usage(self):
        return ApiUsage(self.name)


@hookimpl
def crm_register_connectors(register):
    register(DemoConnector)
"""


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run ``crmbridge ARGS`` in-process, without installed plugins."""
    monkeypatch.setenv("CRMBRIDGE_LOAD_PLUGINS", "")

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, list(args))

    return run


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables drawn 250 columns wide, so a cell's text is on one line (pure layout)."""
    monkeypatch.setattr(basic, "console", Console(width=250))


@pytest.fixture
def demo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local plugin file registering the ``demo`` connector (HubSpot's mapping, a secret)."""
    path = tmp_path / "demo_plugin.py"
    path.write_text(DEMO_PLUGIN, encoding="utf-8")
    monkeypatch.setenv("CRMBRIDGE_PLUGIN_FILE", str(path))
    return path


def env_file(tmp_path: Path, text: str) -> Path:
    """A private env file."""
    path = tmp_path / "crmbridge.env"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# -- check ----------------------------------------------------------------------------------------


def test_check_offline_accepts_the_example_definition(invoke: Invoke) -> None:
    result = invoke("check", "--offline", "--definition", str(DEFINITION_PATH))
    assert result.exit_code == 0, result.output
    d = LeadDefinition.load(DEFINITION_PATH)
    assert result.stdout.splitlines() == [
        f"✓ lead definition {DEFINITION_PATH} (version 2026.11.1, hash {d.content_hash}): "
        "9 stages, 15 fields, 11 scoring rules, systems hubspot, salesforce",
        "✓ plugins: crmbridge.normalize, crmbridge.definition, crmbridge.routing",
    ]


@pytest.mark.parametrize("how", ["option", "environment"])
def test_check_reports_a_broken_definition_by_key(
    how: str, invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        DEFINITION_TEXT.replace("[thresholds.mql]", "[thresholds.mq1]"), encoding="utf-8"
    )
    if how == "option":
        result = invoke("check", "--offline", "--definition", str(broken))
    else:
        monkeypatch.setenv("CRMBRIDGE_DEFINITION", str(broken))
        result = invoke("check", "--offline")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: broken.toml: [thresholds.mq1] refers to stage 'mq1', which is not in [stages]; "
        "use one of subscriber, lead, mql, sal, sql, opportunity, customer, recycled, "
        "disqualified",
        "error: broken.toml: [thresholds.mql] is missing; the handoff stage 'mql' needs a score "
        "threshold; add [thresholds.mql] score = N",
    ]


def test_check_online_reports_connectors_and_drift(
    invoke: Invoke, demo_plugin: Path, tmp_path: Path
) -> None:
    env = env_file(
        tmp_path,
        f"CRMBRIDGE_DEFINITION={DEFINITION_PATH}\nCRMBRIDGE_PIPELINE__MARKETING=demo\n"
        f"CRMBRIDGE_DEMO__API_KEY={TOKEN}\n",
    )
    result = invoke("--env-file", str(env), "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "✓ demo: api: reachable" in lines
    assert (
        "✗ demo: drift: lead-definition.toml: [systems.hubspot.picklists.lifecyclestage] has no "
        "mapping for lifecyclestage 'nurture' (found in the hubspot picklist); add it or mark it "
        "`ignore = true`"
    ) in lines
    assert "✗ sales connector 'salesforce' is not installed" in lines
    assert TOKEN not in result.output


# -- plugins --------------------------------------------------------------------------------------


def test_plugins_json_lists_the_builtins_and_their_hooks(invoke: Invoke) -> None:
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(p["name"], p["kind"], p["hooks"]) for p in listed] == [
        ("crmbridge.normalize", "builtin", ["crm_normalize_lead"]),
        (
            "crmbridge.definition",
            "builtin",
            ["crm_qualify_lead", "crm_score_lead", "crm_validate_lead"],
        ),
        ("crmbridge.routing", "builtin", ["crm_route_lead"]),
    ]


def test_plugins_json_shows_a_plugins_connectors(invoke: Invoke, demo_plugin: Path) -> None:
    listed = json.loads(invoke("plugins", "--json").stdout)
    local = listed[-1]
    assert local == {
        "name": "crmbridge_local_demo_plugin",
        "kind": "local",
        "version": "local",
        "module": str(demo_plugin),
        "distribution": None,
        "hooks": ["crm_register_connectors"],
        "connectors": ["demo"],
        "sandboxes": [],
    }


def test_plugins_table(invoke: Invoke, monkeypatch: pytest.MonkeyPatch, wide: None) -> None:
    monkeypatch.setenv("CRMBRIDGE_DISABLE_PLUGINS", "crmbridge.routing")
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    assert "crmbridge.normalize" in result.stdout
    assert "crm_validate_lead" in result.stdout
    assert "crmbridge.routing" not in result.stdout


def test_a_plugin_that_fails_to_load_stops_the_command(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("raise ImportError('needs the requests-oauthlib package')\n")
    monkeypatch.setenv("CRMBRIDGE_PLUGIN_FILE", str(broken))
    result = invoke("plugins")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: plugin file {broken} failed to load: ImportError: needs the "
        "requests-oauthlib package (fix the file or unset CRMBRIDGE_PLUGIN_FILE)"
    ]


# -- config show ----------------------------------------------------------------------------------


def test_config_show_redacts_every_secret(
    invoke: Invoke, demo_plugin: Path, tmp_path: Path, wide: None
) -> None:
    env = env_file(
        tmp_path,
        f"CRMBRIDGE_DATABASE_URL=postgresql+psycopg://crm:{DB_PASSWORD}@db.internal/crm\n"
        f"CRMBRIDGE_PIPELINE__MARKETING=demo\nCRMBRIDGE_DEMO__API_KEY={TOKEN}\n",
    )
    table = invoke("--env-file", str(env), "config", "show")
    as_json = invoke("--env-file", str(env), "config", "show", "--json")
    for result in (table, as_json):
        assert result.exit_code == 0, result.output
        assert DB_PASSWORD not in result.output
        assert TOKEN not in result.output

    rows = {row["key"]: row for row in json.loads(as_json.stdout)}
    assert rows["CRMBRIDGE_DATABASE_URL"] == {
        "key": "CRMBRIDGE_DATABASE_URL",
        "value": "postgresql+psycopg://crm:***@db.internal/crm",
        "source": f"{env}:1",
        "secret": True,
    }
    assert rows["CRMBRIDGE_DEMO__API_KEY"] == {
        "key": "CRMBRIDGE_DEMO__API_KEY",
        "value": "**********",
        "source": f"{env}:3",
        "secret": True,
    }
    assert rows["CRMBRIDGE_DEMO__REGION"]["value"] == "eu"
    assert rows["CRMBRIDGE_LOAD_PLUGINS"]["source"] == "environment"
    assert "postgresql+psycopg://crm:***@db.internal/crm" in table.stdout
    assert "**********" in table.stdout


# -- init -----------------------------------------------------------------------------------------


def test_init_writes_a_private_env_file_and_a_definition_that_loads(
    invoke: Invoke, tmp_path: Path
) -> None:
    target = tmp_path / "new-project"
    result = invoke("init", str(target))
    assert result.exit_code == 0, result.output
    env, definition = target / ".env", target / "lead-definition.toml"
    assert result.stdout.splitlines()[0] == f"wrote {env} (mode 600) and {definition}"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert definition.read_text(encoding="utf-8") == DEFINITION_TEXT
    assert LeadDefinition.load(definition).version == "2026.11.1"

    settings = load_settings([env])
    assert settings.definition == definition.resolve()
    assert settings.database_url.get_secret_value() == (
        f"sqlite:///{(target / 'crmbridge.sqlite3').resolve()}"
    )
    assert settings.pipeline.marketing == "hubspot"


def test_init_never_overwrites(invoke: Invoke, tmp_path: Path) -> None:
    assert invoke("init", str(tmp_path)).exit_code == 0
    env = tmp_path / ".env"
    env.write_text("# my own settings\n")
    result = invoke("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {env}, {tmp_path / 'lead-definition.toml'} already exist; nothing was written",
        "hint: choose another folder or move the file away",
    ]
    assert env.read_text() == "# my own settings\n"


def test_init_names_the_one_file_in_the_way(invoke: Invoke, tmp_path: Path) -> None:
    (tmp_path / "lead-definition.toml").write_text("version = 'mine'\n")
    result = invoke("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: {tmp_path / 'lead-definition.toml'} already exists; nothing was written"
    )
    assert not (tmp_path / ".env").exists()


# -- db upgrade -----------------------------------------------------------------------------------


def test_db_upgrade_prints_the_revision_and_is_idempotent(
    invoke: Invoke, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", store_url)
    head = head_revision()
    first = invoke("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.rstrip().endswith(f": schema upgraded empty → {head}")
    second = invoke("db", "upgrade")
    assert second.exit_code == 0, second.output
    assert second.stdout.rstrip().endswith(f": schema is current ({head})")


def test_db_upgrade_shows_the_sqlite_path(invoke: Invoke, tmp_path: Path) -> None:
    database = tmp_path / "state" / "crmbridge.sqlite3"
    env = env_file(tmp_path, f"CRMBRIDGE_DATABASE_URL=sqlite:///{database}\n")
    result = invoke("--env-file", str(env), "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"sqlite:///{database}: schema upgraded empty → {head_revision()}\n"
    assert database.exists()
    assert os.access(database, os.R_OK)


def test_narrow_output_wraps_and_never_cuts(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Piped output is 80 columns wide: lines stay whole, table cells wrap, nothing ends in "…".
    monkeypatch.setattr(basic, "console", Console(width=80))
    check = invoke("check", "--offline", "--definition", str(DEFINITION_PATH))
    table = invoke("config", "show")
    assert len(check.stdout.splitlines()) == 2
    assert max(len(line) for line in check.stdout.splitlines()) > 80
    assert "…" not in table.stdout
    assert "CRMBRIDGE_PIPELINE__POLL_SECOND" in table.stdout


def test_load_plugins_naming_an_unknown_plugin_stops_the_command(
    invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMBRIDGE_LOAD_PLUGINS", "no-such-plugin")
    result = invoke("plugins", "--json")
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "error: CRMBRIDGE_LOAD_PLUGINS names no-such-plugin, which is not installed; installed: "
    )
    assert line.endswith("(install the plugin or fix the name)")
