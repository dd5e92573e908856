"""The connector's SOQL, built only with ``simple_salesforce.format.format_soql``.

Every value (an email, an id, a timestamp, a list of ids) goes through ``format_soql``, which
quotes and escapes it; field and object names are checked to be plain API names before they are
placed with ``{:literal}``. Fragments made that way are joined with ``AND``, so no value ever
reaches a query by string concatenation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote_plus

from simple_salesforce.format import format_soql

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*$")
MODSTAMP = "SystemModstamp"
IN_BUDGET = 6000
"""The most bytes the values of one query's ``IN`` lists take in its URL. A query is a GET, and
URLs are capped (Salesforce at 16,384 bytes, many proxies and servers at 8,192): 200 emails can
be 10 KB once encoded, so long lists are split by size, not only by count."""
T = TypeVar("T")


def name(text: str) -> str:
    """``text`` if it is an API name (``Email``, ``Owner.Email``, ``CrmBridge_Id__c``)."""
    if not _NAME.match(text):
        raise ValueError(f"not a Salesforce API name: {text!r}")
    return text


def _aware(value: datetime) -> datetime:
    # format_soql reads a naive datetime as local time; the connector only ever means UTC.
    if value.tzinfo is None:
        raise ValueError(f"SOQL datetimes must be timezone-aware, got {value!r}")
    return value


def select(
    object_name: str,
    fields: Iterable[str],
    where: Sequence[str] = (),
    *,
    order_by_modstamp: bool = False,
    limit: int | None = None,
) -> str:
    """``SELECT fields FROM object [WHERE a AND b] [ORDER BY SystemModstamp, Id] [LIMIT n]``."""
    soql = format_soql(
        "SELECT {:literal} FROM {:literal}",
        ", ".join(name(f) for f in dict.fromkeys(fields)),
        name(object_name),
    )
    if where:
        soql += " WHERE " + " AND ".join(where)
    if order_by_modstamp:
        soql += " ORDER BY SystemModstamp, Id"
    if limit is not None:
        soql += format_soql(" LIMIT {}", int(limit))
    return soql


def count(object_name: str, where: Sequence[str] = ()) -> str:
    """``SELECT COUNT() FROM object [WHERE ...]``."""
    soql = format_soql("SELECT COUNT() FROM {:literal}", name(object_name))
    if where:
        soql += " WHERE " + " AND ".join(where)
    return soql


def modified_since(since: datetime) -> str:
    """Records whose ``SystemModstamp`` is at or after ``since``."""
    return format_soql("SystemModstamp >= {}", _aware(since))


def modified_before(until: datetime) -> str:
    """Records whose ``SystemModstamp`` is before ``until``."""
    return format_soql("SystemModstamp < {}", _aware(until))


def after(at: datetime, record_id: str) -> str:
    """Records after ``(at, record_id)`` in ``SystemModstamp, Id`` order (keyset paging)."""
    at = _aware(at)
    return format_soql(
        "(SystemModstamp > {} OR (SystemModstamp = {} AND Id > {}))", at, at, record_id
    )


def is_in(field: str, values: Iterable[str]) -> str:
    """``field IN ('a', 'b')``."""
    return format_soql("{:literal} IN {}", name(field), list(values))


def equals(field: str, value: str | bool | int | float | None) -> str:
    """``field = value``."""
    return format_soql("{:literal} = {}", name(field), value)


def any_of(*conditions: str) -> str:
    """``(a OR b ...)`` of fragments built here."""
    return "(" + " OR ".join(conditions) + ")"


def in_chunks(
    items: Sequence[T],
    values: Callable[[T], Iterable[str]] = lambda item: (str(item),),
    *,
    most: int = 200,
    budget: int = IN_BUDGET,
) -> Iterator[list[T]]:
    """``items`` in parts of at most ``most`` whose ``IN`` values (``values(item)``) stay within
    ``budget`` bytes of URL once quoted and encoded; an item over the budget goes alone."""
    part: list[T] = []
    size = 0
    for item in items:
        cost = sum(len(quote_plus(format_soql("{}", v))) + 4 for v in values(item))
        if part and (len(part) >= most or size + cost > budget):
            yield part
            part, size = [], 0
        part.append(item)
        size += cost
    if part:
        yield part
