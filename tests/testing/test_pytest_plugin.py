"""crmbridge's own pytest fixtures, as a plugin author uses them."""

from __future__ import annotations

from collections.abc import Callable

from crmbridge import HookContext, Lead, LeadDefinition, Route, hookimpl
from crmbridge.plugins import PluginManager
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory


class Emea:
    @hookimpl
    def crm_route_lead(self, ctx: HookContext, lead: Lead) -> Route:
        return Route(queue="EMEA inbound", reason="every lead to EMEA")


def test_definition_and_context(
    crmbridge_definition: LeadDefinition, crmbridge_context: HookContext
) -> None:
    assert crmbridge_definition.handoff.stage == "mql"
    assert crmbridge_context.definition is crmbridge_definition
    assert crmbridge_context.store is None


def test_plugin_manager_holds_the_builtins_and_the_plugin(
    crmbridge_plugin_manager: Callable[..., PluginManager], crmbridge_context: HookContext
) -> None:
    pm = crmbridge_plugin_manager(("emea", Emea()))
    route = pm.hook.crm_route_lead(ctx=crmbridge_context, lead=Lead("a@example.com"))
    assert route.queue == "EMEA inbound"
    assert pm.get_plugin("hubspot") is None


def test_runner_runs_a_cycle_with_the_plugin(
    crmbridge_runner: Callable[..., PipelineRunner], memory_world: memory.MemoryWorld
) -> None:
    runner = crmbridge_runner(("emea", Emea()))
    memory_world.marketing_add(
        email="grace@navy.example", lastname="Hopper", company="Navy Labs",
        jobtitle="VP of Engineering", industry="Software", numemployees="500-1000",
        country="US", lead_source="webinar", lifecyclestage="lead",
    )  # fmt: skip
    result = runner.run_cycle()
    assert result.counts.handed_off == 1
    assert memory_world.sales_get("grace@navy.example")["OwnerId"] == "EMEA inbound"
