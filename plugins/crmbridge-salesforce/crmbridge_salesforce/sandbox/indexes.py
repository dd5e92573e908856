"""Indexes that keep queries off a full scan when the org holds a million leads.

:class:`TimeIndex` keeps ``(timestamp, id)`` pairs sorted, which is the order a connector's cursor
query asks for (``ORDER BY SystemModstamp, Id``). Moving a record to a new timestamp appends an
entry and leaves the old one behind; a scan skips entries that no longer match their record and
the index compacts itself once they pile up. That makes a write O(1) amortised (new timestamps are
the newest) instead of O(n) list deletions.

:class:`KeyIndex` maps a normalised value (a lower-cased email or external id) to record ids.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Record = dict[str, Any]

_HIGH_ID = "\uffff"


class TimeIndex:
    """Sorted ``(timestamp, id)`` entries for one datetime field, with lazy deletion."""

    def __init__(self, field_name: str) -> None:
        self.field = field_name
        self._entries: list[tuple[str, str]] = []
        self._sorted = True
        self._stale = 0

    def add(self, stamp: str, record_id: str) -> None:
        """Index ``record_id`` at ``stamp`` (its previous entry, if any, goes stale)."""
        entries = self._entries
        if entries and (stamp, record_id) < entries[-1]:
            self._sorted = False
        entries.append((stamp, record_id))

    def moved(self) -> None:
        """Count one entry as stale (its record got a new timestamp or went away)."""
        self._stale += 1

    def scan(
        self,
        records: Mapping[str, Record],
        *,
        low: str | None = None,
        low_inclusive: bool = True,
        high: str | None = None,
        high_inclusive: bool = True,
        descending: bool = False,
    ) -> Iterator[Record]:
        """The live records with a timestamp within the bounds, by ``(timestamp, id)``."""
        self._prepare(records)
        entries = self._entries
        start = 0
        stop = len(entries)
        if low is not None:
            key = (low, "") if low_inclusive else (low, _HIGH_ID)
            start = bisect.bisect_left(entries, key)
        if high is not None:
            key = (high, _HIGH_ID) if high_inclusive else (high, "")
            stop = bisect.bisect_left(entries, key)
        positions = range(stop - 1, start - 1, -1) if descending else range(start, stop)
        field = self.field
        previous: tuple[str, str] | None = None
        for i in positions:
            entry = entries[i]
            if entry == previous:
                continue
            previous = entry
            record = records.get(entry[1])
            if record is not None and record.get(field) == entry[0]:
                yield record

    def _prepare(self, records: Mapping[str, Record]) -> None:
        if self._stale > 1000 and self._stale * 2 > len(self._entries):
            field = self.field
            live = {
                (stamp, rid)
                for stamp, rid in self._entries
                if (r := records.get(rid)) is not None and r.get(field) == stamp
            }
            self._entries = sorted(live)
            self._stale = 0
            self._sorted = True
        elif not self._sorted:
            self._entries.sort()
            self._sorted = True

    def rebuild(self, records: Mapping[str, Record]) -> None:
        """Index every record from scratch (after a restore)."""
        field = self.field
        self._entries = sorted((r[field], rid) for rid, r in records.items() if field in r)
        self._sorted = True
        self._stale = 0


class KeyIndex:
    """Record ids by a normalised key: lower-cased and trimmed, as Salesforce matches them."""

    def __init__(self, field_name: str, normalise: Callable[[Any], str] | None = None) -> None:
        self.field = field_name
        self.normalise = normalise or normalise_key
        self._ids: dict[str, set[str]] = {}

    def add(self, value: Any, record_id: str) -> None:
        """Index ``record_id`` under ``value`` (nulls are not indexed)."""
        if value is None:
            return
        self._ids.setdefault(self.normalise(value), set()).add(record_id)

    def discard(self, value: Any, record_id: str) -> None:
        """Remove ``record_id`` from ``value``'s entry."""
        if value is None:
            return
        key = self.normalise(value)
        ids = self._ids.get(key)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del self._ids[key]

    def get(self, value: Any) -> set[str]:
        """The ids whose key equals ``value``'s (a copy-free view: do not mutate it)."""
        if value is None:
            return set()
        return self._ids.get(self.normalise(value), set())

    def rebuild(self, records: Mapping[str, Record]) -> None:
        """Index every record from scratch (after a restore)."""
        self._ids = {}
        field = self.field
        for rid, record in records.items():
            self.add(record.get(field), rid)


def normalise_key(value: Any) -> str:
    """Trimmed and case-folded: how Salesforce compares emails and case-insensitive external ids."""
    return str(value).strip().casefold()
