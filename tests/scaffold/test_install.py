"""The acceptance test of ``crmbridge plugin new``: in a fresh virtual environment (no system site
packages) holding only crmbridge built from this checkout, a new hook plugin and a new connector
install, pass their own tests, and are listed by ``crmbridge plugins``.

Offline: crmbridge's dependencies are repacked from this environment into a wheelhouse and
crmbridge and the plugins are built with the hatchling installed here, so pip runs with
``--no-index``. When hatchling is not installed here, pip builds them itself (and may fetch
hatchling from the configured index).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import venv
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.scaffold import wheelhouse

REPO = Path(__file__).resolve().parents[2]


def run(args: Sequence[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_new_plugins_install_and_pass_their_tests_in_a_fresh_environment(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRMBRIDGE_", "PYTEST_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, dist in wheelhouse.closure(["crmbridge", "pytest"]).items():
        if name != "crmbridge":  # crmbridge itself comes from this checkout
            wheelhouse.repack(dist, wheels)
    offline = importlib.util.find_spec("hatchling") is not None
    source: list[str | Path] = [wheelhouse.build(REPO, wheels)] if offline else [REPO]

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(target)
    python = target / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--find-links", wheels]
    if offline:
        pip.append("--no-index")
    run([*pip, *source], cwd=tmp_path, env=env)
    outside = run([python, "-c", "import sys; print(sys.path)"], cwd=tmp_path, env=env)
    assert str(REPO / ".venv") not in outside, "the fresh environment must not see this one"

    plugins = tmp_path / "plugins"
    crmbridge = target / "bin" / "crmbridge"
    run([crmbridge, "plugin", "new", "acme-scoring", "-d", plugins], cwd=tmp_path, env=env)
    run([crmbridge, "plugin", "new", "acme-crm", "--connector", "-d", plugins], cwd=tmp_path,
        env=env)  # fmt: skip
    made = [plugins / "crmbridge-acme-scoring", plugins / "crmbridge-acme-crm"]
    built = [wheelhouse.build(p, wheels) for p in made] if offline else made
    run([*pip, *(f"{p}[test]" for p in built)], cwd=tmp_path, env=env)

    for project in made:
        output = run(
            [python, "-m", "pytest", "-rA", "-p", "no:cacheprovider"], cwd=project, env=env
        )
        assert "test_the_plugin_is_installed_under_its_entry_point" in output
        assert "PASSED" in output
        assert " failed" not in output
        assert "error" not in output.splitlines()[-1]

    listed = json.loads(run([crmbridge, "plugins", "--json"], cwd=tmp_path, env=env))
    by_name = {p["name"]: p for p in listed}
    assert by_name["acme_scoring"]["distribution"] == "crmbridge-acme-scoring"
    assert by_name["acme_scoring"]["hooks"] == ["crm_lead_quarantined", "crm_score_lead"]
    assert by_name["acme_crm"]["connectors"] == ["acme_crm"]
    assert {p["kind"] for p in listed if p["name"].startswith("acme_")} == {"entrypoint"}
