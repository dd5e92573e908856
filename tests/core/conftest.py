"""Fixtures of the core's tests: the example definition, a clean environment, clean logging."""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterator
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
