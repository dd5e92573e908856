"""Reading Leads (and Opportunities) changed since a cursor, page by page, none skipped.

An incremental read selects records whose ``SystemModstamp`` is at or after the cursor minus the
lookback window, ``ORDER BY SystemModstamp, Id``, and follows ``nextRecordsUrl``:

* records committed late (a ``SystemModstamp`` before the cursor, written after it was read) fall
  inside the lookback and are read; the cursor remembers which records of that window it has
  already seen (id → ``SystemModstamp`` and a hash of the values read), so a record is handed
  on once, not once per poll, and an edit in the same second as the last read is not lost;
* records sharing one ``SystemModstamp`` (common: Salesforce keeps whole seconds) are never
  skipped, because nothing is excluded by timestamp alone;
* a query locator that died (it belongs to the session that opened it, so a re-login kills it;
  it also expires after 15 idle minutes) is not fatal: the query starts again after the last
  record read, ``(SystemModstamp, Id) > (last, last id)``.

Deleted Leads come from ``sobjects/Lead/deleted/`` (the delete log, 15 days), read after the
records with a window from the last ``latestDateCovered`` minus the lookback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.connector.errors import error_code
from crmbridge_salesforce.connector.records import Record, parse_time, plain
from crmbridge_salesforce.connector.session import SalesforceSession

SEEN_LIMIT = 2000
"""The most records of the lookback window a cursor remembers (beyond it: read again, harmless)."""
DELETE_LOG_DAYS = 14
"""How far back the delete log is read at most (Salesforce keeps 15 days)."""


@dataclass
class StreamPosition:
    """Where one object's incremental read stands: the newest ``SystemModstamp`` read, and the
    records read within the lookback window before it."""

    at: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Any) -> StreamPosition:
        if not isinstance(data, Mapping):
            return cls()
        seen = data.get("seen")
        return cls(
            parse_time(data.get("at")),
            {str(k): str(v) for k, v in seen.items()} if isinstance(seen, Mapping) else {},
        )

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat() if self.at else None, "seen": dict(self.seen)}

    def after_page(self, page: Sequence[Record], lookback: timedelta) -> StreamPosition:
        """The position once ``page`` (in ``SystemModstamp`` order) is read."""
        seen = dict(self.seen)
        at = self.at
        for record in page:
            seen[str(record["Id"])] = fingerprint(record)
            when = parse_time(record.get("SystemModstamp"))
            if when is not None and (at is None or when > at):
                at = when
        if at is not None:
            floor = at - lookback
            kept = sorted(
                ((rid, f) for rid, f in seen.items() if (_stamp_of(f) or at) >= floor),
                key=lambda item: item[1],
            )
            seen = dict(kept[-SEEN_LIMIT:])
        return StreamPosition(at, seen)

    def fresh(self, page: Sequence[Record]) -> list[Record]:
        """The records of ``page`` not read before as they are now."""
        return [r for r in page if self.seen.get(str(r["Id"])) != fingerprint(r)]


def fingerprint(record: Mapping[str, Any]) -> str:
    """``SystemModstamp#hash`` of a record as read.

    The timestamp alone is not enough: Salesforce keeps whole seconds, so a rep's edit in the
    same second as crmbridge's last read leaves it unchanged; the hash of the values read tells.
    """
    text = json.dumps(plain(record), sort_keys=True, default=str)
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    return f"{record.get('SystemModstamp')}#{digest}"


def _stamp_of(fingerprint_text: str) -> datetime | None:
    return parse_time(fingerprint_text.partition("#")[0])


class KeysetQuery:
    """One SOQL query's pages in ``SystemModstamp, Id`` order, restartable after any record.

    Each page is one retried call; a dead query locator restarts the query after the last record
    of the last page (the records already handed out are not read again).
    """

    def __init__(
        self,
        session: SalesforceSession,
        object_name: str,
        fields: Sequence[str],
        where: Sequence[str] = (),
        *,
        log: logging.Logger,
        include_deleted: bool = False,
    ) -> None:
        self.session = session
        self.object_name = object_name
        self.fields = list(fields)
        self.where = list(where)
        self.log = log
        self.include_deleted = include_deleted
        self.last: tuple[datetime, str] | None = None
        self.restarts = 0
        self._next_url: str | None = None
        self._done = False

    def soql(self) -> str:
        """The query from the start, or from after the last record read."""
        where = list(self.where)
        if self.last is not None:
            where.append(soql.after(*self.last))
        return soql.select(self.object_name, self.fields, where, order_by_modstamp=True)

    def _fetch(self, sf: Salesforce) -> Any:
        headers = self.session.query_headers()
        if self._next_url is not None:
            try:
                return sf.query_more(self._next_url, identifier_is_url=True, headers=headers)
            except SalesforceMalformedRequest as exc:
                if error_code(exc) != "INVALID_QUERY_LOCATOR":
                    raise
                self.restarts += 1
                self.log.info(
                    "salesforce: the query locator of %s died (session renewed or idle); "
                    "starting again after %s",
                    self.object_name,
                    self.last,
                )
                self._next_url = None
        return sf.query(self.soql(), include_deleted=self.include_deleted, headers=headers)

    def next_page(self) -> list[Record] | None:
        """The next page of records, or ``None`` after the last one."""
        if self._done:
            return None
        result = self.session.call(f"query {self.object_name}", self._fetch)
        records: list[Record] = list(result.get("records") or [])
        if result.get("done", True) or not result.get("nextRecordsUrl"):
            self._done = True
            self._next_url = None
        else:
            self._next_url = str(result["nextRecordsUrl"])
        if records:
            last = records[-1]
            when = parse_time(last.get("SystemModstamp"))
            if when is not None:
                self.last = (when, str(last["Id"]))
        return records

    def pages(self) -> Iterator[list[Record]]:
        """Every non-empty page, in order."""
        while (page := self.next_page()) is not None:
            if page:
                yield page


class IncrementalStream:
    """One object's records changed since a :class:`StreamPosition`, each read once."""

    def __init__(
        self,
        session: SalesforceSession,
        object_name: str,
        fields: Callable[[], Sequence[str]],
        lookback: timedelta,
        log: logging.Logger,
    ) -> None:
        self.session = session
        self.object_name = object_name
        self.fields = fields
        self.lookback = lookback
        self.log = log

    def pages(
        self, position: StreamPosition, where: Sequence[str] = ()
    ) -> Iterator[tuple[list[Record], StreamPosition]]:
        """Pages of records not read before, each with the position after it."""
        conditions = list(where)
        if position.at is not None:
            conditions.append(soql.modified_since(position.at - self.lookback))
        query = KeysetQuery(self.session, self.object_name, self.fields(), conditions, log=self.log)
        for page in query.pages():
            fresh = position.fresh(page)
            position = position.after_page(page, self.lookback)
            yield fresh, position


# -- deletes -------------------------------------------------------------------------------------


@dataclass
class DeletedPosition:
    """Where reading the delete log stands: Salesforce's ``latestDateCovered`` and the deletes
    already reported within the lookback before it."""

    covered: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, data: Any) -> DeletedPosition:
        if not isinstance(data, Mapping):
            return cls()
        seen = data.get("seen")
        return cls(
            parse_time(data.get("covered")),
            {str(k): str(v) for k, v in seen.items()} if isinstance(seen, Mapping) else {},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "covered": self.covered.isoformat() if self.covered else None,
            "seen": dict(self.seen),
        }


class DeletedReader:
    """Deleted records of one object from the delete log, each reported once."""

    def __init__(
        self,
        session: SalesforceSession,
        object_name: str,
        lookback: timedelta,
        log: logging.Logger,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session = session
        self.object_name = object_name
        self.lookback = lookback
        self.log = log
        self.clock = clock

    def read(
        self, position: DeletedPosition, horizon: datetime | None = None
    ) -> tuple[list[tuple[str, datetime]], DeletedPosition]:
        """The deletes since ``position`` not reported yet, and the position after them.

        :param horizon: the newest ``SystemModstamp`` this read has seen: the org's clock may be
            ahead of ours, and the window must reach it.
        """
        now = self.clock()
        floor = now - timedelta(days=DELETE_LOG_DAYS)
        start = floor if position.covered is None else max(position.covered - self.lookback, floor)
        # The end may lie ahead: Salesforce covers up to its own now and says so in
        # latestDateCovered, which is where the next read starts.
        end = max(now, horizon or now, start) + timedelta(days=1)
        if position.covered is not None and position.covered - self.lookback < floor:
            self.log.warning(
                "salesforce: %s deletes before %s are no longer in the delete log; they are "
                "not reported",
                self.object_name,
                floor.isoformat(),
            )
        answer = self.session.call(
            f"{self.object_name} deleted", lambda sf: self._deleted(sf, start, end, floor)
        )
        found: list[tuple[str, datetime]] = []
        seen = dict(position.seen)
        for entry in answer.get("deletedRecords") or []:
            record_id, stamp = str(entry["id"]), str(entry.get("deletedDate"))
            if seen.get(record_id) == stamp:
                continue
            seen[record_id] = stamp
            found.append((record_id, parse_time(stamp) or now))
        covered = parse_time(answer.get("latestDateCovered")) or position.covered
        if covered is not None:
            floor_seen = covered - self.lookback
            seen = {k: v for k, v in seen.items() if (parse_time(v) or covered) >= floor_seen}
        return found, DeletedPosition(covered, seen)

    def _deleted(self, sf: Salesforce, start: datetime, end: datetime, floor: datetime) -> Any:
        sobject = getattr(sf, self.object_name)
        try:
            return sobject.deleted(start, end)
        except SalesforceMalformedRequest as exc:
            # The org's clock runs behind ours, or the log was purged: read what it still has.
            if error_code(exc) != "INVALID_REPLICATION_DATE" or start > floor:
                raise
            return sobject.deleted(floor + timedelta(hours=1), end)
