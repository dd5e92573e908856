"""The tutorial's finished plugin (docs/tutorial/crmbridge-target-accounts) passes its own tests,
lints clean, and still starts from what ``crmbridge plugin new`` writes today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crmbridge.scaffold import plugin_names, render
from tests.docs.markdown import REPO

TUTORIAL = REPO / "docs" / "tutorial" / "crmbridge-target-accounts"
BIN = Path(sys.executable).parent
CACHES = ("__pycache__", "_cache", ".egg-info")


def test_the_finished_plugin_passes_its_tests() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRMBRIDGE_", "PYTEST_"))}
    env["PYTHONPATH"] = str(TUTORIAL)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-k", "not installed_under_its_entry_point"],
        cwd=TUTORIAL, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed, 1 deselected" in done.stdout


def test_the_files_the_tutorial_leaves_alone_are_the_scaffolds() -> None:
    scaffold = render("hooks", plugin_names("target-accounts"))
    for unchanged in ("pyproject.toml", "tests/conftest.py", ".gitignore",
                      "crmbridge_target_accounts/py.typed"):  # fmt: skip
        assert (TUTORIAL / unchanged).read_text(encoding="utf-8") == scaffold[unchanged], unchanged
    assert set(scaffold) == {
        str(p.relative_to(TUTORIAL)) for p in TUTORIAL.rglob("*") if p.is_file()
        and not any(part.endswith(CACHES) for part in p.parts)
    }  # fmt: skip


def test_the_finished_plugin_lints_clean() -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run(
            [str(BIN / "ruff"), *command, "--no-cache"], cwd=TUTORIAL,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
