"""Every example config in configs/ loads: env files parse into Settings (and their connector
sections), the lead definition loads (also with the CSV plugin's snippet), and the systemd unit
has the keys docs/operations.md relies on."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from crmbridge_csv import definition_snippet

from crmbridge import LeadDefinition, load_settings
from tests.docs.markdown import REPO

CONFIGS = REPO / "configs"
ENV_FILES = sorted(CONFIGS.glob("*.env"))
UNIT = CONFIGS / "crmbridge.service"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)


def test_there_are_example_env_files() -> None:
    assert ENV_FILES, "configs/ holds no *.env"


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_every_env_file_parses_into_settings(path: Path) -> None:
    settings = load_settings([path])
    assert settings.env_files == (path,)
    definition = (
        settings.definition if settings.definition.is_absolute() else REPO / settings.definition
    )
    assert definition.is_file(), (
        f"{path.name}: CRMBRIDGE_DEFINITION {settings.definition} is missing"
    )
    assert settings.pipeline.marketing
    assert settings.pipeline.sales


def test_the_lead_definition_loads_alone_and_with_the_csv_system() -> None:
    text = (CONFIGS / "lead-definition.toml").read_text(encoding="utf-8")
    definition = LeadDefinition.load(CONFIGS / "lead-definition.toml")
    assert {"hubspot", "salesforce"} <= set(definition.systems)
    with_csv = LeadDefinition.from_text(text + "\n" + definition_snippet())
    assert with_csv.system("csv").role == "marketing"


def unit() -> dict[str, dict[str, list[str]]]:
    """The unit file's sections and keys; a key may repeat (EnvironmentFile=)."""
    found: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            found[section] = {}
            continue
        key, _, value = line.partition("=")
        found[section].setdefault(key, []).append(value)
    return found


def test_the_systemd_unit_has_the_expected_keys() -> None:
    sections = unit()
    assert list(sections) == ["Unit", "Service", "Install"]
    service = sections["Service"]
    assert service["ExecStart"] == ["/opt/crmbridge/bin/crmbridge run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["EnvironmentFile"] == [
        "/etc/crmbridge/crmbridge.env",
        "-/etc/crmbridge/crmbridge.local.env",
    ]
    assert service["RestartPreventExitStatus"] == ["2"]
    assert service["User"] == ["crmbridge"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "SystemCallFilter": "@system-service",
    }.items():
        assert service[key] == [value], key
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    assert sections["Unit"]["After"] == ["network-online.target"]
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    assert parser.get("Service", "Type") == "exec"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8").replace("/opt/crmbridge/bin/crmbridge", "/bin/true")
    copy = tmp_path / "crmbridge.service"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    complaints = [line for line in done.stderr.splitlines() if str(copy) in line]
    assert complaints == [], done.stderr
