"""Fixtures for this plugin's tests, on crmbridge's testing tools: the example lead definition,
a hook context, a plugin manager holding this plugin, and sync cycles on crmbridge's in-memory
marketing and sales systems (no network, no account)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from crmbridge import HookContext, LeadDefinition, load_settings
from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.plugins import PluginManager, make_plugin_manager
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

from crmbridge_target_accounts import plugin


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRMBRIDGE_* variable of the person running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def definition() -> LeadDefinition:
    """crmbridge's example lead definition."""
    return LeadDefinition.load(default_definition_path())


@pytest.fixture
def plugin_manager() -> PluginManager:
    """crmbridge's plugin manager with its built-in plugins and this one (and no other)."""
    return make_plugin_manager(entrypoints=False, extra=[("target_accounts", plugin)])


@pytest.fixture
def hook_context(definition: LeadDefinition) -> HookContext:
    """The context every lifecycle hook receives, outside a run."""
    return HookContext(settings=load_settings(), definition=definition)


@pytest.fixture
def world() -> memory.MemoryWorld:
    """A fresh in-memory marketing and sales system; act as people through it."""
    return memory.memory_world("target_accounts", fresh=True)


@pytest.fixture
def runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: memory.MemoryWorld
) -> Iterator[PipelineRunner]:
    """Runs sync cycles: the memory systems, a SQLite store in tmp_path, and this plugin."""
    monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__MARKETING", "memory_marketing")
    monkeypatch.setenv("CRMBRIDGE_PIPELINE__SALES", "memory_sales")
    monkeypatch.setenv("CRMBRIDGE_MEMORY_MARKETING__WORLD", world.name)
    monkeypatch.setenv("CRMBRIDGE_MEMORY_SALES__WORLD", world.name)
    bridge = CrmBridge(
        load_settings(),
        definition=LeadDefinition.load(default_definition_path()),
        entrypoints=False,
        extra_plugins=[("memory", memory), ("target_accounts", plugin)],
    )
    pipeline = PipelineRunner(bridge)
    yield pipeline
    pipeline.close()
