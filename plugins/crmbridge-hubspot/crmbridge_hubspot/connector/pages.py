"""Reading contacts page by page without losing one: the list endpoint, keyset search windows,
and the list of archived contacts.

**The list** (``GET /crm/v3/objects/contacts``, ``after`` paging in id order) has no cap and is
the cheapest way through every contact (100 per page under the ten-second limit).

**Search** stops at 10,000 results per query (paging past it is HTTP 400), so
:func:`search_window` never pages with ``after``: each query asks for the first page of contacts
modified at or after a time, sorted by ``lastmodifieddate``, and the next query starts at the
last time of that page. The contacts of that last time already read are left out of the next
query by id (``hs_object_id NOT_IN``, in a filter group OR-ed with the later times), so a tie is
never cut in half and no contact is read twice: a window of N contacts costs ceil(N/200)
searches. A tie of more than :data:`NOT_IN_MOST` contacts is read by its own keyset query on
``hs_object_id``. Whatever a query's ``total``, no query pages past its first page, so the cap
never applies and a window of any size is read exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hubspot.crm.contacts import PublicObjectSearchRequest

from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.native import to_ms
from crmbridge_hubspot.connector.records import Contact, contacts_of, modified_at, next_after

MODIFIED = "lastmodifieddate"
OBJECT_ID = "hs_object_id"
NOT_IN_MOST = 100
"""The most ids one ``NOT_IN`` filter carries (those read at a window's last time)."""


def list_pages(
    client: HubSpotClient,
    properties: Sequence[str],
    *,
    after: str | None = None,
    archived: bool = False,
) -> Iterator[tuple[list[Contact], str | None]]:
    """Pages of the contact list from ``after``; each with the ``after`` of the next (or None)."""
    kind = "archived contacts" if archived else "contacts"
    while True:
        answer = client.call_json(
            f"GET objects/contacts ({kind}, after {after or 'start'})",
            client.basic_api.get_page_with_http_info,
            limit=client.settings.page_size,
            after=after,
            properties=list(properties),
            archived=archived,
        )
        nxt = next_after(answer)
        yield contacts_of(answer), nxt
        if not nxt:
            return
        after = nxt


@dataclass(frozen=True)
class Keyset:
    """Where a search window stands: the next contacts have ``lastmodifieddate >= at_ms``, less
    those of ``at_ms`` already read (``read``, their ids); within a large tie at ``at_ms``,
    ``tie_after`` is the last id read."""

    at_ms: int
    tie_after: str | None = None
    read: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The keyset as a cursor's JSON."""
        return {"at_ms": self.at_ms, "tie_after": self.tie_after, "read": list(self.read)}

    @classmethod
    def from_json(cls, data: Any) -> Keyset | None:
        """A keyset from a cursor's JSON, or None when there is none."""
        if not isinstance(data, dict) or "at_ms" not in data:
            return None
        tie = data.get("tie_after")
        read = tuple(str(i) for i in data.get("read") or ())
        return cls(int(data["at_ms"]), None if tie is None else str(tie), read)


def search_window(
    client: HubSpotClient,
    properties: Sequence[str],
    start: Keyset,
    until_ms: int | None = None,
    *,
    extra_filters: Sequence[dict[str, Any]] = (),
) -> Iterator[tuple[list[Contact], Keyset]]:
    """Every contact with ``start.at_ms <= lastmodifieddate < until_ms``, page by page, each once.

    Each page comes with the keyset to resume after it. ``extra_filters`` are AND-ed to the time
    range (e.g. only contacts crmbridge handed off).
    """
    position = start
    limit = client.settings.search_page_size
    while True:
        if position.tie_after is not None:
            page, more = _tie_page(client, properties, position, limit, extra_filters)
            if more:
                position = replace(position, tie_after=str(page[-1].id))
            else:
                position = Keyset(position.at_ms + 1)
            yield page, position
            continue
        page, more = _search(
            client,
            properties,
            _window_groups(position, until_ms, extra_filters),
            MODIFIED,
            limit,
            f"since {position.at_ms}" + (f" less {len(position.read)}" if position.read else ""),
        )
        if not more:
            last = max((to_ms(modified_at(c)) for c in page), default=position.at_ms - 1)
            yield page, Keyset(max(position.at_ms, last + 1))
            return
        last = max(to_ms(modified_at(c)) for c in page)
        at_last = tuple(str(c.id) for c in page if to_ms(modified_at(c)) == last)
        read = (position.read if last == position.at_ms else ()) + at_last
        if len(read) <= NOT_IN_MOST:
            position = Keyset(last, read=read)
            yield page, position
            continue
        done = [c for c in page if to_ms(modified_at(c)) < last]
        if done:
            # Too many share the page's last time to leave out by id: read them again next.
            position = Keyset(last)
            yield done, position
        else:
            # A tie too large to leave out by id: read it by id (less those of it already read,
            # at most NOT_IN_MOST), then go on after it.
            position = Keyset(last, "0", position.read if last == position.at_ms else ())


def _window_groups(
    position: Keyset, until_ms: int | None, extra_filters: Sequence[dict[str, Any]]
) -> list[list[dict[str, Any]]]:
    """The filter groups of a window's next query: the times from ``position.at_ms`` on, less
    the contacts of that time already read (a group of their own, OR-ed with the later times)."""
    before = [_filter(MODIFIED, "LT", until_ms)] if until_ms is not None else []
    if not position.read:
        return [[_filter(MODIFIED, "GTE", position.at_ms), *before, *extra_filters]]
    return [
        [
            _filter(MODIFIED, "EQ", position.at_ms),
            _not_in(OBJECT_ID, position.read),
            *extra_filters,
        ],
        [_filter(MODIFIED, "GT", position.at_ms), *before, *extra_filters],
    ]


def _tie_page(
    client: HubSpotClient,
    properties: Sequence[str],
    position: Keyset,
    limit: int,
    extra_filters: Sequence[dict[str, Any]],
) -> tuple[list[Contact], bool]:
    filters = [
        _filter(MODIFIED, "EQ", position.at_ms),
        _filter(OBJECT_ID, "GT", position.tie_after or "0"),
        *([_not_in(OBJECT_ID, position.read)] if position.read else []),
        *extra_filters,
    ]
    return _search(client, properties, [filters], OBJECT_ID, limit, f"tie at {position.at_ms}")


def _search(
    client: HubSpotClient,
    properties: Sequence[str],
    groups: list[list[dict[str, Any]]],
    sort: str,
    limit: int,
    describe: str,
) -> tuple[list[Contact], bool]:
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": filters} for filters in groups],
        sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
        properties=list(properties),
        limit=limit,
    )
    answer = client.call_json(
        f"POST objects/contacts/search ({describe})",
        client.search_api.do_search_with_http_info,
        search=True,
        public_object_search_request=request,
    )
    results = contacts_of(answer)
    return results, next_after(answer) is not None and bool(results)


def _filter(prop: str, operator: str, value: Any) -> dict[str, Any]:
    return {"propertyName": prop, "operator": operator, "value": str(value)}


def _not_in(prop: str, values: Sequence[str]) -> dict[str, Any]:
    return {"propertyName": prop, "operator": "NOT_IN", "values": list(values)}
