"""Every way a lead definition file can be wrong, and the exact message that says where and how.

Each case breaks one thing in a copy of ``configs/lead-definition.toml`` and asserts the complete
``DefinitionError``: every line names the file and the exact TOML key, and nothing else is
reported (no cascade of follow-on complaints).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crmbridge.definition import LeadDefinition
from crmbridge.errors import ConfigurationError, DefinitionError, DefinitionProblem
from tests.core.conftest import DEFINITION_TEXT

FILE = "lead-definition.toml"
STAGES = "subscriber, lead, mql, sal, sql, opportunity, customer, recycled, disqualified"
FUNNEL = "subscriber, lead, mql, sal, sql, opportunity, customer"
OUTCOMES = "accepted, rejected, recycled, converted, won, lost"
SOURCES = "demo_request, content_download, webinar, trade_show, organic, paid, referral"
REASONS = (
    "no_budget, bad_timing, not_decision_maker, no_response, not_a_fit, duplicate, competitor, "
    "student, spam, price, lost_to_competitor, no_decision, unknown"
)
RULE_TESTS = "equals, in, not_in, matches, gte, lte, between, present, absent"
FIELDS = (
    "email, first_name, last_name, company, job_title, phone, country, employees, industry, "
    "website, lead_source, page_views, email_opens, email_clicks, form_submissions"
)
HS = ("systems", "hubspot")
SF = ("systems", "salesforce")
Path_ = tuple[str | int, ...]


def put(data: dict[str, Any], path: Path_, value: Any) -> None:
    """Set the value at ``path`` (keys and list indexes) in the parsed definition."""
    *parents, leaf = path
    node: Any = data
    for part in parents:
        node = node[part]
    node[leaf] = value


def drop(data: dict[str, Any], path: Path_) -> None:
    """Remove the key at ``path`` from the parsed definition."""
    *parents, leaf = path
    node: Any = data
    for part in parents:
        node = node[part]
    del node[leaf]


def unknown_stage(key: str, name: str) -> str:
    """The message for a key naming a stage the definition does not have."""
    return (
        f"{FILE}: [{key}] refers to stage {name!r}, which is not in [stages]; use one of {STAGES}"
    )


def side_state(key: str, name: str) -> str:
    """The message for a key naming a side state where a funnel stage is needed."""
    return (
        f"{FILE}: [{key}] refers to side state {name!r}; a funnel stage is needed here; "
        f"use one of {FUNNEL}"
    )


@dataclass(frozen=True)
class Broken:
    """One way to break the definition and the exact lines of the error it must give."""

    id: str
    edit: Callable[[dict[str, Any]], object]
    expected: Sequence[str]


CASES = [
    Broken(
        "missing version",
        lambda d: drop(d, ("version",)),
        [f'{FILE}: [version] is missing; set version = "..."'],
    ),
    Broken(
        "required_at names an unknown stage",
        lambda d: put(d, ("fields", "company", "required_at"), "mq1"),
        [unknown_stage("fields.company.required_at", "mq1")],
    ),
    Broken(
        "required_at names a side state",
        lambda d: put(d, ("fields", "company", "required_at"), "recycled"),
        [side_state("fields.company.required_at", "recycled")],
    ),
    Broken(
        "threshold for an unknown stage",
        lambda d: put(d, ("thresholds", "mq1"), {"score": 5}),
        [unknown_stage("thresholds.mq1", "mq1")],
    ),
    Broken(
        "threshold for a side state",
        lambda d: put(d, ("thresholds", "recycled"), {"score": 1}),
        [side_state("thresholds.recycled", "recycled")],
    ),
    Broken(
        "threshold after the handoff stage",
        lambda d: put(d, ("thresholds", "sql"), {"score": 90}),
        [
            f"{FILE}: [thresholds.sql] stage 'sql' comes after the handoff stage 'mql'; stages "
            "after the handoff are given by sales' outcomes, not by score; remove [thresholds.sql]"
        ],
    ),
    Broken(
        "no threshold for the handoff stage",
        lambda d: drop(d, ("thresholds", "mql")),
        [
            f"{FILE}: [thresholds.mql] is missing; the handoff stage 'mql' needs a score "
            "threshold; add [thresholds.mql] score = N"
        ],
    ),
    Broken(
        "handoff at an unknown stage",
        lambda d: put(d, ("handoff", "stage"), "mq1"),
        [unknown_stage("handoff.stage", "mq1")],
    ),
    Broken(
        "handoff at a side state",
        lambda d: put(d, ("handoff", "stage"), "recycled"),
        [side_state("handoff.stage", "recycled")],
    ),
    Broken(
        "negative SLA",
        lambda d: put(d, ("handoff", "sla_hours"), -1),
        [f"{FILE}: [handoff.sla_hours] must be a positive number of hours; e.g. 24"],
    ),
    Broken(
        "SLA for a source that is not a lead_source choice",
        lambda d: put(d, ("handoff", "sla_hours_by_source", "cold_call"), 2),
        [
            f"{FILE}: [handoff.sla_hours_by_source.cold_call] 'cold_call' is not a lead_source "
            f"choice; use one of {SOURCES}"
        ],
    ),
    Broken(
        "outcome leads to an unknown stage",
        lambda d: put(d, ("outcomes", "accepted", "stage"), "sa1"),
        [unknown_stage("outcomes.accepted.stage", "sa1")],
    ),
    Broken(
        "outcome with an opportunity leads to an unknown stage",
        lambda d: put(d, ("outcomes", "converted", "stage_with_opportunity"), "opp"),
        [unknown_stage("outcomes.converted.stage_with_opportunity", "opp")],
    ),
    Broken(
        "an outcome is missing",
        lambda d: drop(d, ("outcomes", "won")),
        [
            f"{FILE}: [outcomes.won] is missing; add [outcomes.won] with the stage this outcome "
            "leads to"
        ],
    ),
    Broken(
        "an outcome that does not exist",
        lambda d: put(d, ("outcomes", "abandoned"), {"stage": "recycled"}),
        [f"{FILE}: [outcomes.abandoned] is not an outcome; use {OUTCOMES}"],
    ),
    Broken(
        "reason leads to an unknown stage",
        lambda d: put(d, ("reasons", "spam", "stage"), "junk"),
        [unknown_stage("reasons.spam.stage", "junk")],
    ),
    Broken(
        "reason applies to an unknown outcome",
        lambda d: put(d, ("reasons", "price", "applies_to"), ["lost", "abandoned"]),
        [f"{FILE}: [reasons.price.applies_to] unknown outcome 'abandoned'; use {OUTCOMES}"],
    ),
    Broken(
        "reason_required with no reason for the outcome",
        lambda d: [
            put(d, ("reasons", code, "applies_to"), ["rejected"])
            for code, spec in d["reasons"].items()
            if "lost" in spec["applies_to"]
        ],
        [
            f"{FILE}: [outcomes.lost.reason_required] is true but no [reasons.*] applies to "
            'lost; add a reason with applies_to = ["lost"]'
        ],
    ),
    Broken(
        "label for an unknown stage",
        lambda d: put(d, ("stages", "labels", "nurture"), "Nurture"),
        [unknown_stage("stages.labels.nurture", "nurture")],
    ),
    Broken(
        "a stage listed twice",
        lambda d: put(
            d,
            ("stages", "funnel"),
            ["subscriber", "lead", "lead", "mql", "sal", "sql", "opportunity", "customer"],
        ),
        [f"{FILE}: [stages.funnel] stage 'lead' is listed twice; list each stage once"],
    ),
    Broken(
        "recycling to a funnel stage",
        lambda d: put(d, ("recycle", "stage"), "lead"),
        [f"{FILE}: [recycle.stage] 'lead' is a funnel stage; name a side state"],
    ),
    Broken(
        "no recycles allowed at all",
        lambda d: put(d, ("recycle", "max_recycles"), 0),
        [f"{FILE}: [recycle.max_recycles] must be a whole number ≥ 1; e.g. 3"],
    ),
    Broken(
        "unknown field type",
        lambda d: put(d, ("fields", "employees", "type"), "int"),
        [
            f"{FILE}: [fields.employees.type] unknown type 'int'; use one of string, email, "
            "phone, url, integer, number, boolean, datetime, choice"
        ],
    ),
    Broken(
        "choice field without choices",
        lambda d: drop(d, ("fields", "lead_source", "choices")),
        [f"{FILE}: [fields.lead_source.choices] is missing for a choice field; list the choices"],
    ),
    Broken(
        "email field that is not of type email",
        lambda d: put(d, ("fields", "email", "type"), "string"),
        [f'{FILE}: [fields.email.type] must be `email`; set type = "email"'],
    ),
    Broken(
        "max_length that is not a number",
        lambda d: put(d, ("fields", "company", "max_length"), "255"),
        [f"{FILE}: [fields.company.max_length] must be a whole number, not '255'"],
    ),
    Broken(
        "owner that is neither a role nor a system",
        lambda d: put(d, ("fields", "phone", "owner"), "finance"),
        [
            f"{FILE}: [fields.phone.owner] unknown owner 'finance'; use a role (marketing, sales) "
            "or a system (hubspot, salesforce)"
        ],
    ),
    Broken(
        "scoring rule with a bad regular expression",
        lambda d: put(d, ("scoring", "fit", 3, "matches"), "(vp|cto"),
        [
            f"{FILE}: [scoring.fit[3].matches] is not a valid regular expression: missing ), "
            "unterminated subpattern at position 0; fix the pattern"
        ],
    ),
    Broken(
        "scoring rule with two tests",
        lambda d: put(d, ("scoring", "fit", 0, "equals"), "Software"),
        [f"{FILE}: [scoring.fit[0]] needs exactly one test, found 2; use one of {RULE_TESTS}"],
    ),
    Broken(
        "scoring rule with no test",
        lambda d: drop(d, ("scoring", "fit", 0, "in")),
        [f"{FILE}: [scoring.fit[0]] needs exactly one test, found 0; use one of {RULE_TESTS}"],
    ),
    Broken(
        "scoring rule on an unknown field",
        lambda d: put(d, ("scoring", "fit", 0, "field"), "sector"),
        [f"{FILE}: [scoring.fit[0].field] field 'sector' is not in [fields]; use one of {FIELDS}"],
    ),
    Broken(
        "two scoring rules with one id",
        lambda d: put(d, ("scoring", "fit", 1, "id"), "target_industry"),
        [f"{FILE}: [scoring.fit[1].id] rule id 'target_industry' is used twice; rename one"],
    ),
    Broken(
        "scoring rule without points",
        lambda d: drop(d, ("scoring", "fit", 0, "points")),
        [f"{FILE}: [scoring.fit[0].points] is missing; set the points this rule gives"],
    ),
    Broken(
        "per-unit rule with per = 0",
        lambda d: put(d, ("scoring", "engagement", 1, "per"), 0),
        [f"{FILE}: [scoring.engagement[1].per] must be positive; e.g. per = 1"],
    ),
    Broken(
        "between with one bound",
        lambda d: put(d, ("scoring", "fit", 1, "between"), [200]),
        [
            f"{FILE}: [scoring.fit[1].between] must be a list of two numbers; "
            "e.g. between = [50, 200]"
        ],
    ),
    Broken(
        "in with a single value",
        lambda d: put(d, ("scoring", "fit", 0, "in"), "Software"),
        [f'{FILE}: [scoring.fit[0].in] must be a list; e.g. in = ["a", "b"]'],
    ),
    Broken(
        "disqualification with an unknown reason",
        lambda d: put(d, ("disqualify", 0, "reason"), "rival"),
        [f"{FILE}: [disqualify[0].reason] unknown reason 'rival'; use one of {REASONS}"],
    ),
    Broken(
        "unknown key close to a known one",
        lambda d: put(d, ("handoff", "sla_hour"), 3),
        [f"{FILE}: [handoff.sla_hour] is not a known key; did you mean 'sla_hours'?"],
    ),
    Broken(
        "unknown key with swapped letters",
        lambda d: put(d, ("fields", "email", "tpye"), "email"),
        [f"{FILE}: [fields.email.tpye] is not a known key; did you mean 'type'?"],
    ),
    Broken(
        "unknown top-level table",
        lambda d: put(d, ("threshold",), {}),
        [f"{FILE}: [threshold] is not a known key; did you mean 'thresholds'?"],
    ),
    Broken(
        "unknown key like no known one",
        lambda d: put(d, ("handoff", "colour"), "red"),
        [
            f"{FILE}: [handoff.colour] is not a known key; known keys: sla_hours, "
            "sla_hours_by_source, stage"
        ],
    ),
    Broken(
        "system maps an unknown shared field",
        lambda d: put(d, (*HS, "fields", "twitter"), "twitterhandle"),
        [
            f"{FILE}: [systems.hubspot.fields.twitter] maps 'twitter', which is not a field of "
            "the definition; add [fields.twitter] or remove the mapping"
        ],
    ),
    Broken(
        "system without the email field",
        lambda d: drop(d, (*SF, "fields", "email")),
        [f"{FILE}: [systems.salesforce.fields.email] is missing; map the email field"],
    ),
    Broken(
        "system with an unknown role",
        lambda d: put(d, (*HS, "role"), "support"),
        [f"{FILE}: [systems.hubspot.role] unknown role 'support'; use marketing, sales"],
    ),
    Broken(
        "stage_field naming no picklist",
        lambda d: put(d, (*HS, "stage_field"), "lifecycle_stage"),
        [
            f"{FILE}: [systems.hubspot.stage_field] names picklist 'lifecycle_stage', which is "
            "not under [systems.hubspot.picklists]; "
            'add [systems.hubspot.picklists."lifecycle_stage"]'
        ],
    ),
    Broken(
        "picklist value with no meaning",
        lambda d: put(d, (*HS, "picklists", "hs_lead_status", "OPEN"), {}),
        [
            f"{FILE}: [systems.hubspot.picklists.hs_lead_status.OPEN] says nothing about native "
            "value 'OPEN'; give one of stage, outcome, reason, value or ignore = true"
        ],
    ),
    Broken(
        "picklist value meaning an unknown stage",
        lambda d: put(d, (*HS, "picklists", "lifecyclestage", "subscriber"), {"stage": "subbed"}),
        [
            unknown_stage("systems.hubspot.picklists.lifecyclestage.subscriber.stage", "subbed"),
            f"{FILE}: [systems.hubspot.picklists.lifecyclestage] no native value is written for "
            "stage 'subscriber'; the marketing system must be able to show every stage; map a "
            'value with stage = "subscriber" or list it in `also`',
        ],
    ),
    Broken(
        "picklist value meaning an unknown outcome",
        lambda d: put(d, (*HS, "picklists", "hs_lead_status", "OPEN"), {"outcome": "opened"}),
        [
            f"{FILE}: [systems.hubspot.picklists.hs_lead_status.OPEN.outcome] unknown outcome "
            f"'opened'; use {OUTCOMES}"
        ],
    ),
    Broken(
        "picklist value meaning an unknown reason",
        lambda d: put(
            d, (*SF, "picklists", "Lead.Rejection_Reason__c", "Spam"), {"reason": "junk"}
        ),
        [
            f'{FILE}: [systems.salesforce.picklists."Lead.Rejection_Reason__c".Spam.reason] '
            f"unknown reason 'junk'; add [reasons.junk] or use one of {REASONS}"
        ],
    ),
    Broken(
        "picklist value that is not a choice of its field",
        lambda d: put(d, (*HS, "picklists", "lead_source", "paid"), {"value": "ppc"}),
        [
            f"{FILE}: [systems.hubspot.picklists.lead_source.paid.value] 'ppc' is not a choice "
            f"of field 'lead_source'; use one of {SOURCES}"
        ],
    ),
    Broken(
        "a shared stage written by two native values",
        lambda d: drop(d, (*HS, "picklists", "lifecyclestage", "evangelist", "write")),
        [
            f"{FILE}: [systems.hubspot.picklists.lifecyclestage.evangelist] stage 'customer' is "
            "written as both 'customer' and 'evangelist'; mark one of them write = false"
        ],
    ),
    Broken(
        "marketing system cannot show a stage",
        lambda d: drop(d, (*HS, "picklists", "lifecyclestage", "opportunity")),
        [
            f"{FILE}: [systems.hubspot.picklists.lifecyclestage] no native value is written for "
            "stage 'opportunity'; the marketing system must be able to show every stage; map a "
            'value with stage = "opportunity" or list it in `also`'
        ],
    ),
    Broken(
        "marketing system cannot show an outcome",
        lambda d: drop(d, (*HS, "picklists", "hs_lead_status", "IN_PROGRESS")),
        [
            f"{FILE}: [systems.hubspot.picklists.hs_lead_status] no native value is written for "
            "outcome 'accepted'; marketing must see every verdict; map a value with "
            'outcome = "accepted" or list it in `also`'
        ],
    ),
    Broken(
        "sales system has no status for a new handoff",
        lambda d: drop(d, (*SF, "picklists", "Lead.Status", "Open - Not Contacted")),
        [
            f'{FILE}: [systems.salesforce.picklists."Lead.Status"] no native value is written '
            "for the handoff stage 'mql'; map the status a new handoff gets with stage = \"mql\""
        ],
    ),
]


def load_errors(data: dict[str, Any]) -> list[str]:
    """The lines of the ``DefinitionError`` loading ``data`` raises (checked to be complete)."""
    with pytest.raises(DefinitionError) as caught:
        LeadDefinition(data, filename=FILE, path=None)
    error = caught.value
    assert error.filename == FILE
    lines = str(error).splitlines()
    assert lines == [problem.render(FILE) for problem in error.problems]
    return lines


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_definition_names_file_and_key(
    case: Broken, definition_data: dict[str, Any]
) -> None:
    case.edit(definition_data)
    assert load_errors(definition_data) == list(case.expected)


def test_the_example_definition_loads(definition: LeadDefinition) -> None:
    assert definition.version == "2026.11.1"
    assert [s.name for s in definition.funnel] == FUNNEL.split(", ")
    assert [s.name for s in definition.stages.values() if s.side] == ["recycled", "disqualified"]
    assert definition.handoff.stage == "mql"
    assert set(definition.systems) == {"hubspot", "salesforce"}
    assert definition.stamp == {"version": "2026.11.1", "hash": definition.content_hash}
    assert len(definition.content_hash) == 16


def test_every_problem_of_a_file_is_reported_at_once(definition_data: dict[str, Any]) -> None:
    drop(definition_data, ("version",))
    put(definition_data, ("thresholds", "mq1"), {"score": 5})
    put(definition_data, ("scoring", "fit", 3, "matches"), "(vp|cto")
    put(definition_data, ("fields", "phone", "owner"), "finance")
    put(definition_data, ("handoff", "sla_hour"), 3)

    with pytest.raises(DefinitionError) as caught:
        LeadDefinition(definition_data, filename=FILE, path=None)

    keys = [p.key for p in caught.value.problems]
    assert sorted(keys) == sorted(
        [
            "version",
            "thresholds.mq1",
            "scoring.fit[3].matches",
            "fields.phone.owner",
            "handoff.sla_hour",
        ]
    )
    assert str(caught.value).count(f"{FILE}: [") == 5
    assert isinstance(caught.value, ConfigurationError)


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "my-definition.toml"
    path.write_text(DEFINITION_TEXT.replace('[handoff]\nstage = "mql"', '[handoff\nstage = "mql"'))

    with pytest.raises(DefinitionError) as caught:
        LeadDefinition.load(path)

    line = DEFINITION_TEXT.splitlines().index("[handoff]") + 1
    [problem] = caught.value.problems
    assert problem.key == "file"
    message = str(caught.value)
    assert message.startswith("my-definition.toml: [file] is not valid TOML: ")
    assert f"(at line {line}, column 9)" in message
    assert message.endswith("; fix the syntax")


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(DefinitionError) as caught:
        LeadDefinition.load(missing)
    assert str(caught.value) == (
        f"nowhere.toml: [file] cannot be read (No such file or directory); check {missing}"
    )


def test_the_file_name_is_the_loaded_files(tmp_path: Path) -> None:
    path = tmp_path / "funnel.toml"
    path.write_text(DEFINITION_TEXT.replace('version = "2026.11.1"\n', ""))
    with pytest.raises(DefinitionError) as caught:
        LeadDefinition.load(path)
    assert str(caught.value) == 'funnel.toml: [version] is missing; set version = "..."'


def test_problem_rendering_without_a_fix() -> None:
    assert DefinitionProblem("a.b", "is odd").render("f.toml") == "f.toml: [a.b] is odd"
    assert DefinitionProblem("a.b", "is odd", "fix it").render("f.toml") == (
        "f.toml: [a.b] is odd; fix it"
    )


def test_hash_changes_with_the_content(definition_data: dict[str, Any]) -> None:
    first = LeadDefinition(definition_data, filename=FILE, path=None)
    put(definition_data, ("thresholds", "mql", "score"), 61)
    second = LeadDefinition(definition_data, filename=FILE, path=None)
    assert first.version == second.version
    assert first.content_hash != second.content_hash
