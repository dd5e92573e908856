"""Fixtures of the core's tests: the example definition, a clean environment, clean logging."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crmbridge.definition import LeadDefinition

REPO = Path(__file__).resolve().parents[2]
DEFINITION_PATH = REPO / "configs" / "lead-definition.toml"
DEFINITION_TEXT = DEFINITION_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def definition() -> LeadDefinition:
    """The example lead definition of ``configs/`` (shared: never change it in a test)."""
    return LeadDefinition.load(DEFINITION_PATH)


@pytest.fixture
def definition_data() -> dict[str, Any]:
    """A fresh parsed copy of the example definition, to break or extend in a test."""
    return tomllib.loads(DEFINITION_TEXT)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``CRMBRIDGE_*`` variable of the person running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_") and name != "CRMBRIDGE_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _restore_crmbridge_logger() -> Iterator[None]:
    """Undo ``configure_logging`` (a CLI command calls it): handlers, level, propagation."""
    logger = logging.getLogger("crmbridge")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            logger.removeHandler(handler)
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@dataclass
class Distributions:
    """Throw-away installed distributions: ``*.dist-info`` folders and modules in a folder on
    ``sys.path``, found by ``importlib.metadata`` exactly as a pip-installed plugin is."""

    root: Path
    modules: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        version: str,
        entry_points: Mapping[str, str],
        modules: Mapping[str, str],
    ) -> None:
        """Install distribution ``name`` with ``crmbridge`` entry points and module sources."""
        info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = [f"{ep} = {target}" for ep, target in entry_points.items()]
        (info / "entry_points.txt").write_text(
            "[crmbridge]\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(source, encoding="utf-8")
            self.modules.append(module)
        importlib.invalidate_caches()


@pytest.fixture
def distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Distributions]:
    """Install throw-away plugin distributions for one test; gone (modules too) after it."""
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    installed = Distributions(root)
    yield installed
    for module in installed.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()
