"""The marketing side's reads: incremental pulls that never drop a record, and backfills.

**The first pull** (an empty cursor) lists every contact with the list endpoint (no cap), and
leaves the cursor at the time that read *started*: a contact changed while the list was read is
read again by the next pull. An interrupted first pull resumes from its list position.

**Later pulls** search contacts modified at or after the cursor minus ``lookback_seconds``, so a
record committed late (with a modification time before the cursor, as HubSpot's search index
and replicas can produce) is still read; a record read twice is harmless, one never read is not.
The search is read by time keyset (:func:`~crmbridge_hubspot.connector.pages.search_window`),
so the 10,000-result cap never applies and ties on one timestamp are never cut.

**Deletes and merges.** Archived contacts are listed (``archived=true``); those archived since the
cursor (minus the lookback) are reported. One batch read of their ids tells merges from deletes:
a merged-away id answers the contact that absorbed it, which lists it in
``hs_merged_object_ids``; those become ``MERGE`` changes with ``merged_into``, the rest
``DELETE``.

The cursor's position, as the core stores it:

* ``{"phase": "list", "started_ms": ..., "after": ...}`` while the first pull lists contacts;
* ``{"phase": "incremental", "since_ms": ..., "archived_since_ms": ...,
  "archived_scanned_ms": ...}`` afterwards: the latest modification time read, the latest
  archive time seen (or when the last scan of archived contacts started), and when that scan ran
  (for ``archived_scan_seconds``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

from crmbridge import Change, ChangeBatch, Cursor
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.native import to_ms
from crmbridge_hubspot.connector.pages import Keyset, list_pages, search_window
from crmbridge_hubspot.connector.records import (
    MERGED_IDS,
    ContactMapper,
    archived_at,
    contacts_of,
    merged_ids,
    modified_at,
    properties_to_read,
)
from crmbridge_hubspot.connector.settings import HubSpotSettings

log = logging.getLogger("crmbridge.connector.hubspot")
LIST = "list"
BATCH = 100
INCREMENTAL = "incremental"


class ChangeReader:
    """``pull_changes`` and ``pull_range`` of the HubSpot connector."""

    def __init__(
        self, client: HubSpotClient, mapper: ContactMapper, settings: HubSpotSettings
    ) -> None:
        self.client = client
        self.mapper = mapper
        self.settings = settings
        self.properties = properties_to_read(mapper.mapping)
        self.lookback_ms = int(settings.lookback_seconds * 1000)
        self._scanned_ms = 0

    # -- pull_changes --------------------------------------------------------------------------

    def pull_changes(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        """Contacts changed since ``cursor``, one batch per page, each with its cursor."""
        if cursor.empty or cursor.get("phase") == LIST:
            yield from self._first_pull(cursor)
            return
        since = int(cursor.get("since_ms", 0))
        archived_since = int(cursor.get("archived_since_ms", since))
        self._scanned_ms = int(cursor.get("archived_scanned_ms", 0))
        high = since
        start = Keyset(max(0, since - self.lookback_ms))
        for page, _next in search_window(self.client, self.properties, start):
            if not page:
                continue
            high = max(high, *(to_ms(modified_at(c)) for c in page))
            yield ChangeBatch(
                [self.mapper.upsert(c) for c in page],
                self._incremental(high, archived_since),
            )
        yield from self._archived(high, archived_since)

    def _first_pull(self, cursor: Cursor) -> Iterator[ChangeBatch]:
        started = cursor.get("started_ms")
        before = to_ms(self.client.now())
        after = cursor.get("after")
        for page, nxt in list_pages(self.client, self.properties, after=after):
            if started is None:
                # The first answer's Date header tells HubSpot's clock: the earlier one counts.
                started = min(before, to_ms(self.client.now()))
            # Deletes before the first pull concern no lead crmbridge knows: none to scan for.
            self._scanned_ms = int(started)
            changes = [self.mapper.upsert(c) for c in page]
            if nxt:
                position = Cursor({"phase": LIST, "started_ms": started, "after": nxt})
            else:
                position = self._incremental(started, started)
            yield ChangeBatch(changes, position)

    def _archived(self, since: int, archived_since: int) -> Iterator[ChangeBatch]:
        """Contacts archived (deleted or merged away) since ``archived_since`` - the lookback.

        The next scan starts from the latest of this scan's start, the latest ``archivedAt`` seen
        and the latest modification read (``since``): all three are times HubSpot had reached
        when this scan began, and the last two are HubSpot's own clock, so the scans follow it
        even when it runs ahead of this machine's.
        """
        started = to_ms(self.client.now())
        every = int(self.settings.archived_scan_seconds * 1000)
        if every and started - self._scanned_ms < every:
            return
        self._scanned_ms = started
        horizon = archived_since - self.lookback_ms
        latest = max(started, since)
        for page, nxt in list_pages(self.client, ["email"], archived=True):
            gone = [c for c in page if to_ms(archived_at(c)) >= horizon]
            latest = max([latest, *(to_ms(archived_at(c)) for c in gone)])
            merged_into = self._merged_into([c.id for c in gone]) if gone else {}
            changes = [self.mapper.gone(c, merged_into.get(c.id)) for c in gone]
            if nxt is None:
                yield ChangeBatch(changes, self._incremental(since, latest))
            elif changes:
                yield ChangeBatch(changes, self._incremental(since, archived_since))

    def _merged_into(self, ids: Sequence[str]) -> dict[str, str]:
        """Archived id → the contact it was merged into, for those that were merged (one call)."""
        body = BatchReadInputSimplePublicObjectId(
            inputs=[SimplePublicObjectId(id=i) for i in ids],
            properties=[MERGED_IDS],
            properties_with_history=[],
        )
        answer = self.client.call_json(
            f"POST objects/contacts/batch/read ({len(ids)} archived contacts)",
            self.client.batch_api.read_with_http_info,
            batch_read_input_simple_public_object_id=body,
            archived=False,
        )
        wanted = set(ids)
        found: dict[str, str] = {}
        for survivor in contacts_of(answer):
            for merged in merged_ids(survivor):
                if merged in wanted and merged != survivor.id:
                    found[merged] = survivor.id
        return found

    # -- fetch ---------------------------------------------------------------------------------

    def fetch(self, ids: Sequence[str]) -> list[Change]:
        """The contacts with these ids as they are now (batch reads of 100; the missing are
        left out)."""
        changes: list[Change] = []
        for start in range(0, len(ids), BATCH):
            chunk = list(ids[start : start + BATCH])
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk],
                properties=self.properties,
                properties_with_history=[],
            )
            answer = self.client.call_json(
                f"POST objects/contacts/batch/read ({len(chunk)} contacts)",
                self.client.batch_api.read_with_http_info,
                batch_read_input_simple_public_object_id=body,
                archived=False,
            )
            changes += [self.mapper.upsert(c) for c in contacts_of(answer)]
        return changes

    # -- pull_range ----------------------------------------------------------------------------

    def pull_range(
        self, since: datetime | None, until: datetime | None, cursor: Cursor
    ) -> Iterator[ChangeBatch]:
        """Every live contact modified in ``[since, until)``, resumable from ``cursor``.

        Without ``since`` the list endpoint is paged (the cheapest way through every contact);
        with it, the time window is searched by keyset. Either way one page is held at a time.
        """
        if cursor.get("done"):
            return
        until_ms = to_ms(until) if until is not None else None
        if since is None:
            yield from self._range_by_list(until_ms, cursor)
            return
        start = Keyset.from_json(cursor.get("keyset")) or Keyset(to_ms(since))
        for page, position in search_window(self.client, self.properties, start, until_ms):
            yield ChangeBatch(
                [self.mapper.upsert(c) for c in page], Cursor({"keyset": position.to_json()})
            )
        yield ChangeBatch([], Cursor({"done": True}))

    def _range_by_list(self, until_ms: int | None, cursor: Cursor) -> Iterator[ChangeBatch]:
        for page, nxt in list_pages(self.client, self.properties, after=cursor.get("after")):
            kept = [c for c in page if until_ms is None or to_ms(modified_at(c)) < until_ms]
            position: dict[str, Any] = {"after": nxt, "done": nxt is None}
            yield ChangeBatch([self.mapper.upsert(c) for c in kept], Cursor(position))

    def _incremental(self, since: int, archived_since: int) -> Cursor:
        return Cursor(
            {
                "phase": INCREMENTAL,
                "since_ms": since,
                "archived_since_ms": archived_since,
                "archived_scanned_ms": self._scanned_ms,
            }
        )
