"""Fixtures for this plugin's tests, on crmbridge's own pytest fixtures (its ``pytest11`` plugin):
the example lead definition, a hook context, a plugin manager holding this plugin, and sync cycles
on crmbridge's in-memory marketing and sales systems (no network, no account)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from crmbridge import HookContext, LeadDefinition
from crmbridge.plugins import PluginManager
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

from crmbridge_target_accounts import plugin


@pytest.fixture
def definition(crmbridge_definition: LeadDefinition) -> LeadDefinition:
    """crmbridge's example lead definition."""
    return crmbridge_definition


@pytest.fixture
def plugin_manager(crmbridge_plugin_manager: Callable[..., PluginManager]) -> PluginManager:
    """crmbridge's plugin manager with its built-in plugins and this one (and no other)."""
    return crmbridge_plugin_manager(("target_accounts", plugin))


@pytest.fixture
def hook_context(crmbridge_context: HookContext) -> HookContext:
    """The context every lifecycle hook receives, outside a run."""
    return crmbridge_context


@pytest.fixture
def world(memory_world: memory.MemoryWorld) -> memory.MemoryWorld:
    """A fresh in-memory marketing and sales system; act as people through it."""
    return memory_world


@pytest.fixture
def runner(crmbridge_runner: Callable[..., PipelineRunner]) -> PipelineRunner:
    """Runs sync cycles: the memory systems, a SQLite store in tmp_path, and this plugin."""
    return crmbridge_runner(("target_accounts", plugin))
