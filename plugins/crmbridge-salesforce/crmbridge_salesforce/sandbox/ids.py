"""Salesforce record ids: key prefixes, the case-safe 18-character form, a deterministic factory.

A Salesforce id is 15 case-sensitive characters (a 3-character key prefix naming the object, then
the pod and a base-62 counter) plus a 3-character suffix that encodes which of the 15 are upper
case, so the 18-character form survives case-insensitive tools (spreadsheets, SOQL in Excel).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

KEY_PREFIXES: Mapping[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Group": "00G",
    "Lead": "00Q",
    "Organization": "00D",
    "QueryLocator": "01g",
    "BulkJob": "750",
}
OBJECT_OF_PREFIX: Mapping[str, str] = {prefix: name for name, prefix in KEY_PREFIXES.items()}

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_UPPER_BITS = str.maketrans(
    {**dict.fromkeys(string.printable, "0"), **dict.fromkeys(string.ascii_uppercase, "1")}
)
_ID_SHAPE = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-5]{3})?$")
# The two characters after the key prefix name the pod; "Dn" is ours, the rest is the counter.
_POD = "Dn0"
_COUNTER_WIDTH = 9


def case_safe_suffix(id15: str) -> str:
    """The 3-character suffix Salesforce appends to a 15-character id.

    Each of the three 5-character chunks gives 5 bits, one per upper-case letter (least
    significant bit first), which index ``A..Z0..5``.
    """
    return _chunk_char(id15[0:5]) + _chunk_char(id15[5:10]) + _chunk_char(id15[10:15])


def _chunk_char(chunk: str) -> str:
    # Upper-case letters become "1", anything else "0"; reversed, that is the chunk's bit field.
    return _SUFFIX_ALPHABET[int(chunk.translate(_UPPER_BITS)[::-1], 2)]


def canonical_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or ``None`` when it is not an id.

    An 18-character id whose suffix does not match its first 15 characters is malformed, as
    Salesforce answers; the suffix itself is compared case-insensitively.
    """
    if not _ID_SHAPE.match(value):
        return None
    id15 = value[:15]
    suffix = case_safe_suffix(id15)
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return id15 + suffix


def object_of_id(record_id: str) -> str | None:
    """The object an id's key prefix names (``"Lead"`` for ``00Q...``), if we know it."""
    return OBJECT_OF_PREFIX.get(record_id[:3])


def _base62(n: int, width: int) -> str:
    digits = []
    while n:
        n, rem = divmod(n, 62)
        digits.append(_BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


class IdFactory:
    """Issues ids per key prefix from counters that are saved with the org's state."""

    def __init__(self, counters: Mapping[str, int] | None = None) -> None:
        self.counters: dict[str, int] = dict(counters or {})

    def next(self, prefix: str) -> str:
        """A new 18-character id with ``prefix``."""
        n = self.counters.get(prefix, 0) + 1
        self.counters[prefix] = n
        return make_id(prefix, n)

    def next_for(self, object_name: str) -> str:
        """A new id for a record of ``object_name``."""
        return self.next(KEY_PREFIXES[object_name])


def make_id(prefix: str, n: int) -> str:
    """The 18-character id numbered ``n`` under ``prefix`` (the factory's id scheme)."""
    id15 = prefix + _POD + _base62(n, _COUNTER_WIDTH)
    return id15 + case_safe_suffix(id15)
