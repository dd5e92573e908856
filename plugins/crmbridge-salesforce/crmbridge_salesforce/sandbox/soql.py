"""SOQL: a tokenizer, a recursive-descent parser, and a compiler to predicates and sort keys.

The subset is what a sync connector writes::

    SELECT Id, Email, Owner.Email FROM Lead
    WHERE SystemModstamp > 2024-01-01T00:00:00Z
      AND (Status = 'Working - Contacted' OR NOT IsConverted = true)
      AND Email IN ('a@x.com', 'b@x.com') AND Company LIKE 'Acme\\_%'
    ORDER BY SystemModstamp ASC, Id DESC NULLS LAST LIMIT 2000 OFFSET 10

plus ``SELECT COUNT() FROM ...``. As in Salesforce, keywords, field and object names are
case-insensitive, string equality is case-insensitive, ``AND`` and ``OR`` cannot be mixed without
parentheses, and errors say where they are (``ERROR at Row:1:Column:12``) with the real error codes:
``MALFORMED_QUERY`` for syntax, ``INVALID_FIELD`` for unknown fields and ill-typed values,
``INVALID_TYPE`` for unknown objects, ``INVALID_QUERY_FILTER_OPERATOR`` for bad operators.

Names are bound to the schema by a :class:`Resolver` the query engine supplies, so this module knows
nothing about how records are stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crmbridge_salesforce.sandbox.describe import FieldDef
from crmbridge_salesforce.sandbox.ids import canonical_id
from crmbridge_salesforce.sandbox.values import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    ValueTypeError,
    format_datetime,
    parse_date,
    parse_datetime,
)

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
Getter = Callable[[Record], Any]

# Only the words the grammar uses: other reserved words (GROUP, HAVING, WITH ...) are read as
# names, so ``FROM Group`` works and ``GROUP BY`` fails as an unexpected token, as in Salesforce.
KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC",
        "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "COUNT", "TRUE", "FALSE", "NULL",
        "INCLUDES", "EXCLUDES",
    }
)  # fmt: skip
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>-?(?:\d+\.\d+|\d+|\.\d+)(?![\w.]))
  | (?P<string>')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),.])
    """,
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_OBJECT_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity "
    "name. Please reference your WSDL or the describe call for the appropriate names."
)
_RELATIONSHIP_HINT = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the "
    "custom relationship name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)


class SoqlError(Exception):
    """A query Salesforce would refuse; ``pos`` is the offending character's offset, if known."""

    def __init__(self, code: str, detail: str, pos: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.pos = pos

    def message(self, soql: str) -> str:
        """The message as Salesforce words it: the query line, a caret, the row and column."""
        if self.pos is None:
            return self.detail
        row = soql.count("\n", 0, self.pos) + 1
        line_start = soql.rfind("\n", 0, self.pos) + 1
        line_end = soql.find("\n", self.pos)
        line = soql[line_start : line_end if line_end >= 0 else len(soql)]
        column = self.pos - line_start + 1
        return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{self.detail}"


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme: ``kind`` is name, keyword, string, number, date, datetime, op, punct or eof."""

    kind: str
    text: str
    pos: int
    value: Any = None

    def describe(self) -> str:
        """How an error message names this token."""
        return "<EOF>" if self.kind == "eof" else self.text


def tokenize(soql: str) -> list[Token]:
    """Split ``soql`` into tokens; string literals keep their raw text for LIKE."""
    tokens: list[Token] = []
    pos = 0
    length = len(soql)
    while pos < length:
        match = _TOKEN.match(soql, pos)
        if match is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{soql[pos]}'", pos)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "string":
            token, pos = _string(soql, pos)
            tokens.append(token)
            continue
        if kind == "name" and text.upper() in KEYWORDS:
            tokens.append(Token("keyword", text.upper(), pos))
        elif kind != "ws":
            tokens.append(Token(kind, text, pos))
        pos = match.end()
    tokens.append(Token("eof", "", length))
    return tokens


def _string(soql: str, start: int) -> tuple[Token, int]:
    """A quoted literal from ``start``; value is the decoded text, raw keeps the escapes."""
    out: list[str] = []
    pos = start + 1
    while pos < len(soql):
        ch = soql[pos]
        if ch == "'":
            raw = soql[start + 1 : pos]
            return Token("string", soql[start : pos + 1], start, ("".join(out), raw)), pos + 1
        if ch == "\\":
            nxt = soql[pos + 1 : pos + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in {"%", "_"}:
                out.append("\\" + nxt)
            else:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"Invalid string literal '{soql[start:]}'. Illegal character sequence "
                    f"'\\{nxt}' in string literal.",
                    pos,
                )
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise SoqlError("MALFORMED_QUERY", "unexpected token: <EOF>", len(soql))


# -- syntax tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRef:
    """A field path as written (``Owner.Email``) and where it starts."""

    path: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        """The path as written, dotted."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal:
    """A value in a condition: ``kind`` is string, number, boolean, null, date or datetime."""

    kind: str
    value: Any
    pos: int
    raw: str = ""


@dataclass(frozen=True)
class Comparison:
    """``field op value`` (``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``)."""

    field: FieldRef
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    """``field [NOT] IN (values)``."""

    field: FieldRef
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    """``field LIKE 'pattern'``."""

    field: FieldRef
    pattern: Literal


@dataclass(frozen=True)
class Not:
    """``NOT condition``."""

    operand: Condition


@dataclass(frozen=True)
class Junction:
    """``AND`` or ``OR`` of two or more conditions."""

    op: str
    operands: tuple[Condition, ...]


Condition = Comparison | InList | Like | Not | Junction


@dataclass(frozen=True)
class OrderItem:
    """One ORDER BY key with its direction and null placement."""

    field: FieldRef
    descending: bool
    nulls_last: bool


@dataclass(frozen=True)
class Query:
    """A parsed SOQL query."""

    text: str
    fields: tuple[FieldRef, ...]
    count: bool
    object_name: str
    object_pos: int
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


# -- parser -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, soql: str) -> None:
        self.soql = soql
        self.tokens = tokenize(soql)
        self.i = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.token.kind == "keyword" and self.token.text in words

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, ch: str) -> Token:
        if self.token.kind != "punct" or self.token.text != ch:
            raise self.unexpected()
        return self.advance()

    def unexpected(self) -> SoqlError:
        token = self.token
        return SoqlError("MALFORMED_QUERY", f"unexpected token: '{token.describe()}'", token.pos)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count = False
        fields: list[FieldRef] = []
        if self.at_keyword("COUNT"):
            self.advance()
            self.expect_punct("(")
            self.expect_punct(")")
            count = True
        else:
            fields.append(self.field_ref())
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                fields.append(self.field_ref())
        self.expect_keyword("FROM")
        if self.token.kind != "name":
            raise self.unexpected()
        obj = self.advance()
        where = None
        if self.at_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                order.append(self.order_item())
        limit = self.integer_clause("LIMIT")
        offset = self.integer_clause("OFFSET")
        if self.token.kind != "eof":
            raise self.unexpected()
        return Query(
            self.soql, tuple(fields), count, obj.text, obj.pos, where, tuple(order), limit, offset
        )

    def integer_clause(self, word: str) -> int | None:
        if not self.at_keyword(word):
            return None
        self.advance()
        token = self.token
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected()
        self.advance()
        return int(token.text)

    def field_ref(self) -> FieldRef:
        token = self.token
        if token.kind != "name":
            raise self.unexpected()
        parts = [self.advance().text]
        while self.token.kind == "punct" and self.token.text == ".":
            self.advance()
            if self.token.kind != "name":
                raise self.unexpected()
            parts.append(self.advance().text)
        return FieldRef(tuple(parts), token.pos)

    def order_item(self) -> OrderItem:
        ref = self.field_ref()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().text == "DESC"
        nulls_last = descending
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_last = self.advance().text == "LAST"
        return OrderItem(ref, descending, nulls_last)

    def condition(self) -> Condition:
        """A run of terms joined by one of AND / OR (mixing needs parentheses, as in SOQL)."""
        first = self.term()
        if not self.at_keyword("AND", "OR"):
            return first
        op = self.token.text
        operands = [first]
        while self.at_keyword("AND", "OR"):
            if self.token.text != op:
                raise self.unexpected()
            self.advance()
            operands.append(self.term())
        return Junction(op, tuple(operands))

    def term(self) -> Condition:
        if self.at_keyword("NOT"):
            self.advance()
            return Not(self.term())
        if self.token.kind == "punct" and self.token.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.predicate()

    def predicate(self) -> Condition:
        ref = self.field_ref()
        if self.token.kind == "op":
            op = self.advance().text
            return Comparison(ref, "!=" if op == "<>" else op, self.literal())
        if self.at_keyword("LIKE"):
            self.advance()
            pattern = self.literal()
            if pattern.kind != "string":
                raise SoqlError(
                    "MALFORMED_QUERY", "LIKE needs a quoted string pattern", pattern.pos
                )
            return Like(ref, pattern)
        negated = False
        if self.at_keyword("NOT"):
            self.advance()
            negated = True
            if not self.at_keyword("IN"):
                raise self.unexpected()
        if self.at_keyword("IN"):
            self.advance()
            self.expect_punct("(")
            if self.at_keyword("SELECT"):
                raise SoqlError(
                    "MALFORMED_QUERY", "semi-join sub-selects are not supported", self.token.pos
                )
            values = [self.literal()]
            while self.token.kind == "punct" and self.token.text == ",":
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(ref, tuple(values), negated)
        raise self.unexpected()

    def literal(self) -> Literal:
        token = self.token
        if token.kind == "string":
            self.advance()
            text, raw = token.value
            return Literal("string", text.replace("\\%", "%").replace("\\_", "_"), token.pos, raw)
        if token.kind == "number":
            self.advance()
            number = float(token.text) if "." in token.text else int(token.text)
            return Literal("number", number, token.pos)
        if token.kind == "keyword" and token.text in {"TRUE", "FALSE"}:
            self.advance()
            return Literal("boolean", token.text == "TRUE", token.pos)
        if token.kind == "keyword" and token.text == "NULL":
            self.advance()
            return Literal("null", None, token.pos)
        if token.kind == "date":
            self.advance()
            try:
                return Literal("date", parse_date(token.text), token.pos)
            except ValueTypeError as exc:
                raise SoqlError(
                    "MALFORMED_QUERY", f"invalid date: {token.text}", token.pos
                ) from exc
        if token.kind == "datetime":
            self.advance()
            try:
                value = format_datetime(parse_datetime(token.text))
            except ValueTypeError as exc:
                raise SoqlError(
                    "MALFORMED_QUERY", f"invalid dateTime: {token.text}", token.pos
                ) from exc
            return Literal("datetime", value, token.pos)
        raise self.unexpected()


def parse(soql: str) -> Query:
    """Parse ``soql``; raises :class:`SoqlError`."""
    if not soql.strip():
        raise SoqlError("MALFORMED_QUERY", "unexpected token: <EOF>", 0)
    return _Parser(soql).parse()


# -- binding to the schema ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedField:
    """A field path bound to the schema: its definition, its getter, its canonical path."""

    field: FieldDef
    getter: Getter
    path: tuple[str, ...]


class Resolver(Protocol):
    """Binds field paths of the query's object; raises :class:`SoqlError` for unknown names."""

    def resolve(self, ref: FieldRef) -> ResolvedField:  # pragma: no cover - protocol
        """Bind ``ref``; raise :class:`SoqlError` when a name is unknown."""
        ...


def unknown_field(name: str, object_name: str, pos: int) -> SoqlError:
    """``INVALID_FIELD`` for a column the object does not have."""
    return SoqlError(
        "INVALID_FIELD", f"No such column '{name}' on entity '{object_name}'. {_FIELD_HINT}", pos
    )


def unknown_relationship(name: str, pos: int) -> SoqlError:
    """``INVALID_FIELD`` for a relationship the object does not have."""
    return SoqlError(
        "INVALID_FIELD", f"Didn't understand relationship '{name}' in field path. "
        f"{_RELATIONSHIP_HINT}", pos,
    )  # fmt: skip


def unknown_object(name: str, pos: int) -> SoqlError:
    """``INVALID_TYPE`` for an object the org does not have."""
    return SoqlError("INVALID_TYPE", f"sObject type '{name}' is not supported. {_OBJECT_HINT}", pos)


def compile_condition(cond: Condition, resolver: Resolver) -> Predicate:
    """A predicate over records for ``cond``, type-checked against the schema."""
    if isinstance(cond, Junction):
        parts = [compile_condition(c, resolver) for c in cond.operands]
        if cond.op == "AND":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    if isinstance(cond, Not):
        inner = compile_condition(cond.operand, resolver)
        return lambda r: not inner(r)
    if isinstance(cond, Like):
        return _compile_like(cond, resolver)
    if isinstance(cond, InList):
        return _compile_in(cond, resolver)
    return _compile_comparison(cond, resolver)


def _type_class(field: FieldDef) -> str:
    if field.type in ID_TYPES:
        return "id"
    if field.type in TEXT_TYPES:
        return "string"
    if field.type in NUMBER_TYPES:
        return "number"
    return field.type  # boolean, date, datetime


_EXPECTED = {
    "string": "string", "id": "string", "number": "double", "boolean": "boolean",
    "date": "date", "datetime": "dateTime",
}  # fmt: skip


def _operand(field: FieldDef, literal: Literal, op: str) -> Any:
    """The literal as a comparable value for ``field``, or a SOQL error for a mismatch."""
    cls = _type_class(field)
    if literal.kind == "null":
        if op not in {"=", "!="}:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on null: {op}", literal.pos
            )
        return None
    wanted = {"id": "string", "number": "number"}.get(cls, cls)
    if literal.kind != wanted:
        quoted = "should be enclosed in quotes" if wanted == "string" else (
            "should not be enclosed in quotes"
        )  # fmt: skip
        raise SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{field.name}' must be of type "
            f"{_EXPECTED[cls]} and {quoted}",
            literal.pos,
        )
    if cls == "id":
        canonical = canonical_id(literal.value)
        if canonical is None:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {literal.value}", literal.pos
            )
        return canonical
    if cls == "string":
        return str(literal.value).casefold()
    if cls == "boolean" and op not in {"=", "!="}:
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field: {op}", literal.pos
        )
    return literal.value


def _filterable(resolved: ResolvedField, ref: FieldRef) -> None:
    if not resolved.field.filterable:
        raise SoqlError(
            "INVALID_FIELD",
            f"field '{resolved.field.name}' can not be filtered in a query call",
            ref.pos,
        )


def _compile_comparison(cond: Comparison, resolver: Resolver) -> Predicate:
    resolved = resolver.resolve(cond.field)
    _filterable(resolved, cond.field)
    get = resolved.getter
    operand = _operand(resolved.field, cond.value, cond.op)
    op = cond.op
    text = _type_class(resolved.field) == "string"
    if operand is None:
        return (lambda r: get(r) is None) if op == "=" else (lambda r: get(r) is not None)
    value_of = _folded(get) if text else get
    if op == "=":
        return lambda r: value_of(r) == operand
    if op == "!=":
        return lambda r: value_of(r) != operand
    compare: Callable[[Any], Any] = {
        "<": lambda a: a < operand,
        "<=": lambda a: a <= operand,
        ">": lambda a: a > operand,
        ">=": lambda a: a >= operand,
    }[op]

    def ordered(r: Record) -> bool:
        v = value_of(r)
        return v is not None and bool(compare(v))

    return ordered


def _folded(get: Getter) -> Getter:
    """A getter of case-folded text (SOQL compares strings case-insensitively)."""

    def value_of(r: Record) -> Any:
        v = get(r)
        return None if v is None else str(v).casefold()

    return value_of


def _compile_in(cond: InList, resolver: Resolver) -> Predicate:
    resolved = resolver.resolve(cond.field)
    _filterable(resolved, cond.field)
    get = resolved.getter
    operands = {_operand(resolved.field, v, "=") for v in cond.values}
    text = _type_class(resolved.field) == "string"

    def member(r: Record) -> bool:
        v = get(r)
        if v is not None and text:
            v = str(v).casefold()
        return v in operands

    if cond.negated:
        return lambda r: not member(r)
    return member


def like_regex(raw: str) -> re.Pattern[str]:
    """The regular expression for a LIKE pattern's raw (still escaped) text."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(re.escape(_ESCAPES.get(nxt, nxt)))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _compile_like(cond: Like, resolver: Resolver) -> Predicate:
    resolved = resolver.resolve(cond.field)
    _filterable(resolved, cond.field)
    if _type_class(resolved.field) != "string":
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            f"invalid operator on {resolved.field.type} field: LIKE",
            cond.field.pos,
        )
    pattern = like_regex(cond.pattern.raw)
    get = resolved.getter

    def like(r: Record) -> bool:
        v = get(r)
        return v is not None and pattern.fullmatch(str(v)) is not None

    return like


# -- ordering -----------------------------------------------------------------------------------


def sort_records(records: list[Record], order: Sequence[tuple[OrderItem, ResolvedField]]) -> None:
    """Sort in place by the ORDER BY items (stable sorts from the last key to the first)."""
    for item, resolved in reversed(order):
        get = resolved.getter
        text = _type_class(resolved.field) == "string"
        # Nulls sort as the smallest value for NULLS FIRST ascending; flipped as needed so a
        # reversed (descending) sort still puts them where the query asked.
        null_rank = 0 if item.nulls_last == item.descending else 2

        def key(r: Record, get: Getter = get, text: bool = text, null_rank: int = null_rank) -> Any:
            v = get(r)
            if v is None:
                return (null_rank, "")
            return (1, str(v).casefold() if text else v)

        records.sort(key=key, reverse=item.descending)


def check_sortable(resolved: ResolvedField, ref: FieldRef) -> None:
    """Refuse ORDER BY on fields Salesforce cannot sort (Long Text Areas)."""
    if not resolved.field.sortable:
        raise SoqlError(
            "INVALID_FIELD", f"field '{resolved.field.name}' can not be sorted in a query call",
            ref.pos,
        )  # fmt: skip


def conjuncts(cond: Condition | None) -> list[Condition]:
    """The top-level AND-ed conditions (all of which every result satisfies)."""
    if cond is None:
        return []
    if isinstance(cond, Junction) and cond.op == "AND":
        return list(cond.operands)
    return [cond]
