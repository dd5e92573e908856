"""Target Accounts: installed, loaded by crmbridge, and doing its two jobs in a sync cycle."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from crmbridge import HookContext, Lead, Problem, ScoreReason
from crmbridge.plugins import PluginManager, plugin_infos
from crmbridge.sync import PipelineRunner
from crmbridge.testing import memory

from crmbridge_target_accounts import plugin


def test_the_plugin_is_installed_under_its_entry_point() -> None:
    found = {ep.name: ep for ep in entry_points(group="crmbridge")}
    assert "target_accounts" in found, "not installed: run pip install -e '.[test]'"
    assert found["target_accounts"].load() is plugin


def test_crmbridge_lists_its_hooks(plugin_manager: PluginManager) -> None:
    infos = {info.name: info for info in plugin_infos(plugin_manager)}
    assert infos["target_accounts"].hooks == ["crm_score_lead", "crm_validate_lead"]


def test_a_disposable_address_is_a_problem(
    plugin_manager: PluginManager, hook_context: HookContext
) -> None:
    lead = Lead.from_fields({"email": "someone@mailinator.com"})
    problems = [
        p
        for found in plugin_manager.hook.crm_validate_lead(ctx=hook_context, lead=lead)
        for p in found
    ]
    assert (
        Problem("email", "disposable_address", "mailinator.com is a throw-away mailbox") in problems
    )


def test_a_target_account_earns_fit_points(
    plugin_manager: PluginManager, hook_context: HookContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMBRIDGE_TARGET_ACCOUNTS__DOMAINS", "Navy.example, acme.example")
    lead = Lead.from_fields({"email": "grace@navy.example"})
    reasons = [
        r
        for found in plugin_manager.hook.crm_score_lead(ctx=hook_context, lead=lead)
        for r in found
    ]
    assert ScoreReason("target_account", "fit", 25, "navy.example is a target") in reasons
    other = Lead.from_fields({"email": "ada@engines.example"})
    assert plugin.crm_score_lead(hook_context, other) is None


def test_in_a_sync_cycle(
    runner: PipelineRunner, world: memory.MemoryWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMBRIDGE_TARGET_ACCOUNTS__DOMAINS", "navy.example")
    # fit 10 (country) + engagement 40 (demo request): short of an MQL (60, fit 25) on its own
    contact = {
        "firstname": "Grace",
        "lastname": "Hopper",
        "company": "Navy Labs",
        "jobtitle": "Engineer",
        "country": "US",
        "lead_source": "demo_request",
    }
    world.marketing_add(email="grace@navy.example", **contact)
    world.marketing_add(email="grace@mailinator.com", **contact)
    world.marketing_add(email="grace@elsewhere.example", **contact)
    result = runner.run_cycle()
    assert result.status == "ok", result.error
    assert (result.counts.valid, result.counts.quarantined) == (2, 1)
    lead = runner.store.lead("grace@navy.example")
    assert lead is not None
    assert lead.stage == "mql", "the target account's fit points made it an MQL"
    assert "target_account +25" in (lead.why or "")
    elsewhere = runner.store.lead("grace@elsewhere.example")
    assert elsewhere is not None
    assert elsewhere.stage == "lead"
    [held_back] = runner.store.quarantined(pipeline=runner.name)
    assert held_back.rule == "disposable_address"
