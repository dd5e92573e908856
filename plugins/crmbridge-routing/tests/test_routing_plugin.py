"""The routing plugin through crmbridge's plugin manager: inert until configured, territories,
queues, a fair and deterministic round robin, state across restarts, dry runs, clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from crmbridge_routing import RoutingPlugin

from crmbridge import (
    Handoff,
    HookContext,
    Lead,
    LeadDefinition,
    Route,
    RunCounts,
    SettingsError,
    load_settings,
)
from crmbridge.app import default_definition_path
from crmbridge.plugins import PluginManager, make_plugin_manager

DEFINITION = LeadDefinition.load(default_definition_path())

CONFIG = {
    "CRMBRIDGE_ROUTING__TERRITORIES": '{"EMEA": ["GB", "DE", "FR"], "NA": ["US", "CA"], '
    '"APAC": ["AU"]}',
    "CRMBRIDGE_ROUTING__OWNERS": '{"EMEA": ["anna@acme.example", "ben@acme.example", '
    '"cleo@acme.example"], "NA": ["dan@acme.example"]}',
    "CRMBRIDGE_ROUTING__QUEUES": '{"APAC": "apac-inbound"}',
    "CRMBRIDGE_ROUTING__DEFAULT_QUEUE": "unrouted-leads",
}

MakeContext = Callable[..., HookContext]


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CRMBRIDGE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_context(tmp_path: Path) -> MakeContext:
    """A hook context whose settings come from an env file holding ``values``."""

    def make(values: dict[str, str], *, dry_run: bool = False, run_id: str = "run1") -> HookContext:
        env = tmp_path / f"routing-{len(list(tmp_path.iterdir()))}.env"
        env.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()), encoding="utf-8")
        return HookContext(
            settings=load_settings([env]),
            definition=DEFINITION,
            run_id=run_id,
            pipeline="default",
            dry_run=dry_run,
        )

    return make


def manager(plugin: RoutingPlugin) -> PluginManager:
    return make_plugin_manager(entrypoints=False, extra=[("routing", plugin)])


def lead(email: str, country: str | None) -> Lead:
    return Lead.from_fields({"email": email, "country": country})


def route(pm: PluginManager, ctx: HookContext, email: str, country: str | None) -> Route:
    found = pm.hook.crm_route_lead(ctx=ctx, lead=lead(email, country))
    assert isinstance(found, Route)
    return found


def handed_off(pm: PluginManager, ctx: HookContext, email: str, country: str) -> None:
    now = datetime.now(UTC)
    pm.hook.crm_after_handoff(
        ctx=ctx,
        lead=lead(email, country),
        handoff=Handoff(email, "salesforce", "00Q1", now, now + timedelta(hours=24)),
    )


def test_inert_until_configured(make_context: MakeContext) -> None:
    pm = manager(RoutingPlugin())
    ctx = make_context({})
    # crmbridge's own trylast default answers: the sales system's rules decide.
    answer = pm.hook.crm_route_lead(ctx=ctx, lead=lead("a@x.example", "GB"))
    assert answer.owner is None
    assert answer.queue is None
    assert "no routing plugin" in answer.reason
    assert RoutingPlugin().crm_route_lead(ctx, lead("a@x.example", "GB")) is None


def test_round_robin_within_a_territory_is_fair_and_deterministic(
    make_context: MakeContext,
) -> None:
    ctx = make_context(CONFIG)
    owners = []
    for attempt in range(2):
        pm = manager(RoutingPlugin())
        given = [route(pm, ctx, f"lead{i}@x.example", "gb").owner for i in range(7)]
        owners.append(given)
        assert attempt == 0 or given == owners[0], "the same leads in order get the same owners"
    counts = {o: owners[0].count(o) for o in set(owners[0])}
    assert counts == {"anna@acme.example": 3, "ben@acme.example": 2, "cleo@acme.example": 2}
    assert owners[0][:3] == ["anna@acme.example", "ben@acme.example", "cleo@acme.example"]


def test_a_lead_routed_again_before_its_handoff_keeps_its_owner(
    make_context: MakeContext,
) -> None:
    pm = manager(RoutingPlugin())
    ctx = make_context(CONFIG)
    first = route(pm, ctx, "held@x.example", "DE")
    again = route(pm, ctx, "held@x.example", "DE")
    assert again.owner == first.owner == "anna@acme.example"
    assert route(pm, ctx, "other@x.example", "DE").owner == "ben@acme.example"
    handed_off(pm, ctx, "held@x.example", "DE")
    # recycled and handed off again later: it takes a new turn
    assert route(pm, ctx, "held@x.example", "DE").owner == "cleo@acme.example"


def test_territory_queue_default_queue_and_reasons(make_context: MakeContext) -> None:
    pm = manager(RoutingPlugin())
    ctx = make_context(CONFIG)
    apac = route(pm, ctx, "a@x.example", "AU")
    assert apac == Route(queue="apac-inbound", reason="territory APAC (country AU): its queue")
    nowhere = route(pm, ctx, "b@x.example", "BR")
    assert nowhere.queue == "unrouted-leads"
    assert "'BR' is in no territory" in nowhere.reason
    assert route(pm, ctx, "c@x.example", None).queue == "unrouted-leads"
    na = route(pm, ctx, "d@x.example", " us ")
    assert na.owner == "dan@acme.example"
    assert na.reason.startswith("territory NA (country  us ): round robin, turn 1")


def test_without_a_default_queue_uncovered_leads_are_left_to_the_sales_system(
    make_context: MakeContext,
) -> None:
    values = {k: v for k, v in CONFIG.items() if not k.endswith("DEFAULT_QUEUE")}
    ctx = make_context(values)
    assert RoutingPlugin().crm_route_lead(ctx, lead("a@x.example", "BR")) is None


def test_the_round_robin_survives_a_restart_through_the_state_file(
    make_context: MakeContext, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "routing.json"
    ctx = make_context({**CONFIG, "CRMBRIDGE_ROUTING__STATE_FILE": str(state)})
    first = RoutingPlugin()
    pm = manager(first)
    assert route(pm, ctx, "one@x.example", "GB").owner == "anna@acme.example"
    pm.hook.crm_cycle_finished(ctx=ctx, counts=RunCounts())
    saved = json.loads(state.read_text(encoding="utf-8"))
    assert saved["turns"] == {"default:EMEA": 1}
    restarted = manager(RoutingPlugin())
    assert route(restarted, ctx, "two@x.example", "GB").owner == "ben@acme.example"


def test_a_dry_run_changes_nothing(make_context: MakeContext, tmp_path: Path) -> None:
    state = tmp_path / "routing.json"
    plugin = RoutingPlugin()
    pm = manager(plugin)
    real = make_context({**CONFIG, "CRMBRIDGE_ROUTING__STATE_FILE": str(state)})
    dry = make_context(
        {**CONFIG, "CRMBRIDGE_ROUTING__STATE_FILE": str(state)}, dry_run=True, run_id="dry1"
    )
    # within the dry run leads still rotate, so the plan shows what a real run would do
    assert [route(pm, dry, f"d{i}@x.example", "FR").owner for i in range(2)] == [
        "anna@acme.example",
        "ben@acme.example",
    ]
    pm.hook.crm_cycle_finished(ctx=dry, counts=RunCounts())
    assert not state.exists()
    assert route(pm, real, "r@x.example", "FR").owner == "anna@acme.example"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"CRMBRIDGE_ROUTING__TERRITORIES": "{EMEA: [GB]}"},
            "CRMBRIDGE_ROUTING__TERRITORIES: Value error, is not JSON (Expecting property name "
            "enclosed in double quotes at character 1)",
        ),
        (
            {"CRMBRIDGE_ROUTING__TERRITORIES": '{"EMEA": ["GB"]}'},
            "territory 'EMEA' has no owners and no queue; add it to CRMBRIDGE_ROUTING__OWNERS or "
            "CRMBRIDGE_ROUTING__QUEUES",
        ),
        (
            {
                "CRMBRIDGE_ROUTING__TERRITORIES": '{"EMEA": ["GB"]}',
                "CRMBRIDGE_ROUTING__OWNERS": '{"EMEA": ["a@x"], "LATAM": ["b@x"]}',
            },
            "CRMBRIDGE_ROUTING__OWNERS names territory 'LATAM', which "
            "CRMBRIDGE_ROUTING__TERRITORIES does not list",
        ),
        (
            {
                "CRMBRIDGE_ROUTING__TERRITORIES": '{"EMEA": ["GB"], "UK": ["gb"]}',
                "CRMBRIDGE_ROUTING__QUEUES": '{"EMEA": "q1", "UK": "q2"}',
            },
            "'gb' is in two territories, 'EMEA' and 'UK'; list it in one",
        ),
    ],
)
def test_bad_settings_are_named(
    make_context: MakeContext, values: dict[str, str], message: str
) -> None:
    ctx = make_context(values)
    with pytest.raises(SettingsError) as caught:
        RoutingPlugin().crm_route_lead(ctx, lead("a@x.example", "GB"))
    assert message in str(caught.value)


def test_owners_may_be_given_as_comma_separated_text(make_context: MakeContext) -> None:
    ctx = make_context(
        {
            "CRMBRIDGE_ROUTING__TERRITORIES": '{"DACH": "DE, AT, CH"}',
            "CRMBRIDGE_ROUTING__OWNERS": '{"DACH": "eva@acme.example, fritz@acme.example"}',
        }
    )
    pm = manager(RoutingPlugin())
    assert [route(pm, ctx, f"{i}@x.example", c).owner for i, c in enumerate(["AT", "CH"])] == [
        "eva@acme.example",
        "fritz@acme.example",
    ]


def test_a_broken_state_file_is_reported_with_the_fix(
    make_context: MakeContext, tmp_path: Path
) -> None:
    state = tmp_path / "routing.json"
    state.write_text("[1, 2", encoding="utf-8")
    ctx = make_context({**CONFIG, "CRMBRIDGE_ROUTING__STATE_FILE": str(state)})
    with pytest.raises(SettingsError, match="cannot be read") as caught:
        RoutingPlugin().crm_route_lead(ctx, lead("a@x.example", "GB"))
    assert "fix or delete the file" in str(caught.value)
    state.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SettingsError, match="is not a crmbridge-routing state file"):
        RoutingPlugin().crm_route_lead(ctx, lead("a@x.example", "GB"))
