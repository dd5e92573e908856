"""Scoring (fit and engagement rules, each test kind) and qualification, with their reasons."""

from __future__ import annotations

from typing import Any

import pytest

from crmbridge.definition import LeadDefinition, Qualification, ScoreCard, ScoreReason
from crmbridge.lead import Lead

FILE = "lead-definition.toml"


def lead(**fields: Any) -> Lead:
    """A lead with a business email and the given shared fields."""
    return Lead.from_fields({"email": "jane.doe@acme.example", **fields})


def with_rules(
    data: dict[str, Any],
    *,
    fit: list[dict[str, Any]] | None = None,
    engagement: list[dict[str, Any]] | None = None,
) -> LeadDefinition:
    """The example definition with its scoring rules replaced by ``fit`` and ``engagement``."""
    data["scoring"] = {"fit": fit or [], "engagement": engagement or []}
    return LeadDefinition(data, filename=FILE, path=None)


# -- each test kind -------------------------------------------------------------------------------

RULE_CASES = [
    # (rule test and field, the lead's value, the reason's detail or None when it does not apply)
    ({"field": "industry", "equals": "Software"}, "SOFTWARE", "industry SOFTWARE is Software"),
    ({"field": "industry", "equals": "Software"}, "Hardware", None),
    ({"field": "industry", "equals": "Software"}, None, None),
    ({"field": "country", "in": ["US", "CA"]}, "ca", "country ca is one of US, CA"),
    ({"field": "country", "in": ["US", "CA"]}, "FR", None),
    ({"field": "country", "not_in": ["US", "CA"]}, "FR", "country FR is none of US, CA"),
    ({"field": "country", "not_in": ["US", "CA"]}, "us", None),
    ({"field": "country", "not_in": ["US", "CA"]}, None, None),
    (
        {"field": "job_title", "matches": "(?i)head of"},
        "Head of Growth",
        "job_title Head of Growth matches /(?i)head of/",
    ),
    ({"field": "job_title", "matches": "(?i)head of"}, "Intern", None),
    ({"field": "employees", "gte": 1000}, 1000, "employees 1000 ≥ 1000"),
    ({"field": "employees", "gte": 1000}, 999, None),
    ({"field": "employees", "gte": 1000}, "5000", None),
    ({"field": "employees", "lte": 10}, 10, "employees 10 ≤ 10"),
    ({"field": "employees", "lte": 10}, 11, None),
    ({"field": "employees", "between": [50, 199]}, 50, "employees 50 is between 50, 199"),
    ({"field": "employees", "between": [50, 199]}, 199, "employees 199 is between 50, 199"),
    ({"field": "employees", "between": [50, 199]}, 200, None),
    ({"field": "employees", "between": [0, 5]}, True, None),
    ({"field": "phone", "present": True}, "+1 555 0100", "phone +1 555 0100 is present"),
    ({"field": "phone", "present": True}, "", None),
    ({"field": "phone", "absent": True}, None, "phone is absent"),
    ({"field": "phone", "absent": True}, "", "phone is absent"),
    ({"field": "phone", "absent": True}, "+1 555 0100", None),
]


@pytest.mark.parametrize(("test", "value", "detail"), RULE_CASES)
def test_rule_kinds(
    test: dict[str, Any], value: Any, detail: str | None, definition_data: dict[str, Any]
) -> None:
    d = with_rules(definition_data, fit=[{"id": "rule", "points": 7, **test}])
    card = d.score(lead(**{test["field"]: value}))
    expected = () if detail is None else (ScoreReason("rule", "fit", 7, detail),)
    assert card.reasons == expected
    assert card.fit == (0 if detail is None else 7)
    assert card.engagement == 0


PER_UNIT_CASES = [
    # (rule, value, points or None, detail)
    ({"per": 1, "points": 1, "max": 15}, 7, 7, "page_views = 7, +1 per 1"),
    ({"per": 1, "points": 1, "max": 15}, 40, 15, "page_views = 40, +1 per 1 (capped)"),
    ({"per": 1, "points": 1, "max": 15}, 15, 15, "page_views = 15, +1 per 1 (capped)"),
    ({"per": 1, "points": 1}, 400, 400, "page_views = 400, +1 per 1"),
    ({"per": 2, "points": 1, "max": 5}, 5, 2, "page_views = 5, +1 per 2"),
    ({"per": 2, "points": 1, "max": 5}, 1, None, ""),
    ({"per": 1, "points": 1, "max": 15}, 0, None, ""),
    ({"per": 1, "points": 1, "max": 15}, -3, None, ""),
    ({"per": 1, "points": 1, "max": 15}, None, None, ""),
    ({"per": 1, "points": 1, "max": 15}, "12", None, ""),
    ({"per": 10, "points": -2, "max": 6}, 25, -4, "page_views = 25, -2 per 10"),
    ({"per": 10, "points": -2, "max": 6}, 100, -6, "page_views = 100, -2 per 10 (capped)"),
]


@pytest.mark.parametrize(("rule", "value", "points", "detail"), PER_UNIT_CASES)
def test_per_unit_rules_with_cap(
    rule: dict[str, Any],
    value: Any,
    points: int | None,
    detail: str,
    definition_data: dict[str, Any],
) -> None:
    spec = {"id": "views", "field": "page_views", **rule}
    d = with_rules(definition_data, engagement=[spec])
    card = d.score(lead(page_views=value))
    if points is None:
        assert card.reasons == ()
    else:
        assert card.reasons == (ScoreReason("views", "engagement", points, detail),)
    assert card.engagement == (points or 0)
    assert card.fit == 0


def test_negative_points(definition: LeadDefinition) -> None:
    card = definition.score(Lead.from_fields({"email": "someone@gmail.com"}))
    assert card == ScoreCard(
        fit=-15,
        engagement=0,
        reasons=(
            ScoreReason(
                "free_email",
                "fit",
                -15,
                r"email someone@gmail.com matches /@(gmail|yahoo|outlook|hotmail|gmx|web)\./",
            ),
        ),
    )
    assert card.total == -15


# -- totals and reasons with the example definition ---------------------------------------------

STRONG = {
    "industry": "software",
    "employees": 500,
    "job_title": "VP Sales",
    "country": "US",
    "lead_source": "demo_request",
    "page_views": 40,
    "email_clicks": 2,
    "email_opens": 5,
    "form_submissions": 1,
    "company": "Acme",
    "last_name": "Doe",
}


def test_totals_and_reasons(definition: LeadDefinition) -> None:
    card = definition.score(lead(**STRONG))
    assert (card.fit, card.engagement, card.total) == (60, 68, 128)
    assert [str(r) for r in card.reasons] == [
        "fit +15 target_industry: industry software is one of Software, Financial Services, "
        "Healthcare, Telecommunications",
        "fit +20 company_size: employees 500 is between 200, 20000",
        "fit +15 senior_title: job_title VP Sales matches "
        "/(?i)\\b(vp|vice president|head of|director|chief|cto|cfo|ceo…/",
        "fit +10 core_market: country US is one of US, CA, GB, DE, FR, NL, United States, "
        "Canada, United Kingdom, Germany, France, Netherlands",
        "engagement +40 demo_request: lead_source demo_request is demo_request",
        "engagement +15 page_views: page_views = 40, +1 per 1 (capped)",
        "engagement +6 email_clicks: email_clicks = 2, +3 per 1",
        "engagement +2 email_opens: email_opens = 5, +1 per 2",
        "engagement +5 form_submissions: form_submissions = 1, +5 per 1",
    ]


def test_score_card_from_reasons_adds_up_by_dimension() -> None:
    card = ScoreCard.from_reasons(
        [
            ScoreReason("a", "fit", 10, ""),
            ScoreReason("b", "engagement", 7, ""),
            ScoreReason("c", "fit", -3, ""),
            ScoreReason("d", "engagement", 5, ""),
        ]
    )
    assert (card.fit, card.engagement, card.total) == (7, 12, 19)
    assert [r.rule for r in card.reasons] == ["a", "b", "c", "d"]


def test_an_empty_lead_scores_nothing(definition: LeadDefinition) -> None:
    assert definition.score(lead()) == ScoreCard(0, 0, ())


# -- qualification --------------------------------------------------------------------------------


def qualify(d: LeadDefinition, the_lead: Lead) -> Qualification:
    """The qualification of ``the_lead`` on its own score."""
    return d.qualify(the_lead, d.score(the_lead))


def test_qualifies_to_mql(definition: LeadDefinition) -> None:
    assert qualify(definition, lead(**STRONG)) == Qualification(
        "mql",
        (
            "subscriber: every lead starts here",
            "lead: score 128 ≥ 10",
            "mql: score 128 ≥ 60, fit 60 ≥ 25",
        ),
    )


def test_stays_a_subscriber(definition: LeadDefinition) -> None:
    q = qualify(definition, Lead.from_fields({"email": "someone@gmail.com"}))
    assert q == Qualification(
        "subscriber", ("subscriber: every lead starts here", "not lead: score -15 < 10")
    )


def test_qualifies_to_lead_and_says_what_mql_lacks(definition: LeadDefinition) -> None:
    q = qualify(definition, lead(page_views=12))
    assert q == Qualification(
        "lead",
        (
            "subscriber: every lead starts here",
            "lead: score 12 ≥ 10",
            "not mql: score 12 < 60; fit 0 < 25; missing last_name, company, job_title",
        ),
    )


def test_missing_required_fields_block_mql(definition: LeadDefinition) -> None:
    fields = {k: v for k, v in STRONG.items() if k not in ("company", "job_title")}
    q = qualify(definition, lead(**fields))
    assert q.stage == "lead"
    assert q.reasons[-1] == "not mql: missing company, job_title"
    assert q.disqualified_by is None


def test_fit_shortfall_blocks_mql(definition: LeadDefinition) -> None:
    q = qualify(
        definition,
        lead(
            lead_source="demo_request",
            page_views=30,
            email_clicks=5,
            company="A",
            job_title="B",
            last_name="C",
        ),
    )
    assert q.stage == "lead"
    assert q.reasons[-1] == "not mql: fit 0 < 25"


def test_never_qualifies_past_the_handoff(definition: LeadDefinition) -> None:
    huge = {**STRONG, "email_clicks": 100, "form_submissions": 50}
    assert qualify(definition, lead(**huge)).stage == "mql"


def test_disqualification_rule_wins_over_any_score(definition: LeadDefinition) -> None:
    q = qualify(definition, Lead.from_fields({"email": "bob@rivalcrm.com", **STRONG}))
    assert q == Qualification(
        "disqualified",
        (
            "disqualified by rule competitor_domain: email bob@rivalcrm.com matches "
            "/@(rivalcrm|competitorcorp)\\.(com|io)$/",
        ),
        disqualified_by="competitor",
    )


def test_disqualification_without_reason_names_the_rule(definition_data: dict[str, Any]) -> None:
    definition_data["disqualify"] = [{"id": "students", "field": "job_title", "matches": "student"}]
    d = LeadDefinition(definition_data, filename=FILE, path=None)
    q = qualify(d, lead(job_title="PhD student"))
    assert q.stage == "disqualified"
    assert q.disqualified_by == "students"
    assert q.reasons == ("disqualified by rule students: job_title PhD student matches /student/",)


def test_engagement_threshold(definition_data: dict[str, Any]) -> None:
    definition_data["thresholds"]["mql"]["engagement"] = 70
    d = LeadDefinition(definition_data, filename=FILE, path=None)
    assert qualify(d, lead(**STRONG)).reasons[-1] == "not mql: engagement 68 < 70"
    definition_data["thresholds"]["mql"]["engagement"] = 60
    d = LeadDefinition(definition_data, filename=FILE, path=None)
    assert qualify(d, lead(**STRONG)).reasons[-1] == (
        "mql: score 128 ≥ 60, fit 60 ≥ 25, engagement 68 ≥ 60"
    )
