"""Validating a lead against the definition, and reading native values into shared types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crmbridge.definition import FieldSpec, LeadDefinition, Problem, check_value, coerce
from crmbridge.lead import Lead, normalize_email
from crmbridge.values import is_valid_email


def test_validate_names_every_field_and_rule(definition: LeadDefinition) -> None:
    bad = Lead.from_fields(
        {
            "email": "jane.doe@acme.example",
            "first_name": "J" * 41,
            "company": "Acme\x00Corp",
            "phone": "call me",
            "employees": "12",
            "website": "nope",
            "lead_source": "billboard",
            "page_views": -1,
            "email_opens": 2.5,
        }
    )
    assert definition.validate(bad) == [
        Problem("first_name", "max_length", "is 41 characters long; at most 40"),
        Problem("company", "control_characters", "contains control characters"),
        Problem("phone", "phone_format", "'call me' is not a phone number"),
        Problem("employees", "type", "must be an integer, got '12'"),
        Problem("website", "url_format", "'nope' is not a web address"),
        Problem(
            "lead_source",
            "choice",
            "'billboard' is not one of demo_request, content_download, webinar, trade_show, "
            "organic, paid, referral",
        ),
        Problem("page_views", "min", "is -1; at least 0"),
        Problem("email_opens", "type", "must be an integer, got 2.5"),
    ]


def test_a_good_lead_has_no_problems(definition: LeadDefinition) -> None:
    good = Lead.from_fields(
        {
            "email": "Jane.Doe@Acme.example",
            "first_name": "Jane",
            "company": "Acme",
            "phone": "+1 (555) 010-0100 ext. 12",
            "employees": 0,
            "website": "https://acme.example/about",
            "lead_source": "webinar",
            "page_views": 3,
        }
    )
    assert definition.validate(good) == []


def test_missing_email_is_a_problem_from_the_first_stage(definition: LeadDefinition) -> None:
    assert definition.validate(Lead(email="", fields={})) == [
        Problem("email", "required", "is missing; it is required from subscriber")
    ]


def test_fields_required_later_do_not_quarantine(definition: LeadDefinition) -> None:
    only_email = Lead.from_fields({"email": "jane@acme.example"})
    assert definition.validate(only_email) == []
    assert definition.missing_for(only_email, "mql") == ["last_name", "company", "job_title"]
    assert definition.missing_for(only_email, "lead") == []
    assert definition.missing_for(only_email, "recycled") == []


def test_problem_as_text() -> None:
    assert str(Problem("email", "email_format", "'x' is not a valid email address")) == (
        "email: 'x' is not a valid email address (rule email_format)"
    )


VALID_EMAILS = [
    "jane.doe@example.com",
    "jane+newsletter@example.com",
    "o'brien@example.ie",
    "a!#$%&*+/=?^_`{|}~-@example.org",
    '"john..doe"@example.com',
    '"john doe"@example.com',
    '"very.(),:;<>[]\\".VERY.\\"very@\\\\ \\"very\\".unusual"@strange.example.com',
    "user@[192.168.0.1]",
    "user@[IPv6:2001:db8::1]",
    "jörg@bücher.de",
    "用户@例子.广告",
    "x@sub.domain-with-dash.example.museum",
    "x" * 64 + "@example.com",
]

INVALID_EMAILS = [
    "plainaddress",
    "@example.com",
    "jane@",
    "jane@localhost",
    "john..doe@example.com",
    ".john@example.com",
    "john.@example.com",
    "jane@-example.com",
    "jane@example-.com",
    "jane@example..com",
    'a"b@example.com',
    "x" * 65 + "@example.com",
    "jane@" + "a" * 64 + ".com",
    "jane@[unclosed.example.com",
]


@pytest.mark.parametrize("email", VALID_EMAILS)
def test_valid_email_addresses(email: str, definition: LeadDefinition) -> None:
    assert is_valid_email(email)
    assert definition.validate(Lead.from_fields({"email": email})) == []


@pytest.mark.parametrize("email", INVALID_EMAILS)
def test_invalid_email_addresses(email: str, definition: LeadDefinition) -> None:
    assert not is_valid_email(email)
    [problem] = definition.validate(Lead.from_fields({"email": email}))
    assert problem.field == "email"
    assert problem.rule == "email_format"
    assert problem.message.endswith("is not a valid email address")


def test_email_longer_than_254_is_invalid() -> None:
    local = "a" * 60
    domain = ".".join(["b" * 60] * 3) + ".com"
    longest = f"{local}@{'c' * 6}.{domain}"
    too_long = f"{local}@{'c' * 7}.{domain}"
    assert (len(longest), len(too_long)) == (254, 255)
    assert is_valid_email(longest)
    assert not is_valid_email(too_long)


def test_long_value_is_clipped_in_the_message(definition: LeadDefinition) -> None:
    [problem] = definition.validate(Lead.from_fields({"email": "x" * 65 + "@example.com"}))
    assert problem.message == f"'{'x' * 59}…' is not a valid email address"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Jane.Doe@Example.COM\u200b ", "jane.doe@example.com"),
        ("<jane@example.com>", "jane@example.com"),
        ("mailto:Jane@Example.com", "jane@example.com"),
        ("Jo\u0308rg@example.de", "jörg@example.de"),
        (None, ""),
    ],
)
def test_normalize_email(raw: str | None, normalized: str) -> None:
    assert normalize_email(raw) == normalized


# -- check_value for every type ------------------------------------------------------------------


def spec(kind: str, **kw: Any) -> FieldSpec:
    """A field spec named after its type."""
    return FieldSpec(name=f"a_{kind}", type=kind, **kw)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (spec("string"), 12, ("type", "must be text, got int")),
        (spec("string", max_length=3), "abcd", ("max_length", "is 4 characters long; at most 3")),
        (spec("string"), "tab\tand\nnewline are fine", None),
        (spec("string"), "bell\x07", ("control_characters", "contains control characters")),
        (spec("string"), "del\x7f", ("control_characters", "contains control characters")),
        (spec("integer"), 7, None),
        (spec("integer"), True, ("type", "must be an integer, got True")),
        (spec("integer"), 7.0, ("type", "must be an integer, got 7.0")),
        (spec("integer", min=1), 0, ("min", "is 0; at least 1")),
        (spec("integer", max=10), 11, ("max", "is 11; at most 10")),
        (spec("number"), 2.5, None),
        (spec("number"), 3, None),
        (spec("number"), "2.5", ("type", "must be a number, got '2.5'")),
        (spec("boolean"), False, None),
        (spec("boolean"), "yes", ("type", "must be true or false, got 'yes'")),
        (spec("datetime"), datetime(2026, 1, 2, tzinfo=UTC), None),
        (spec("datetime"), "2026-01-02", ("type", "must be a date and time, got '2026-01-02'")),
        (spec("choice", choices=("a", "b")), "b", None),
        (spec("choice", choices=("a", "b")), "B", ("choice", "'B' is not one of a, b")),
        (spec("url"), "acme.example", None),
        (spec("url"), "http://", ("url_format", "'http://' is not a web address")),
        (spec("phone"), "+44 20 7946 0958", None),
        (spec("phone"), "12", ("phone_format", "'12' is not a phone number")),
    ],
)
def test_check_value(field: FieldSpec, value: Any, problem: tuple[str, str] | None) -> None:
    expected = None if problem is None else Problem(field.name, *problem)
    assert check_value(field, value) == expected


# -- coerce ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("100-500", 100),
        ("1,000+", 1000),
        ("5000+", 5000),
        ("1\u201310", 1),  # an en dash, as spreadsheets write ranges
        ("10 000", 10000),
        (" 42 ", 42),
        (12, 12),
        (12.0, 12),
    ],
)
def test_coerce_integer(raw: Any, value: int, definition: LeadDefinition) -> None:
    assert coerce(definition.fields["employees"], raw) == (value, None)


@pytest.mark.parametrize("raw", ["lots", "", 12.5, True, "-5"])
def test_coerce_integer_refuses(raw: Any, definition: LeadDefinition) -> None:
    value, problem = coerce(definition.fields["employees"], raw)
    assert value is None
    assert problem == Problem("employees", "type", f"{raw!r} cannot be read as an integer")


@pytest.mark.parametrize(
    ("field", "raw", "value"),
    [
        (spec("number"), "1,234.5", 1234.5),
        (spec("number"), 3, 3),
        (spec("boolean"), "Yes", True),
        (spec("boolean"), "0", False),
        (spec("boolean"), True, True),
        (spec("datetime"), "2026-11-23T10:00:00Z", datetime(2026, 11, 23, 10, tzinfo=UTC)),
        (spec("string"), 12345, "12345"),
        (spec("email"), "Jane@Example.com", "Jane@Example.com"),
    ],
)
def test_coerce_other_types(field: FieldSpec, raw: Any, value: Any) -> None:
    assert coerce(field, raw) == (value, None)


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        (spec("number"), "n/a", "'n/a' cannot be read as a number"),
        (spec("number"), False, "False cannot be read as a number"),
        (spec("boolean"), "maybe", "'maybe' cannot be read as a boolean"),
        (spec("datetime"), "yesterday", "'yesterday' cannot be read as a datetime"),
    ],
)
def test_coerce_refuses(field: FieldSpec, raw: Any, message: str) -> None:
    assert coerce(field, raw) == (None, Problem(field.name, "type", message))
