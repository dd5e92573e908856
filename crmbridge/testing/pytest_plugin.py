"""crmbridge's pytest plugin (entry point ``pytest11``): fixtures for plugin authors.

Installed with crmbridge, so any plugin's tests can use them without a conftest:

* ``crmbridge_definition`` — the example lead definition (``configs/lead-definition.toml``);
* ``crmbridge_plugin_manager(*plugins)`` — a plugin manager with the built-ins and these plugins;
* ``crmbridge_context`` — the context lifecycle hooks receive, outside a run;
* ``memory_world`` — a fresh in-memory marketing and sales system (act as people through it);
* ``crmbridge_runner(*plugins)`` — runs sync cycles on the memory systems with a SQLite store in
  ``tmp_path`` and these plugins.

The vendor plugins add their sandboxes as fixtures too (``hubspot_sandbox``,
``salesforce_sandbox``), and :mod:`crmbridge.testing.conformance` is the connector suite.
Fixture names are prefixed so they never shadow a project's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crmbridge.app import CrmBridge, default_definition_path
from crmbridge.context import HookContext
from crmbridge.definition import LeadDefinition
from crmbridge.plugins import PluginManager, make_plugin_manager
from crmbridge.settings import load_settings
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

Plugin = tuple[str, object]


@pytest.fixture
def crmbridge_definition() -> LeadDefinition:
    """crmbridge's example lead definition."""
    return LeadDefinition.load(default_definition_path())


@pytest.fixture
def crmbridge_plugin_manager() -> Callable[..., PluginManager]:
    """``crmbridge_plugin_manager(("name", plugin), ...)``: the built-ins plus these plugins,
    and no installed plugin (so a test sees only what it asks for)."""

    def make(*plugins: Plugin) -> PluginManager:
        return make_plugin_manager(entrypoints=False, extra=list(plugins))

    return make


@pytest.fixture
def crmbridge_context(
    crmbridge_definition: LeadDefinition, monkeypatch: pytest.MonkeyPatch
) -> HookContext:
    """The context every lifecycle hook receives, outside a run (no store)."""
    _clean_environment(monkeypatch)
    return HookContext(settings=load_settings(), definition=crmbridge_definition)


@pytest.fixture
def memory_world(request: pytest.FixtureRequest) -> memory.MemoryWorld:
    """A fresh in-memory marketing and sales system, named after the test."""
    return memory.memory_world(f"test-{request.node.nodeid}", fresh=True)


@pytest.fixture
def crmbridge_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_world: memory.MemoryWorld
) -> Iterator[Callable[..., PipelineRunner]]:
    """``crmbridge_runner(("name", plugin), ..., **settings)``: a pipeline runner on the memory
    systems, a SQLite store in ``tmp_path``, the example definition and these plugins."""
    runners: list[PipelineRunner] = []

    def make(*plugins: Plugin, **settings: Any) -> PipelineRunner:
        _clean_environment(monkeypatch)
        monkeypatch.setenv("CRMBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'store.sqlite3'}")
        monkeypatch.setenv("CRMBRIDGE_PIPELINE__MARKETING", "memory_marketing")
        monkeypatch.setenv("CRMBRIDGE_PIPELINE__SALES", "memory_sales")
        monkeypatch.setenv("CRMBRIDGE_MEMORY_MARKETING__WORLD", memory_world.name)
        monkeypatch.setenv("CRMBRIDGE_MEMORY_SALES__WORLD", memory_world.name)
        bridge = CrmBridge(
            load_settings(**settings),
            definition=LeadDefinition.load(default_definition_path()),
            entrypoints=False,
            extra_plugins=[("memory", memory), *plugins],
        )
        runner = PipelineRunner(bridge)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.close()


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CRMBRIDGE_* variable of the person running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)
