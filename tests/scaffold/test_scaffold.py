"""``crmbridge plugin new``: names checked with a clear message, folders never overwritten, next
steps printed, and the plugins it writes pass their own tests and lint as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmbridge.cli import app
from crmbridge.scaffold import KINDS, ScaffoldError, create_plugin, plugin_names, render

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_names_are_derived_from_the_one_given() -> None:
    names = plugin_names("acme-crm")
    assert (names.dist, names.package, names.entry_point, names.class_name, names.title) == (
        "crmbridge-acme-crm",
        "crmbridge_acme_crm",
        "acme_crm",
        "AcmeCrm",
        "Acme Crm",
    )
    assert plugin_names("crmbridge-acme-crm") == names
    assert plugin_names("acme_crm").dist == "crmbridge-acme-crm"
    assert names.substitutions()["env_prefix"] == "CRMBRIDGE_ACME_CRM__"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Acme", "plugin name 'Acme' has 'A' at position 1; use lower-case letters, digits, '-' "
                 "and '_'"),
        ("acme.crm", "plugin name 'acme.crm' has '.' at position 5"),
        ("acme crm", "plugin name 'acme crm' has a space at position 5"),
        ("acme/crm", "plugin name 'acme/crm' has '/' at position 5"),
        ("1acme", "plugin name '1acme' must start with a letter, and '-' or '_' must stand "
                  "between letters or digits"),
        ("acme--crm", "must start with a letter, and '-' or '_' must stand between"),
        ("acme-", "must start with a letter"),
        ("crmbridge-", "plugin name 'crmbridge-' is empty once the 'crmbridge-' prefix is taken "
                       "off"),
    ],
)  # fmt: skip
def test_a_bad_name_is_refused_naming_the_character(name: str, message: str) -> None:
    with pytest.raises(ScaffoldError) as caught:
        plugin_names(name)
    assert message in caught.value.message
    assert caught.value.hint


def test_every_kind_renders_a_distribution_with_an_entry_point() -> None:
    names = plugin_names("acme")
    for kind in KINDS:
        files = render(kind, names)
        assert {"pyproject.toml", "README.md", ".gitignore", "crmbridge_acme/plugin.py"} <= set(
            files
        )
        assert (
            '[project.entry-points.crmbridge]\nacme = "crmbridge_acme.plugin"'
            in (files["pyproject.toml"])
        )
        assert not any("${" in text for text in files.values()), "an unfilled placeholder"
        tests = [path for path in files if path.startswith("tests/test_")]
        assert tests
        assert all(Path(path).name.startswith("test_acme_") for path in tests)
        assert "tests/__init__.py" not in files
    connector = render("connector", names)
    assert "[systems.acme]" in connector["crmbridge_acme/systems.toml"]
    assert "ConnectorConformance" in connector["tests/test_acme_connector.py"]
    with pytest.raises(ScaffoldError, match="unknown plugin kind 'widget'"):
        render("widget", names)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_the_command_writes_the_plugin_and_prints_the_next_steps(tmp_path: Path) -> None:
    code, output = invoke("plugin", "new", "acme-crm", "--connector", "--directory", str(tmp_path))
    assert code == 0, output
    target = tmp_path / "crmbridge-acme-crm"
    assert (target / "crmbridge_acme_crm" / "connector.py").is_file()
    assert f"created {target} (a connector, 'acme_crm'):" in output
    assert "  crmbridge_acme_crm/systems.toml" in output
    for step in (
        f"  cd {target}",
        "  pip install -e '.[test]'",
        "  pytest",
        "  cat crmbridge_acme_crm/systems.toml >> YOUR-lead-definition.toml",
        "  crmbridge plugins   # lists 'acme_crm'",
    ):
        assert step in output


def test_the_command_never_overwrites_a_folder(tmp_path: Path) -> None:
    (tmp_path / "crmbridge-acme").mkdir()
    (tmp_path / "crmbridge-acme" / "mine.py").write_text("keep me\n", encoding="utf-8")
    code, output = invoke("plugin", "new", "acme", "-d", str(tmp_path))
    assert code == 2
    assert f"error: {tmp_path / 'crmbridge-acme'} already exists; nothing was written" in output
    assert "choose another name or another --directory" in output
    assert [p.name for p in (tmp_path / "crmbridge-acme").iterdir()] == ["mine.py"]


def test_the_command_names_a_bad_character(tmp_path: Path) -> None:
    code, output = invoke("plugin", "new", "acme.crm", "-d", str(tmp_path))
    assert code == 2
    assert "error: plugin name 'acme.crm' has '.' at position 5" in output
    assert "for example 'acme-crm'" in output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_plugin_passes_its_own_tests_and_lint(tmp_path: Path, kind: str) -> None:
    """Run in place (not installed, so the entry-point test is left to the slow install test)."""
    created = create_plugin("acme-crm", tmp_path, kind=kind)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMBRIDGE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(created.path)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-k", "not installed_under_its_entry_point"],
        cwd=created.path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout
    assert " failed" not in tests.stdout
    for command in (["check", "."], ["format", "--check", "."]):
        lint = subprocess.run(
            [str(BIN / "ruff"), *command, "--no-cache"], cwd=created.path,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert lint.returncode == 0, lint.stdout + lint.stderr
