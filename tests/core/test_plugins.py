"""The plugin manager factory: built-ins, entry points, the local file, the operator switches,
registration of connectors and sandboxes, and every way a plugin can fail to load."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from crmbridge import __version__, hookimpl
from crmbridge.connector import ApiUsage, CheckReport, Connector, SetupReport
from crmbridge.context import HookContext, Route
from crmbridge.definition import LeadDefinition
from crmbridge.errors import ConfigurationError, DuplicateConnectorError, PluginLoadError
from crmbridge.lead import Lead
from crmbridge.plugins import (
    PluginManager,
    connector_classes,
    failing_plugin,
    make_plugin_manager,
    plugin_infos,
    sandbox_classes,
)
from crmbridge.settings import Settings
from crmbridge.testing.sandbox import Emulator
from tests.core.conftest import Distributions

BUILTIN_HOOKS = {
    "crmbridge.normalize": ["crm_normalize_lead"],
    "crmbridge.definition": ["crm_qualify_lead", "crm_score_lead", "crm_validate_lead"],
    "crmbridge.routing": ["crm_route_lead"],
}


def names(pm: PluginManager) -> list[str]:
    """The registered plugins' names, in registration order."""
    return [name for name, _plugin in pm.list_name_plugin()]


def context(definition: LeadDefinition) -> HookContext:
    """A hook context with default settings."""
    return HookContext(settings=Settings(), definition=definition)


# -- built-ins ------------------------------------------------------------------------------------


def test_factory_registers_the_builtins_with_their_hooks() -> None:
    pm = make_plugin_manager(entrypoints=False)
    infos = plugin_infos(pm)
    assert {i.name: i.hooks for i in infos} == BUILTIN_HOOKS
    assert {(i.kind, i.version, i.distribution) for i in infos} == {("builtin", __version__, None)}
    assert [i.module for i in infos] == [
        "crmbridge.builtin.normalize",
        "crmbridge.builtin.definition_rules",
        "crmbridge.builtin.routing",
    ]


def test_builtins_are_trylast_defaults() -> None:
    pm = make_plugin_manager(entrypoints=False)
    for hooks in BUILTIN_HOOKS.values():
        for hook in hooks:
            [impl] = getattr(pm.hook, hook).get_hookimpls()
            assert impl.trylast, hook


def test_disable_plugins_removes_a_builtin(definition: LeadDefinition) -> None:
    pm = make_plugin_manager(Settings(disable_plugins=["crmbridge.routing"]), entrypoints=False)
    assert names(pm) == ["crmbridge.normalize", "crmbridge.definition"]
    lead = Lead.from_fields({"email": "jane@acme.example"})
    assert pm.hook.crm_route_lead(ctx=context(definition), lead=lead) is None
    full = make_plugin_manager(entrypoints=False)
    assert full.hook.crm_route_lead(ctx=context(definition), lead=lead) == Route(
        reason="no routing plugin chose an owner; the sales system's assignment rules decide"
    )


# -- entry points ---------------------------------------------------------------------------------

GOOD_PLUGIN = """
from crmbridge import hookimpl

@hookimpl
def crm_lead_captured(ctx, lead, system):
    pass

@hookimpl
def crm_cycle_finished(ctx, counts):
    pass
"""


def test_entry_point_plugin_is_loaded(distributions: Distributions) -> None:
    distributions.add(
        "crmbridge-goodplug", "1.4.2", {"goodplug": "goodplug_mod"}, {"goodplug_mod": GOOD_PLUGIN}
    )
    pm = make_plugin_manager(Settings(load_plugins=["goodplug"]))
    assert names(pm) == [*BUILTIN_HOOKS, "goodplug"]
    info = {i.name: i for i in plugin_infos(pm)}["goodplug"]
    assert (info.kind, info.version, info.distribution, info.module) == (
        "entrypoint",
        "1.4.2",
        "crmbridge-goodplug",
        "goodplug_mod",
    )
    assert info.hooks == ["crm_cycle_finished", "crm_lead_captured"]


def test_disable_plugins_skips_an_entry_point(distributions: Distributions) -> None:
    distributions.add(
        "crmbridge-goodplug", "1.4.2", {"goodplug": "goodplug_mod"}, {"goodplug_mod": GOOD_PLUGIN}
    )
    settings = Settings(load_plugins=["goodplug"], disable_plugins=["goodplug"])
    assert names(make_plugin_manager(settings)) == list(BUILTIN_HOOKS)


def test_load_plugins_with_an_unknown_name_lists_the_installed(
    distributions: Distributions,
) -> None:
    distributions.add(
        "crmbridge-goodplug", "1.4.2", {"goodplug": "goodplug_mod"}, {"goodplug_mod": GOOD_PLUGIN}
    )
    installed = sorted({ep.name for ep in importlib.metadata.entry_points(group="crmbridge")})
    assert "goodplug" in installed
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(Settings(load_plugins=["goodplug", "nosuchplug"]))
    assert str(caught.value) == (
        f"CRMBRIDGE_LOAD_PLUGINS names nosuchplug, which is not installed; installed: "
        f"{', '.join(installed)} (install the plugin or fix the name)"
    )
    assert isinstance(caught.value, ConfigurationError)


def test_failing_entry_point_names_the_plugin_and_the_reason(
    distributions: Distributions,
) -> None:
    distributions.add(
        "crmbridge-brokenplug",
        "0.3.1",
        {"brokenplug": "brokenplug_mod:plugin"},
        {"brokenplug_mod": 'raise RuntimeError("BROKENPLUG_REGION must be set")\n'},
    )
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(Settings(load_plugins=["brokenplug"]))
    error = caught.value
    assert error.plugin == "brokenplug"
    assert str(error) == (
        "plugin 'brokenplug' (brokenplug_mod:plugin, from crmbridge-brokenplug "
        "0.3.1) failed to load: RuntimeError: BROKENPLUG_REGION must be set (fix or uninstall it, "
        "or skip it with CRMBRIDGE_DISABLE_PLUGINS=brokenplug)"
    )
    assert isinstance(error.__cause__, RuntimeError)


def test_a_broken_entry_point_can_be_disabled(distributions: Distributions) -> None:
    distributions.add(
        "crmbridge-brokenplug",
        "0.3.1",
        {"brokenplug": "brokenplug_mod"},
        {"brokenplug_mod": "import crmbridge_no_such_dependency\n"},
    )
    settings = Settings(load_plugins=["brokenplug"], disable_plugins=["brokenplug"])
    assert names(make_plugin_manager(settings)) == list(BUILTIN_HOOKS)


# -- the local plugin file ------------------------------------------------------------------------


def test_plugin_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "myplugin.py"
    path.write_text(GOOD_PLUGIN, encoding="utf-8")
    pm = make_plugin_manager(Settings(plugin_file=path), entrypoints=False)
    info = plugin_infos(pm)[-1]
    assert (info.name, info.kind, info.module) == ("crmbridge_local_myplugin", "local", str(path))
    assert info.hooks == ["crm_cycle_finished", "crm_lead_captured"]


def test_plugin_file_that_raises_on_import(tmp_path: Path) -> None:
    path = tmp_path / "brokenfile.py"
    path.write_text("import json\nraise ValueError('no API key configured')\n", encoding="utf-8")
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(Settings(plugin_file=path), entrypoints=False)
    assert caught.value.plugin == str(path)
    assert str(caught.value) == (
        f"plugin file {path} failed to load: ValueError: no API key configured "
        "(fix the file or unset CRMBRIDGE_PLUGIN_FILE)"
    )
    assert "crmbridge_local_brokenfile" not in sys.modules


def test_plugin_file_that_does_not_exist(tmp_path: Path) -> None:
    path = tmp_path / "missing.py"
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(Settings(plugin_file=path), entrypoints=False)
    assert str(caught.value) == (f"plugin file {path} does not exist (check CRMBRIDGE_PLUGIN_FILE)")


# -- hook implementations the specs do not allow --------------------------------------------------


class Misspelled:
    """Implements a hook that does not exist (``captured`` without the d)."""

    @hookimpl
    def crm_lead_capture(self, ctx: HookContext, lead: Lead) -> None:
        """Never called."""


class ExtraArgument:
    """Implements a real hook with an argument the spec does not have."""

    @hookimpl
    def crm_lead_captured(self, ctx: HookContext, lead: Lead, colour: str) -> None:
        """Never called."""


def test_misspelled_hook_stops_start_up_naming_the_plugin() -> None:
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(entrypoints=False, extra=[("typo-plugin", Misspelled())])
    error = caught.value
    assert error.plugin == "typo-plugin"
    assert error.message.startswith(
        "plugin 'typo-plugin' implements a hook crmbridge does not have: "
        "unknown hook 'crm_lead_capture' in plugin"
    )
    assert error.hint == "hook names start with crm_; see docs/hooks.md for the list"


def test_argument_not_in_the_spec_is_refused() -> None:
    with pytest.raises(PluginLoadError) as caught:
        make_plugin_manager(entrypoints=False, extra=[("colourful", ExtraArgument())])
    error = caught.value
    assert error.plugin == "colourful"
    assert error.message.startswith("plugin 'colourful' (ExtraArgument) cannot be registered: ")
    assert "for hook 'crm_lead_captured'" in error.message
    assert "{'colour'}" in error.message


def test_a_plugin_may_take_fewer_arguments_than_the_spec(definition: LeadDefinition) -> None:
    class Minimal:
        """Implements crm_route_lead with no argument at all."""

        @hookimpl(tryfirst=True)
        def crm_route_lead(self) -> Route:
            """Everything to one queue."""
            return Route(queue="inbound")

    pm = make_plugin_manager(entrypoints=False, extra=[("minimal", Minimal())])
    lead = Lead.from_fields({"email": "jane@acme.example"})
    assert pm.hook.crm_route_lead(ctx=context(definition), lead=lead) == Route(queue="inbound")


# -- connectors and sandboxes ---------------------------------------------------------------------


class StubConnector(Connector):
    """A connector that does nothing; subclasses set ``name``."""

    name: ClassVar[str] = "stub"

    def check(self) -> CheckReport:
        """Nothing to check."""
        return CheckReport(self.name)

    def setup(self, *, dry_run: bool = False) -> SetupReport:
        """Nothing to set up."""
        return SetupReport(self.name)

    def api_usage(self) -> ApiUsage:
        """No calls made."""
        return ApiUsage(self.name)


class DemoConnector(StubConnector):
    """The first connector named demo."""

    name = "demo"


class OtherDemoConnector(StubConnector):
    """A second connector, also named demo."""

    name = "demo"


class Registers:
    """A plugin registering the given connector and emulator classes."""

    def __init__(self, connectors: list[Any], sandboxes: list[Any] | None = None) -> None:
        self.connectors = connectors
        self.sandboxes = sandboxes or []

    @hookimpl
    def crm_register_connectors(self, register: Any) -> None:
        """Register each connector class."""
        for cls in self.connectors:
            register(cls)

    @hookimpl
    def crm_register_sandboxes(self, register: Any) -> None:
        """Register each emulator class."""
        for cls in self.sandboxes:
            register(cls)


class DemoEmulator(Emulator):
    """An emulator of the demo system that serves nothing."""

    name = "demo"

    def add_routes(self, app: web.Application) -> None:
        """No routes."""

    def error_response(
        self, status: int, *, retry_after: float | None = None, code: str | None = None
    ) -> web.Response:
        """A bare error."""
        return web.Response(status=status)


def test_connectors_and_sandboxes_are_registered_per_plugin() -> None:
    pm = make_plugin_manager(
        entrypoints=False,
        extra=[("demo-plugin", Registers([DemoConnector], [DemoEmulator]))],
    )
    assert connector_classes(pm) == {"demo": DemoConnector}
    assert sandbox_classes(pm) == {"demo": DemoEmulator}
    info = plugin_infos(pm)[-1]
    assert (info.name, info.connectors, info.sandboxes) == ("demo-plugin", ["demo"], ["demo"])
    assert info.hooks == ["crm_register_connectors", "crm_register_sandboxes"]


def test_duplicate_connector_names_both_classes_and_plugins() -> None:
    pm = make_plugin_manager(
        entrypoints=False,
        extra=[
            ("first-plugin", Registers([DemoConnector])),
            ("second-plugin", Registers([OtherDemoConnector])),
        ],
    )
    with pytest.raises(DuplicateConnectorError) as caught:
        connector_classes(pm)
    assert str(caught.value) == (
        "connector name 'demo' is registered twice: by "
        "tests.core.test_plugins.DemoConnector (plugin 'first-plugin') and by "
        "tests.core.test_plugins.OtherDemoConnector (plugin 'second-plugin') (rename one "
        "connector or disable one plugin with CRMBRIDGE_DISABLE_PLUGINS)"
    )
    assert isinstance(caught.value, ConfigurationError)


def test_registering_something_that_is_not_a_connector() -> None:
    pm = make_plugin_manager(entrypoints=False, extra=[("odd", Registers([dict]))])
    with pytest.raises(PluginLoadError) as caught:
        connector_classes(pm)
    assert str(caught.value) == (
        "plugin 'odd' registered <class 'dict'>, which is not a Connector subclass"
    )


def test_registering_a_connector_without_a_proper_name() -> None:
    class Nameless(StubConnector):
        """Forgot to set its own name properly."""

        name = "Bad Name"

    pm = make_plugin_manager(entrypoints=False, extra=[("sloppy", Registers([Nameless]))])
    with pytest.raises(PluginLoadError) as caught:
        connector_classes(pm)
    assert caught.value.plugin == "sloppy"
    assert caught.value.message == (
        "tests.core.test_plugins.test_registering_a_connector_without_a_proper_name.<locals>."
        "Nameless needs a class attribute `name`, a lower-case identifier (got 'Bad Name')"
    )


def test_sandbox_registration_errors() -> None:
    pm = make_plugin_manager(
        entrypoints=False,
        extra=[("one", Registers([], [DemoEmulator])), ("two", Registers([], [DemoEmulator]))],
    )
    with pytest.raises(PluginLoadError) as caught:
        sandbox_classes(pm)
    assert caught.value.message == (
        "sandbox name 'demo' is registered twice: by tests.core.test_plugins.DemoEmulator "
        "(plugin 'one') and by tests.core.test_plugins.DemoEmulator (plugin 'two')"
    )
    pm = make_plugin_manager(entrypoints=False, extra=[("odd", Registers([], [DemoConnector]))])
    with pytest.raises(PluginLoadError) as caught:
        sandbox_classes(pm)
    assert caught.value.message == (
        f"plugin 'odd' registered {DemoConnector!r}, which is not a sandbox Emulator subclass"
    )


# -- tracing and blame ----------------------------------------------------------------------------


def test_trace_plugins_logs_every_hook_call(
    definition: LeadDefinition, caplog: pytest.LogCaptureFixture
) -> None:
    pm = make_plugin_manager(Settings(trace_plugins=True), entrypoints=False)
    lead = Lead.from_fields({"email": "jane@acme.example"})
    with caplog.at_level(logging.DEBUG, logger="crmbridge.plugins.trace"):
        pm.hook.crm_route_lead(ctx=context(definition), lead=lead)
    messages = [
        r.getMessage().strip() for r in caplog.records if r.name == "crmbridge.plugins.trace"
    ]
    assert messages[0].startswith("crm_route_lead [hook]")
    assert messages[-1].startswith("finish crm_route_lead --> Route(")


def test_no_trace_by_default(definition: LeadDefinition, caplog: pytest.LogCaptureFixture) -> None:
    pm = make_plugin_manager(entrypoints=False)
    lead = Lead.from_fields({"email": "jane@acme.example"})
    with caplog.at_level(logging.DEBUG, logger="crmbridge.plugins.trace"):
        pm.hook.crm_route_lead(ctx=context(definition), lead=lead)
    assert [r for r in caplog.records if r.name == "crmbridge.plugins.trace"] == []


class Exploding:
    """A plugin whose crm_lead_captured raises."""

    @hookimpl
    def crm_lead_captured(self, ctx: HookContext, lead: Lead, system: str) -> None:
        """Fails on every lead."""
        raise KeyError(system)


class Quiet:
    """A plugin whose crm_lead_captured does nothing."""

    @hookimpl
    def crm_lead_captured(self, lead: Lead) -> None:
        """Does nothing."""


def test_failing_plugin_names_the_plugin_that_raised(definition: LeadDefinition) -> None:
    pm = make_plugin_manager(entrypoints=False, extra=[("boom", Exploding()), ("quiet", Quiet())])
    lead = Lead.from_fields({"email": "jane@acme.example"})
    with pytest.raises(KeyError) as caught:
        pm.hook.crm_lead_captured(ctx=context(definition), lead=lead, system="hubspot")
    assert failing_plugin(pm, "crm_lead_captured", caught.value) == "boom"
    assert failing_plugin(pm, "crm_no_such_hook", caught.value) is None
    assert failing_plugin(pm, "crm_lead_captured", ValueError("not from a plugin")) is None
