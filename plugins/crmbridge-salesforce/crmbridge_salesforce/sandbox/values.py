"""Field values as the org keeps them, and their conversion from JSON and CSV input.

Stored values are canonical and JSON-able, so a record is its own snapshot and compares cheaply:
text as ``str``; numbers as ``int`` or ``float``; checkboxes as ``bool``; dates as ``YYYY-MM-DD``;
datetimes as ``YYYY-MM-DDThh:mm:ss.fff+0000`` in UTC, which sorts chronologically as a string and is
exactly what the REST API prints. A null is an absent key.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

TEXT_TYPES = frozenset(
    {"string", "email", "phone", "url", "picklist", "multipicklist", "textarea", "combobox"}
)
ID_TYPES = frozenset({"id", "reference"})
INTEGER_TYPES = frozenset({"int"})
DECIMAL_TYPES = frozenset({"double", "currency", "percent"})
NUMBER_TYPES = INTEGER_TYPES | DECIMAL_TYPES
_TEXTUAL = TEXT_TYPES | ID_TYPES

_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?$"
)
_CANONICAL_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


class ValueTypeError(ValueError):
    """A value that cannot become the field's type (the caller names the field)."""


def parse_datetime(text: str) -> datetime:
    """An aware UTC datetime from the ISO forms Salesforce accepts (``Z``, ``+hh:mm``, ``+hhmm``).

    A bare date means midnight UTC; a time without an offset is taken as UTC.
    """
    match = _DATETIME.match(text.strip())
    if not match:
        raise ValueTypeError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            micro, tzinfo=UTC,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueTypeError(f"not a datetime: {text!r}") from exc
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        value -= sign * offset
    return value


def format_datetime(value: datetime) -> str:
    """The canonical (and REST) form: ``2024-01-01T00:00:00.000+0000``, in UTC."""
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}."
        f"{v.microsecond // 1000:03d}+0000"
    )


def canonical_datetime(text: str) -> str:
    """``text`` in canonical form (fast when it already is)."""
    if _CANONICAL_DATETIME.match(text):
        return text
    return format_datetime(parse_datetime(text))


def bulk_datetime(canonical: str) -> str:
    """The Bulk API's CSV form of a stored datetime: ``2024-01-01T00:00:00.000Z``."""
    return canonical[:-5] + "Z"


def stamp(now: datetime) -> str:
    """A system timestamp (CreatedDate, SystemModstamp): whole seconds, as Salesforce keeps them."""
    return format_datetime(now.replace(microsecond=0))


def parse_date(text: str) -> str:
    """The canonical ``YYYY-MM-DD`` of a date (a datetime string keeps its date part)."""
    text = text.strip()
    match = _DATE.match(text)
    if match is None:
        return parse_datetime(text).date().isoformat()
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError as exc:
        raise ValueTypeError(f"not a date: {text!r}") from exc


def from_json(type_: str, value: Any) -> Any:
    """A JSON body's value as the canonical value of a field of ``type_`` (``None`` stays null)."""
    if value is None:
        return False if type_ == "boolean" else None
    if type_ in _TEXTUAL:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        raise ValueTypeError(f"Cannot deserialize instance of string from {_json_kind(value)}")
    if type_ == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"
        raise ValueTypeError(f"Cannot deserialize instance of boolean from {_json_kind(value)}")
    if type_ in NUMBER_TYPES:
        return _number(type_, value)
    if isinstance(value, str):
        return parse_date(value) if type_ == "date" else canonical_datetime(value)
    raise ValueTypeError(f"Cannot deserialize instance of {type_} from {_json_kind(value)}")


def from_csv(type_: str, text: str) -> Any:
    """A Bulk CSV cell as a canonical value (the caller handles empty cells and ``#N/A``)."""
    if type_ in _TEXTUAL:
        return text
    if type_ == "boolean":
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no"}:
            return False
        raise ValueTypeError(f"value not of required type: {text}")
    if type_ in NUMBER_TYPES:
        return _number(type_, text)
    return parse_date(text) if type_ == "date" else canonical_datetime(text)


def _number(type_: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise ValueTypeError(f"Cannot deserialize instance of {type_} from {_json_kind(value)}")
    if isinstance(value, str):
        if not _NUMBER.match(value.strip()):
            raise ValueTypeError(f"value not of required type: {value}")
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueTypeError(f"value not of required type: {value}")
    if type_ in INTEGER_TYPES:
        if float(value) != int(value):
            raise ValueTypeError(f"value not of required type: {value}")
        return int(value)
    return float(value)


def _json_kind(value: Any) -> str:
    kind = {bool: "VALUE_BOOLEAN", dict: "START_OBJECT", list: "START_ARRAY", str: "VALUE_STRING"}
    return kind.get(type(value), "VALUE_NUMBER")


def csv_text(type_: str, value: Any) -> str:
    """A stored value as a Bulk API query CSV cell (null is an empty cell)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if type_ == "datetime":
        return bulk_datetime(value)
    return str(value)
