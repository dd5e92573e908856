"""Mapping between the shared language and each system's fields and picklist values, both ways."""

from __future__ import annotations

import pytest

from crmbridge.definition import Drift, LeadDefinition, Problem
from crmbridge.errors import MappingError, RecordError
from crmbridge.lead import OutcomeKind

LIFECYCLE = "[systems.hubspot.picklists.lifecyclestage]"
LEAD_STATUS = '[systems.salesforce.picklists."Lead.Status"]'
LEAD_SOURCE = '[systems.salesforce.picklists."Lead.LeadSource"]'


# -- fields ---------------------------------------------------------------------------------------


def test_from_native_maps_and_coerces(definition: LeadDefinition) -> None:
    hubspot = definition.system("hubspot")
    fields, problems = hubspot.from_native(
        {
            "email": "Jane@Acme.example",
            "firstname": "",
            "numemployees": "100-500",
            "lead_source": "demo_request",
            "hs_analytics_num_page_views": "12",
            "hs_email_click": 3,
            "not_a_mapped_property": "ignored",
        }
    )
    assert fields == {
        "email": "Jane@Acme.example",
        "first_name": None,
        "employees": 100,
        "lead_source": "demo_request",
        "page_views": 12,
        "email_clicks": 3,
    }
    assert problems == []


def test_from_native_reads_choices_through_the_picklist(definition: LeadDefinition) -> None:
    salesforce = definition.system("salesforce")
    assert salesforce.from_native({"LeadSource": "Web"}) == ({"lead_source": "organic"}, [])
    assert salesforce.from_native({"LeadSource": "Phone Inquiry"}) == ({"lead_source": None}, [])
    assert salesforce.from_native({"LeadSource": "demo request"}) == (
        {"lead_source": "demo_request"},
        [],
    )


def test_from_native_reports_problems_and_never_passes_them_through(
    definition: LeadDefinition,
) -> None:
    salesforce = definition.system("salesforce")
    fields, problems = salesforce.from_native(
        {"Email": "jane@acme.example", "NumberOfEmployees": "lots", "LeadSource": "Billboard"}
    )
    assert fields == {"email": "jane@acme.example"}
    assert problems == [
        Problem("employees", "type", "'lots' cannot be read as an integer"),
        Problem(
            "lead_source",
            "picklist_mapping",
            f"lead-definition.toml: {LEAD_SOURCE} has no mapping for Lead.LeadSource 'Billboard'",
        ),
    ]


def test_to_native(definition: LeadDefinition) -> None:
    salesforce = definition.system("salesforce")
    shared = {"email": "jane@acme.example", "lead_source": "organic", "employees": 5}
    assert salesforce.to_native({**shared, "page_views": 3, "first_name": None}) == {
        "Email": "jane@acme.example",
        "FirstName": None,
        "NumberOfEmployees": 5,
        "LeadSource": "Organic Search",
    }
    assert salesforce.to_native(shared, only=["employees"]) == {"NumberOfEmployees": 5}


def test_to_native_refuses_a_choice_with_no_native_value(definition: LeadDefinition) -> None:
    with pytest.raises(MappingError) as caught:
        definition.system("salesforce").to_native({"lead_source": "tv"})
    error = caught.value
    assert error.message == (
        f"lead-definition.toml: {LEAD_SOURCE} has no value written for value 'tv'"
    )
    assert (error.system, error.field, error.rule) == (
        "salesforce",
        "Lead.LeadSource",
        "picklist_mapping",
    )
    assert isinstance(error, RecordError)


def test_writable_fields_respect_ownership(definition: LeadDefinition) -> None:
    hubspot, salesforce = definition.system("hubspot"), definition.system("salesforce")
    # HubSpot (marketing) owns every field but the phone, which sales owns.
    assert hubspot.writable_fields(creating=False) == ["phone"]
    assert "phone" not in salesforce.writable_fields(creating=False)
    assert salesforce.writable_fields(creating=False) == [
        f for f in salesforce.fields if f != "phone"
    ]
    # A new record has nothing to overwrite.
    assert salesforce.writable_fields(creating=True) == list(salesforce.fields)
    assert definition.owned_by("phone", salesforce)
    assert not definition.owned_by("phone", hubspot)


def test_ownership_by_system_name(definition_data: dict[str, object]) -> None:
    fields = definition_data["fields"]
    assert isinstance(fields, dict)
    fields["country"]["owner"] = "salesforce"
    d = LeadDefinition(definition_data, filename="lead-definition.toml", path=None)
    assert "country" in d.system("hubspot").writable_fields(creating=False)
    assert "country" not in d.system("salesforce").writable_fields(creating=False)


# -- stages and outcomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "native"),
    [
        ("subscriber", "subscriber"),
        ("mql", "marketingqualifiedlead"),
        ("sal", "salesqualifiedlead"),
        ("sql", "salesqualifiedlead"),
        ("customer", "customer"),
        ("recycled", "lead"),
        ("disqualified", "other"),
    ],
)
def test_stage_to_native(stage: str, native: str, definition: LeadDefinition) -> None:
    assert definition.system("hubspot").stage_to_native(stage) == native


@pytest.mark.parametrize(
    ("native", "stage"),
    [
        ("marketingqualifiedlead", "mql"),
        ("MarketingQualifiedLead", "mql"),
        ("evangelist", "customer"),
        ("lead", "lead"),
        ("other", "disqualified"),
    ],
)
def test_stage_from_native(native: str, stage: str, definition: LeadDefinition) -> None:
    assert definition.system("hubspot").stage_from_native(native) == stage


def test_unmapped_stage_value_names_the_table(definition: LeadDefinition) -> None:
    with pytest.raises(MappingError) as caught:
        definition.system("hubspot").stage_from_native("nurture")
    assert str(caught.value) == (
        f"lead-definition.toml: {LIFECYCLE} has no mapping "
        "for lifecyclestage 'nurture' (add it to the definition or mark it `ignore = true`)"
    )
    assert caught.value.rule == "picklist_mapping"


def test_stage_with_no_native_value_to_write(definition: LeadDefinition) -> None:
    with pytest.raises(MappingError) as caught:
        definition.system("salesforce").stage_to_native("customer")
    assert caught.value.message == (
        f"lead-definition.toml: {LEAD_STATUS} has no value written for stage 'customer'"
    )
    assert caught.value.hint == "map a native value to stage = 'customer' (or list it in `also`)"


@pytest.mark.parametrize(
    ("kind", "native"),
    [
        (OutcomeKind.ACCEPTED, "IN_PROGRESS"),
        (OutcomeKind.REJECTED, "UNQUALIFIED"),
        (OutcomeKind.RECYCLED, "BAD_TIMING"),
        (OutcomeKind.LOST, "BAD_TIMING"),
        (OutcomeKind.CONVERTED, "OPEN_DEAL"),
        (OutcomeKind.WON, "OPEN_DEAL"),
    ],
)
def test_outcome_to_native(kind: OutcomeKind, native: str, definition: LeadDefinition) -> None:
    assert definition.system("hubspot").outcome_to_native(kind) == native


def test_outcomes_and_reasons_from_native(definition: LeadDefinition) -> None:
    hubspot, salesforce = definition.system("hubspot"), definition.system("salesforce")
    assert hubspot.outcome_from_native("NEW") is None  # ignored: means nothing here
    assert hubspot.outcome_from_native("OPEN_DEAL") is OutcomeKind.CONVERTED
    assert salesforce.outcome_from_native("Closed - Not Converted") is OutcomeKind.REJECTED
    assert salesforce.stage_from_native("Closed - Not Converted") == "recycled"
    assert salesforce.outcome_from_native("Closed Won", "Opportunity.StageName") is (
        OutcomeKind.WON
    )
    assert salesforce.reason_from_native("Opportunity.Loss_Reason__c", "Timing") == "bad_timing"
    assert salesforce.reason_from_native("Lead.Rejection_Reason__c", None) is None
    assert salesforce.reason_from_native("Lead.Rejection_Reason__c", "") is None


def test_unknown_picklist_and_system(definition: LeadDefinition) -> None:
    with pytest.raises(MappingError) as caught:
        definition.system("salesforce").picklist("Lead.Rating")
    assert caught.value.message == (
        "lead-definition.toml: [systems.salesforce.picklists] has no picklist 'Lead.Rating'"
    )
    with pytest.raises(MappingError) as caught:
        definition.system("marketo")
    assert str(caught.value) == (
        "lead-definition.toml has no [systems.marketo]; known systems: hubspot, "
        "salesforce (add [systems.marketo] with its fields and picklists)"
    )
    with pytest.raises(MappingError) as caught:
        definition.stage("nurture")
    assert caught.value.message == (
        "stage 'nurture' is not in lead-definition.toml [stages]; known: subscriber, lead, mql, "
        "sal, sql, opportunity, customer, recycled, disqualified"
    )


# -- drift ----------------------------------------------------------------------------------------


def test_drift_both_ways(definition: LeadDefinition) -> None:
    picklist = definition.system("hubspot").picklist("lifecyclestage")
    actual = [
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "nurture",
    ]
    assert picklist.drift(actual) == [
        Drift(
            "hubspot",
            "lifecyclestage",
            "nurture",
            "unmapped",
            f"lead-definition.toml: {LIFECYCLE} has no mapping for lifecyclestage 'nurture' "
            "(found in the hubspot picklist); add it or mark it `ignore = true`",
        ),
        Drift(
            "hubspot",
            "lifecyclestage",
            "other",
            "missing",
            f"lead-definition.toml: {LIFECYCLE} maps lifecyclestage 'other', which the hubspot "
            "picklist does not have; add the value in hubspot or remove it here",
        ),
    ]


def test_no_drift_when_the_picklist_matches(definition: LeadDefinition) -> None:
    picklist = definition.system("salesforce").picklist("Lead.Status")
    assert picklist.drift(list(picklist.values)) == []
    assert picklist.field == "Status"
    assert picklist.where == LEAD_STATUS
