"""Stage changes the definition allows and refuses, the recycle loop guard, outcomes and SLAs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crmbridge.definition import Cause, LeadDefinition, RecycleHistory, TransitionDecision
from crmbridge.lead import Lead, OutcomeKind

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "target", "cause", "allowed", "reason"),
    [
        ("lead", "mql", Cause.QUALIFICATION, True, "lead → mql: forward"),
        ("subscriber", "customer", Cause.SYSTEM, True, "subscriber → customer: forward"),
        ("mql", "sal", Cause.OUTCOME, True, "mql → sal: forward"),
        (None, "mql", Cause.SYSTEM, True, "first stage: mql"),
        ("lead", "lead", Cause.SYSTEM, True, "no change"),
        ("lead", "nope", Cause.MANUAL, False, "'nope' is not a stage of the definition"),
        (
            "mql",
            "lead",
            Cause.QUALIFICATION,
            False,
            "mql → lead moves backwards; the definition allows that only through sales' verdict "
            "(recycle) or by hand, not by qualification",
        ),
        (
            "sql",
            "mql",
            Cause.SYSTEM,
            False,
            "sql → mql moves backwards; the definition allows that only through sales' verdict "
            "(recycle) or by hand, not by system",
        ),
        ("mql", "lead", Cause.MANUAL, True, "mql → lead by hand"),
    ],
)
def test_forward_and_backward(
    current: str | None,
    target: str,
    cause: Cause,
    allowed: bool,
    reason: str,
    definition: LeadDefinition,
) -> None:
    decision = definition.check_transition(current, target, cause)
    assert decision == TransitionDecision(allowed, current, target, reason)


@pytest.mark.parametrize(
    ("current", "target", "cause", "allowed", "reason"),
    [
        (
            "mql",
            "recycled",
            Cause.QUALIFICATION,
            False,
            "score alone never recycles a lead; sales does",
        ),
        ("mql", "recycled", Cause.OUTCOME, True, "mql → recycled (outcome)"),
        ("sal", "recycled", Cause.SYSTEM, True, "sal → recycled (system)"),
        ("lead", "disqualified", Cause.QUALIFICATION, True, "lead → disqualified (qualification)"),
        (
            "disqualified",
            "lead",
            Cause.QUALIFICATION,
            False,
            "disqualified leads come back only by hand or by sales' verdict, not by qualification",
        ),
        (
            "disqualified",
            "mql",
            Cause.SYSTEM,
            False,
            "disqualified leads come back only by hand or by sales' verdict, not by system",
        ),
        ("disqualified", "sal", Cause.OUTCOME, True, "disqualified → sal: sales' verdict"),
        ("disqualified", "lead", Cause.MANUAL, True, "disqualified → lead by hand"),
    ],
)
def test_side_states(
    current: str,
    target: str,
    cause: Cause,
    allowed: bool,
    reason: str,
    definition: LeadDefinition,
) -> None:
    decision = definition.check_transition(current, target, cause)
    assert (decision.allowed, decision.reason) == (allowed, reason)


def recycled(days_ago: float, *, recycles: int = 1, engaged: bool = True) -> RecycleHistory:
    """A lead's recycle history: recycled ``days_ago`` days before NOW."""
    return RecycleHistory(
        recycles=recycles,
        last_recycled_at=NOW - timedelta(days=days_ago),
        engaged_since=engaged,
    )


def test_recycled_lead_goes_back_to_nurture_at_once(definition: LeadDefinition) -> None:
    decision = definition.check_transition(
        "recycled", "lead", Cause.QUALIFICATION, history=recycled(1), now=NOW
    )
    assert decision == TransitionDecision(
        True, "recycled", "lead", "recycled → lead: back in nurture"
    )


def test_recycled_lead_waits_requalify_after_days(definition: LeadDefinition) -> None:
    decision = definition.check_transition(
        "recycled", "mql", Cause.QUALIFICATION, history=recycled(10), now=NOW
    )
    assert not decision.allowed
    assert decision.reason == (
        "recycled 2026-11-13; may be handed off again from 2026-12-13 (requalify_after_days = 30)"
    )


def test_recycled_lead_needs_new_engagement(definition: LeadDefinition) -> None:
    decision = definition.check_transition(
        "recycled", "mql", Cause.QUALIFICATION, history=recycled(31, engaged=False), now=NOW
    )
    assert not decision.allowed
    assert decision.reason == "recycled and no new engagement since; not handed off again yet"


def test_recycled_lead_requalifies_after_the_wait_with_engagement(
    definition: LeadDefinition,
) -> None:
    decision = definition.check_transition(
        "recycled", "mql", Cause.QUALIFICATION, history=recycled(30), now=NOW
    )
    assert decision == TransitionDecision(
        True,
        "recycled",
        "mql",
        "recycled → mql: re-qualified after recycling with new engagement",
    )


LOOP_GUARD = (
    "loop guard: recycled 3 times (max_recycles = 3); hand it off by hand if it deserves "
    "another try"
)


@pytest.mark.parametrize("target", ["mql", "lead"])
def test_loop_guard_after_max_recycles(target: str, definition: LeadDefinition) -> None:
    decision = definition.check_transition(
        "recycled", target, Cause.QUALIFICATION, history=recycled(300, recycles=3), now=NOW
    )
    assert decision == TransitionDecision(False, "recycled", target, LOOP_GUARD)


def test_loop_guard_cannot_be_stepped_around_through_nurture(definition: LeadDefinition) -> None:
    # A lead recycled before and back in nurture meets the same rules when it reaches the
    # handoff stage again: the guard, the waiting time and new engagement.
    guard = definition.check_transition(
        "lead", "mql", Cause.QUALIFICATION, history=recycled(300, recycles=3), now=NOW
    )
    assert guard == TransitionDecision(False, "lead", "mql", LOOP_GUARD)
    too_soon = definition.check_transition(
        "lead", "mql", Cause.SYSTEM, history=recycled(5), now=NOW
    )
    assert not too_soon.allowed
    assert too_soon.reason.startswith("recycled 2026-11-18; may be handed off again from")
    ready = definition.check_transition(
        "lead", "mql", Cause.QUALIFICATION, history=recycled(45), now=NOW
    )
    assert ready.allowed
    # Moves that do not cross the handoff, and sales' verdicts, are not the guard's business.
    below = definition.check_transition(
        "subscriber", "lead", Cause.QUALIFICATION, history=recycled(300, recycles=3), now=NOW
    )
    assert below.allowed
    verdict = definition.check_transition(
        "sal", "sql", Cause.SYSTEM, history=recycled(300, recycles=3), now=NOW
    )
    assert verdict.allowed


def test_loop_guard_yields_to_sales_and_to_hand(definition: LeadDefinition) -> None:
    history = recycled(300, recycles=3)
    by_sales = definition.check_transition(
        "recycled", "mql", Cause.OUTCOME, history=history, now=NOW
    )
    by_hand = definition.check_transition("recycled", "mql", Cause.MANUAL, history=history, now=NOW)
    assert (by_sales.allowed, by_sales.reason) == (True, "recycled → mql: sales' verdict")
    assert (by_hand.allowed, by_hand.reason) == (True, "recycled → mql by hand")


def test_no_history_means_never_engaged(definition: LeadDefinition) -> None:
    decision = definition.check_transition("recycled", "mql", Cause.QUALIFICATION)
    assert not decision.allowed
    assert decision.reason == "recycled and no new engagement since; not handed off again yet"


def test_is_forward(definition: LeadDefinition) -> None:
    assert definition.is_forward(None, "lead")
    assert definition.is_forward("lead", "mql")
    assert not definition.is_forward("mql", "lead")
    assert not definition.is_forward("mql", "recycled")
    assert not definition.is_forward("recycled", "mql")


# -- outcomes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "has_opportunity", "stage"),
    [
        (OutcomeKind.ACCEPTED, None, False, "sal"),
        (OutcomeKind.REJECTED, None, False, "recycled"),
        (OutcomeKind.REJECTED, "no_budget", False, "recycled"),
        (OutcomeKind.REJECTED, "not_a_fit", False, "disqualified"),
        (OutcomeKind.REJECTED, "spam", True, "disqualified"),
        (OutcomeKind.RECYCLED, None, False, "recycled"),
        (OutcomeKind.CONVERTED, None, False, "sql"),
        (OutcomeKind.CONVERTED, None, True, "opportunity"),
        (OutcomeKind.WON, None, True, "customer"),
        (OutcomeKind.LOST, "price", True, "recycled"),
        (OutcomeKind.LOST, "not_a_fit", True, "disqualified"),
        (OutcomeKind.LOST, "no_such_reason", False, "recycled"),
    ],
)
def test_outcome_stage(
    kind: OutcomeKind,
    reason: str | None,
    has_opportunity: bool,
    stage: str,
    definition: LeadDefinition,
) -> None:
    assert definition.outcome_stage(kind, reason, has_opportunity=has_opportunity) == stage


def test_outcome_specs(definition: LeadDefinition) -> None:
    assert definition.outcomes[OutcomeKind.REJECTED].reason_required
    assert definition.outcomes[OutcomeKind.LOST].reason_required
    assert not definition.outcomes[OutcomeKind.ACCEPTED].reason_required
    assert definition.reasons["not_a_fit"].applies_to == (OutcomeKind.REJECTED, OutcomeKind.LOST)
    assert definition.reasons["not_a_fit"].label == "Not a fit"


# -- the SLA --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "hours"),
    [("demo_request", 1), ("webinar", 24), (None, 24)],
)
def test_sla_due_per_source(source: str | None, hours: int, definition: LeadDefinition) -> None:
    fields = {"email": "jane@acme.example"}
    if source is not None:
        fields["lead_source"] = source
    due = definition.sla_due(Lead.from_fields(fields), NOW)
    assert due == NOW + timedelta(hours=hours)
