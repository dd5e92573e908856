"""``POST /crm/v3/objects/contacts/search``: filters, sorts, paging, and HubSpot's limits.

Filter groups are OR-ed, the filters of a group AND-ed; values are compared by the property's
type (datetimes as epoch milliseconds or ISO strings, numbers as numbers, strings without case).
HubSpot's limits are enforced: 5 groups, 10 filters per group and 25 in all, one sort, 200
results a page, and no paging past 10,000 results (HTTP 400). Search reads the lagging index of
:mod:`~crmbridge_hubspot.sandbox.state`.

A query is planned so that a million contacts stay cheap: ranges on ``lastmodifieddate``,
``createdate`` and ``hs_object_id`` are read from sorted indexes, and an email equality from the
email lookup; only the contacts a range yields are tested against the other filters. The sorted
ids of a query are cached until the index changes, so paging costs a slice.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import islice, pairwise
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox import Emulator
from crmbridge_hubspot.sandbox.catalog import parse_ms
from crmbridge_hubspot.sandbox.errors import json_response, validation_error
from crmbridge_hubspot.sandbox.index import SortedIndex
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.state import Contact, ContactStore, email_key
from crmbridge_hubspot.sandbox.wire import cursor, read_object, string_list

SEARCH = "/crm/v3/objects/contacts/search"
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
LIMIT_MAX = 200
LIMIT_DEFAULT = 10
CACHE_SIZE = 16
VALUE_OPS = frozenset({"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN"})
TOKEN_OPS = frozenset({"CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"})
PRESENCE_OPS = frozenset({"HAS_PROPERTY", "NOT_HAS_PROPERTY"})
RANGE_OPS = frozenset({"EQ", "LT", "LTE", "GT", "GTE", "BETWEEN"})
INDEXED = ("lastmodifieddate", "createdate", "hs_object_id")
QUERY_PROPERTIES = (
    "firstname", "lastname", "email", "phone", "company", "website", "hs_additional_emails",
)  # fmt: skip
_WORD = re.compile(r"\w+")
_NO_STREAM = 1 << 62

KeyRange = tuple[int | None, int | None]


def _typed(ptype: str, raw: Any) -> Any:
    """A value in the form filters compare it: ms for dates, floats, lower-case strings."""
    if ptype in {"datetime", "date"}:
        return parse_ms(raw)
    if ptype == "number":
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(number) else number
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw).lower()


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _contains_token(text: str, pattern: str) -> bool:
    """HubSpot's token match: a word of the value, or a ``*`` wildcard over a word or the value."""
    value, pat = text.lower(), pattern.lower().strip()
    words = _tokens(value)
    if "*" in pat:
        return fnmatchcase(value, pat) or any(fnmatchcase(w, pat) for w in words)
    wanted = _tokens(pat)
    if not wanted:
        return False
    n = len(wanted)
    return value == pat or any(words[i : i + n] == wanted for i in range(len(words) - n + 1))


@dataclass
class Condition:
    """One compiled filter."""

    prop: str
    op: str
    ptype: str
    value: Any = None
    high: Any = None
    values: frozenset[Any] = frozenset()
    pattern: str = ""

    def read(self, contact: Contact, view: Mapping[str, str]) -> Any:
        """The contact's value of the property, typed; None when it has none."""
        if self.prop == "hs_object_id":
            return float(contact.id)
        if self.prop == "lastmodifieddate" and contact.ix is not None:
            return contact.ix[0]
        if self.prop == "createdate" and contact.ix is not None:
            return contact.ix[1]
        text = view.get(self.prop)
        return _typed(self.ptype, text) if text else None

    def accepts(self, contact: Contact, view: Mapping[str, str]) -> bool:
        """Whether the contact's indexed values pass this filter."""
        op = self.op
        if op in PRESENCE_OPS:
            return bool(view.get(self.prop)) == (op == "HAS_PROPERTY")
        if op in TOKEN_OPS:
            text = view.get(self.prop)
            return bool(text and _contains_token(text, self.pattern)) == (op == "CONTAINS_TOKEN")
        found = self.read(contact, view)
        if found is None:
            return op in {"NEQ", "NOT_IN"}
        match op:
            case "EQ":
                return bool(found == self.value)
            case "NEQ":
                return bool(found != self.value)
            case "LT":
                return bool(found < self.value)
            case "LTE":
                return bool(found <= self.value)
            case "GT":
                return bool(found > self.value)
            case "GTE":
                return bool(found >= self.value)
            case "BETWEEN":
                return bool(self.value <= found <= self.high)
            case "IN":
                return found in self.values
        return found not in self.values

    def key_range(self) -> KeyRange | None:
        """The half-open range of integer index keys this filter allows, for indexed properties."""
        if self.prop not in INDEXED or self.op not in RANGE_OPS:
            return None
        low, high = float(self.value), float(self.high if self.op == "BETWEEN" else self.value)
        match self.op:
            case "EQ":
                return (int(low), int(low) + 1) if low.is_integer() else (0, 0)
            case "GT":
                return math.floor(low) + 1, None
            case "GTE":
                return math.ceil(low), None
            case "LT":
                return None, math.ceil(low)
            case "LTE":
                return None, math.floor(low) + 1
        return math.ceil(low), math.floor(high) + 1


@dataclass
class Group:
    """The filters of one filter group, and how to find its candidates cheaply."""

    conditions: list[Condition]
    ranges: dict[str, KeyRange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for cond in self.conditions:
            bounds = cond.key_range()
            if bounds is not None:
                self.ranges[cond.prop] = _intersect(self.ranges.get(cond.prop), bounds)

    def accepts(self, contact: Contact, view: Mapping[str, str]) -> bool:
        """Whether the contact passes every filter of the group."""
        return all(c.accepts(contact, view) for c in self.conditions)

    def email_eq(self) -> str | None:
        """The email an EQ filter of the group asks for (answered from the email lookup)."""
        for cond in self.conditions:
            if cond.prop == "email" and cond.op == "EQ":
                return str(cond.value)
        return None


def _intersect(a: KeyRange | None, b: KeyRange) -> KeyRange:
    if a is None:
        return b
    lo = b[0] if a[0] is None else a[0] if b[0] is None else max(a[0], b[0])
    hi = b[1] if a[1] is None else a[1] if b[1] is None else min(a[1], b[1])
    return lo, hi


@dataclass
class Query:
    """A compiled search: groups (OR), a free-text query, one sort."""

    groups: list[Group]
    text_tokens: list[str]
    sort_prop: str
    sort_type: str
    descending: bool

    def accepts(self, contact: Contact, view: Mapping[str, str]) -> bool:
        """Whether the contact matches the free text and at least one group."""
        if self.text_tokens and not self.text_match(view):
            return False
        return any(g.accepts(contact, view) for g in self.groups)

    def text_match(self, view: Mapping[str, str]) -> bool:
        """Whether every word of the free-text query starts a word of a searchable property."""
        words = [w for p in QUERY_PROPERTIES for w in _tokens(view.get(p) or "")]
        return all(any(w.startswith(t) for w in words) for t in self.text_tokens)


class Planner:
    """Runs a :class:`Query` against the store's indexes; ``stats`` says how much it examined."""

    def __init__(self, store: ContactStore) -> None:
        self.store = store
        self.stats: dict[str, Any] = {}

    def _index(self, prop: str) -> SortedIndex:
        return {
            "lastmodifieddate": self.store.ix_modified,
            "createdate": self.store.ix_created,
            "hs_object_id": self.store.ix_id,
        }[prop]

    def run(self, query: Query, cap: int) -> tuple[int, list[int]]:
        """The number of matches, and the ids of the first ``cap`` in sort order."""
        stream_cost, stream_range = self._stream_plan(query)
        gather_cost = sum(self._group_plan(g)[0] for g in query.groups)
        if query.sort_prop in INDEXED and stream_cost <= gather_cost * 2:
            return self._stream(query, stream_range, cap)
        return self._gather(query, cap)

    def _stream_plan(self, query: Query) -> tuple[int, KeyRange]:
        if query.sort_prop not in INDEXED:
            return _NO_STREAM, (None, None)
        hull: KeyRange | None = None
        for group in query.groups:
            bounds = group.ranges.get(query.sort_prop)
            if bounds is None:
                hull = (None, None)
                break
            hull = bounds if hull is None else _hull(hull, bounds)
        hull = hull or (None, None)
        return self._index(query.sort_prop).count(*hull), hull

    def _group_plan(self, group: Group) -> tuple[int, str, KeyRange]:
        email = group.email_eq()
        if email is not None:
            return 1 + len(self.store.pending_ids()), "email", (None, None)
        best: tuple[int, str, KeyRange] = (len(self.store.ix_id), "hs_object_id", (None, None))
        for prop, bounds in group.ranges.items():
            cost = self._index(prop).count(*bounds)
            if cost < best[0]:
                best = (cost, prop, bounds)
        return best

    def _stream(self, query: Query, bounds: KeyRange, cap: int) -> tuple[int, list[int]]:
        index = self._index(query.sort_prop)
        ids = index.range(*bounds, reverse=query.descending)
        single = query.groups[0] if len(query.groups) == 1 else None
        pure = (
            single is not None
            and not query.text_tokens
            and all(c.prop == query.sort_prop and c.key_range() for c in single.conditions)
        )
        if pure:
            # Every filter is the index range itself: count it and take the first ids.
            total = index.count(*bounds)
            self.stats = {"plan": f"index:{query.sort_prop}", "examined": min(total, cap)}
            return total, list(islice(ids, cap))
        contacts = self.store.contacts
        if not query.text_tokens and _disjoint(query.groups, query.sort_prop):
            # Groups over separate ranges of the sort key (a keyset query's "the rest of this
            # time, then every later time"): each group's matches are counted on its own range,
            # so the scan stops at the page instead of testing the whole hull for the total.
            total = sum(self._group_total(g, query.sort_prop) for g in query.groups)
            found = []
            examined = 0
            for cid in ids:
                examined += 1
                contact = contacts[cid]
                view = contact.indexed
                if view is not None and query.accepts(contact, view):
                    found.append(cid)
                    if len(found) >= cap:
                        break
            self.stats = {"plan": f"ranges:{query.sort_prop}", "examined": examined}
            return total, found
        total, examined = 0, 0
        found = []
        for cid in ids:
            examined += 1
            contact = contacts[cid]
            view = contact.indexed
            if view is not None and query.accepts(contact, view):
                total += 1
                if len(found) < cap:
                    found.append(cid)
        self.stats = {"plan": f"scan:{query.sort_prop}", "examined": examined}
        return total, found

    def _group_total(self, group: Group, prop: str) -> int:
        """How many contacts match ``group``: counted from the index when the group is that
        index's range alone, else by testing the contacts of its range."""
        index = self._index(prop)
        bounds = group.ranges[prop]
        if all(c.prop == prop and c.key_range() for c in group.conditions):
            return index.count(*bounds)
        contacts = self.store.contacts
        total = 0
        for cid in index.range(*bounds):
            contact = contacts[cid]
            view = contact.indexed
            if view is not None and group.accepts(contact, view):
                total += 1
        return total

    def _candidates(self, group: Group) -> Iterable[int]:
        _cost, prop, bounds = self._group_plan(group)
        if prop == "email":
            hit = self.store.by_email.get(email_key(group.email_eq() or ""))
            return ({hit} if hit is not None else set()) | self.store.pending_ids()
        return self._index(prop).range(*bounds)

    def _gather(self, query: Query, cap: int) -> tuple[int, list[int]]:
        contacts = self.store.contacts
        matched: set[int] = set()
        examined = 0
        for group in query.groups:
            for cid in self._candidates(group):
                examined += 1
                contact = contacts.get(cid)
                view = contact.indexed if contact is not None else None
                if contact is None or view is None or cid in matched:
                    continue
                if group.accepts(contact, view) and (
                    not query.text_tokens or query.text_match(view)
                ):
                    matched.add(cid)
        ordered = sorted(matched, key=lambda cid: self._sort_key(query, contacts[cid]))
        if query.descending:
            ordered.reverse()
        self.stats = {"plan": "gather", "examined": examined}
        return len(ordered), ordered[:cap]

    @staticmethod
    def _sort_key(query: Query, contact: Contact) -> tuple[Any, ...]:
        if query.sort_prop == "hs_object_id":
            return (contact.id,)
        if query.sort_prop in {"lastmodifieddate", "createdate"} and contact.ix is not None:
            return (contact.ix[0 if query.sort_prop == "lastmodifieddate" else 1], contact.id)
        raw = (contact.indexed or {}).get(query.sort_prop)
        value = _typed(query.sort_type, raw) if raw else None
        # Empty values sort last in both directions, as HubSpot lists them.
        missing = value is None
        if query.descending:
            missing = not missing
        return (missing, value if value is not None else 0, contact.id)


def _disjoint(groups: list[Group], prop: str) -> bool:
    """Whether two or more groups each bound ``prop`` to ranges that do not overlap."""
    if len(groups) < 2 or any(prop not in g.ranges for g in groups):
        return False
    ranges = sorted(
        (g.ranges[prop] for g in groups), key=lambda r: -math.inf if r[0] is None else r[0]
    )
    for (_lo, hi), (next_lo, _hi) in pairwise(ranges):
        if hi is None or next_lo is None or hi > next_lo:
            return False
    return True


def _hull(a: KeyRange, b: KeyRange) -> KeyRange:
    lo = None if a[0] is None or b[0] is None else min(a[0], b[0])
    hi = None if a[1] is None or b[1] is None else max(a[1], b[1])
    return lo, hi


class SearchApi:
    """The search endpoint of one portal."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.planner = Planner(portal.store)
        self._cache: OrderedDict[tuple[str, int], tuple[int, list[int]]] = OrderedDict()

    @property
    def stats(self) -> dict[str, Any]:
        """How the last search was answered: its plan, how many contacts it examined, cached."""
        return self.planner.stats

    def add_routes(self, app: web.Application) -> None:
        """Add the search route."""
        app.router.add_post(SEARCH, self.search)

    async def search(self, request: web.Request) -> web.Response:
        """``POST``: a page of matches with ``total``; 400 past the cap or a limit."""
        body = await read_object(request)
        limit = self._limit(body.get("limit"))
        after = cursor(body.get("after"))
        cap = self.portal.options.search_cap
        if after >= cap:
            raise validation_error(
                f"Search results are limited to {cap} records per query; after={after} pages "
                f"past the limit. Narrow the query (for example by a lastmodifieddate or "
                "hs_object_id range) to page through more."
            )
        query = self._compile(body)
        properties = string_list(body.get("properties"), "properties") or None
        self.portal.store.catch_up()
        total, ids = self._run(body, query, cap)
        page = ids[after : after + limit]
        contacts = self.portal.store.contacts
        results = [
            self.portal.public(contacts[cid], properties, view=contacts[cid].indexed)
            for cid in page
        ]
        response: dict[str, Any] = {"total": total, "results": results}
        if after + len(page) < total:
            response["paging"] = {"next": {"after": str(after + len(page))}}
        Emulator.count_records(request, records_out=len(results))
        return json_response(response)

    def _run(self, body: Mapping[str, Any], query: Query, cap: int) -> tuple[int, list[int]]:
        key = json.dumps(
            [body.get("filterGroups"), body.get("sorts"), body.get("query")],
            sort_keys=True,
            default=str,
        )
        cache_key = (key, self.portal.store.index_version)
        hit = self._cache.get(cache_key)
        if hit is not None:
            self._cache.move_to_end(cache_key)
            self.planner.stats = {**self.planner.stats, "plan": "cached", "examined": 0}
            return hit
        result = self.planner.run(query, cap)
        self._cache[cache_key] = result
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    @staticmethod
    def _limit(value: Any) -> int:
        if value is None:
            return LIMIT_DEFAULT
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise validation_error(f"limit must be an integer between 0 and {LIMIT_MAX}")
        if value > LIMIT_MAX:
            raise validation_error(
                f"The limit {value} is too large; a search returns at most {LIMIT_MAX} per page"
            )
        return value

    # -- compiling the request -----------------------------------------------------------------

    def _compile(self, body: Mapping[str, Any]) -> Query:
        raw_groups = body.get("filterGroups") or []
        if not isinstance(raw_groups, list) or not all(isinstance(g, dict) for g in raw_groups):
            raise validation_error("filterGroups must be a list of objects")
        if len(raw_groups) > MAX_GROUPS:
            raise validation_error(
                f"Too many filter groups ({len(raw_groups)}); the limit is {MAX_GROUPS}"
            )
        groups: list[Group] = []
        total = 0
        for raw in raw_groups:
            filters = raw.get("filters") or []
            if not isinstance(filters, list) or not all(isinstance(f, dict) for f in filters):
                raise validation_error("filters must be a list of objects")
            if len(filters) > MAX_FILTERS_PER_GROUP:
                raise validation_error(
                    f"Too many filters in a filter group ({len(filters)}); the limit is "
                    f"{MAX_FILTERS_PER_GROUP}"
                )
            total += len(filters)
            groups.append(Group([self._condition(f) for f in filters]))
        if total > MAX_FILTERS:
            raise validation_error(f"Too many filters ({total}); the limit is {MAX_FILTERS}")
        text = body.get("query")
        sort_prop, descending = self._sort(body.get("sorts"))
        return Query(
            groups=groups or [Group([])],
            text_tokens=_tokens(str(text)) if text else [],
            sort_prop=sort_prop,
            sort_type=self.portal.catalog.type_of(sort_prop) or "string",
            descending=descending,
        )

    def _sort(self, sorts: Any) -> tuple[str, bool]:
        if not sorts:
            return "hs_object_id", False
        if not isinstance(sorts, list):
            raise validation_error("sorts must be a list")
        if len(sorts) > 1:
            raise validation_error("Only one sort is allowed per search")
        sort = sorts[0]
        if isinstance(sort, str):
            name, descending = sort.lstrip("-"), sort.startswith("-")
        elif isinstance(sort, dict):
            name = str(sort.get("propertyName", ""))
            direction = str(sort.get("direction", "ASCENDING")).upper()
            if direction not in {"ASCENDING", "DESCENDING"}:
                raise validation_error(f"Invalid sort direction {direction!r}")
            descending = direction == "DESCENDING"
        else:
            raise validation_error("a sort must be an object or a property name")
        self._property(name)
        return name, descending

    def _property(self, name: str) -> str:
        prop = self.portal.catalog.get(name)
        if prop is None:
            raise validation_error(f"Unable to find property {name!r} for object type CONTACT")
        return "number" if name == "hs_object_id" else prop.type

    def _condition(self, raw: Mapping[str, Any]) -> Condition:
        prop = str(raw.get("propertyName", ""))
        op = str(raw.get("operator", "")).upper()
        if op not in VALUE_OPS | TOKEN_OPS | PRESENCE_OPS:
            raise validation_error(f"Invalid filter operator {raw.get('operator')!r} on {prop!r}")
        ptype = self._property(prop)
        if op in PRESENCE_OPS:
            return Condition(prop, op, ptype)
        if op in TOKEN_OPS:
            if raw.get("value") in (None, ""):
                raise validation_error(f"Operator {op} on {prop!r} needs a value")
            return Condition(prop, op, ptype, pattern=str(raw["value"]))
        if op in {"IN", "NOT_IN"}:
            values = raw.get("values")
            if not isinstance(values, list) or not values:
                raise validation_error(f"Operator {op} on {prop!r} needs a non-empty values list")
            typed = frozenset(self._value(prop, ptype, v) for v in values)
            return Condition(prop, op, ptype, values=typed)
        value = self._value(prop, ptype, raw.get("value"))
        high = self._value(prop, ptype, raw.get("highValue")) if op == "BETWEEN" else None
        return Condition(prop, op, ptype, value=value, high=high)

    @staticmethod
    def _value(prop: str, ptype: str, raw: Any) -> Any:
        if raw is None:
            raise validation_error(f"The filter on {prop!r} needs a value")
        typed = _typed(ptype, raw)
        if typed is None:
            raise validation_error(f"{raw!r} is not a valid {ptype} value for {prop!r}")
        return typed
