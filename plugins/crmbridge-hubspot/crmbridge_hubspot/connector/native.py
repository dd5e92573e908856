"""How HubSpot spells values: every property value is a string; times are ISO-8601 in UTC with
milliseconds (``2024-01-01T00:00:00.000Z``) or epoch milliseconds in search filters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of a datetime (naive ones are taken as UTC)."""
    delta = aware(moment) - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_ms(value: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=value)


def parse_time(value: Any) -> datetime | None:
    """A HubSpot timestamp (ISO-8601, epoch milliseconds, or a datetime) as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return aware(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return from_ms(int(text))
    try:
        return aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def iso(moment: datetime) -> str:
    """A datetime as HubSpot writes one: ``2024-01-01T00:00:00.000Z``."""
    return aware(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_native(value: Any) -> str:
    """A shared value as a HubSpot property value; ``None`` is ``""``, which clears it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def properties_of(values: Mapping[str, Any]) -> dict[str, str]:
    """Every value of a write spelled as HubSpot takes it."""
    return {name: to_native(value) for name, value in values.items()}
