"""The SOQL tokenizer and parser on their own: syntax, literals, escapes, error positions."""

from __future__ import annotations

import pytest
from crmbridge_salesforce.sandbox.soql import (
    Comparison,
    InList,
    Junction,
    Like,
    Not,
    SoqlError,
    like_regex,
    parse,
    tokenize,
)
from simple_salesforce.format import format_soql


def test_a_cursor_query_parses() -> None:
    query = parse(
        "select Id, Email, Owner.Email from lead where SystemModstamp > 2024-01-01T00:00:00Z "
        "order by SystemModstamp, Id desc nulls first limit 2000 offset 5"
    )
    assert [f.path for f in query.fields] == [("Id",), ("Email",), ("Owner", "Email")]
    assert query.object_name == "lead"
    assert isinstance(query.where, Comparison)
    assert query.where.value.kind == "datetime"
    assert query.where.value.value == "2024-01-01T00:00:00.000+0000"
    first, second = query.order_by
    assert (first.descending, first.nulls_last) == (False, False)
    assert (second.descending, second.nulls_last) == (True, False)
    assert (query.limit, query.offset) == (2000, 5)


@pytest.mark.parametrize(
    ("literal", "canonical"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000+0000"),
        ("2024-01-01T00:00:00.000+0000", "2024-01-01T00:00:00.000+0000"),
        ("2024-01-01T02:30:00+02:30", "2024-01-01T00:00:00.000+0000"),
        ("2023-12-31T19:00:00-05:00", "2024-01-01T00:00:00.000+0000"),
        ("2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.123+0000"),
    ],
)
def test_datetime_literals(literal: str, canonical: str) -> None:
    where = parse(f"SELECT Id FROM Lead WHERE CreatedDate >= {literal}").where
    assert isinstance(where, Comparison)
    assert where.value.value == canonical


def test_literal_kinds() -> None:
    where = parse(
        "SELECT Id FROM Opportunity WHERE CloseDate = 2024-02-29 AND Amount > -10.5 "
        "AND IsWon = TRUE AND AccountId != null AND Probability <= 50"
    ).where
    assert isinstance(where, Junction)
    kinds = [c.value.kind for c in where.operands if isinstance(c, Comparison)]
    assert kinds == ["date", "number", "boolean", "null", "number"]


def test_in_not_in_like_and_not() -> None:
    where = parse(
        "SELECT Id FROM Lead WHERE (Status IN ('A', 'B') OR Email NOT IN ('x@y.z')) "
        "AND NOT Company LIKE 'Acme%'"
    ).where
    assert isinstance(where, Junction)
    assert where.op == "AND"
    either, negated = where.operands
    assert isinstance(either, Junction)
    assert either.op == "OR"
    assert isinstance(either.operands[0], InList)
    assert either.operands[0].negated is False
    assert isinstance(either.operands[1], InList)
    assert either.operands[1].negated is True
    assert isinstance(negated, Not)
    assert isinstance(negated.operand, Like)


def test_count_query() -> None:
    query = parse("SELECT COUNT() FROM Lead WHERE IsConverted = false")
    assert query.count is True
    assert query.fields == ()


@pytest.mark.parametrize(
    "value",
    [
        "o'brien@example.com",
        "back\\slash",
        "' OR Name != '",
        'quote " and newline\n and tab\t',
        "100% _legit_",
        "\\' OR Id != null OR Name = '\\",
    ],
)
def test_format_soql_output_parses_to_the_literal_value(value: str) -> None:
    soql = format_soql("SELECT Id FROM Lead WHERE Company = {} AND Email != null", value)
    where = parse(soql).where
    assert isinstance(where, Junction)
    assert len(where.operands) == 2
    first = where.operands[0]
    assert isinstance(first, Comparison)
    assert first.value.value == value


def test_like_escapes_from_format_soql_match_literally() -> None:
    soql = format_soql("SELECT Id FROM Lead WHERE Company LIKE '{:like}%'", "50%_off\\")
    where = parse(soql).where
    assert isinstance(where, Like)
    pattern = like_regex(where.pattern.raw)
    assert pattern.fullmatch("50%_OFF\\ and more")
    assert not pattern.fullmatch("50x off\\")
    assert not pattern.fullmatch("50%xoff\\")


def test_like_wildcards() -> None:
    pattern = like_regex("a_c%")
    assert pattern.fullmatch("ABCdef")
    assert pattern.fullmatch("a.c")
    assert not pattern.fullmatch("ac")


@pytest.mark.parametrize(
    ("soql", "code", "column"),
    [
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", 26),
        ("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", "MALFORMED_QUERY", 43),
        ("SELECT Id, FROM Lead", "MALFORMED_QUERY", 12),
        ("SELECT Id FROM Lead LIMIT x", "MALFORMED_QUERY", 27),
        ("SELECT Id FROM Lead WHERE Name = 'unterminated", "MALFORMED_QUERY", 47),
        ("SELECT Id FROM Lead WHERE Name = 'bad \\x escape'", "MALFORMED_QUERY", 39),
        ("SELECT Id FROM Lead GROUP BY Status", "MALFORMED_QUERY", 21),
        ("SELECT Id FROM Lead WHERE Name NOT LIKE 'x'", "MALFORMED_QUERY", 36),
        ("SELECT Id FROM Lead WHERE Id IN (SELECT LeadId FROM X)", "MALFORMED_QUERY", 34),
        ("SELECT Id FROM Lead WHERE Name = 'a' #", "MALFORMED_QUERY", 38),
        ("", "MALFORMED_QUERY", 1),
    ],
)
def test_syntax_errors_say_where(soql: str, code: str, column: int) -> None:
    with pytest.raises(SoqlError) as error:
        parse(soql)
    assert error.value.code == code
    message = error.value.message(soql)
    assert f"ERROR at Row:1:Column:{column}\n" in message


def test_error_position_on_a_later_line() -> None:
    soql = "SELECT Id\nFROM Lead\nWHERE Email = = 'x'"
    with pytest.raises(SoqlError) as error:
        parse(soql)
    message = error.value.message(soql)
    assert message.startswith("\nWHERE Email = = 'x'\n              ^\n")
    assert "ERROR at Row:3:Column:15\nunexpected token: '='" in message


def test_tokens_keep_raw_string_text() -> None:
    tokens = tokenize(r"SELECT Id FROM Lead WHERE Name LIKE 'a\_b\%c\\d\'e'")
    string = next(t for t in tokens if t.kind == "string")
    assert string.value == ("a\\_b\\%c\\d'e", r"a\_b\%c\\d\'e")
    assert tokens[-1].kind == "eof"
