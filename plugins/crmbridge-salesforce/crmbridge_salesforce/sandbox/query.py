"""Running SOQL against the org: binding names, choosing an index, paging with query locators.

A connector's cursor query (``WHERE SystemModstamp > X ORDER BY SystemModstamp, Id LIMIT 2000``)
walks the SystemModstamp index from X and stops after 2000 matches; ``Id``, ``Email`` and
external-id conditions are answered from their indexes; anything else is a scan with the compiled
predicate. Results longer than a batch are kept as a query locator that belongs to the session that
opened it, expires after 15 idle minutes, and is one of at most 10 per user, as in Salesforce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox.emulator import Emulator
from crmbridge_salesforce.sandbox.describe import FieldDef, ObjectDef
from crmbridge_salesforce.sandbox.errors import ApiError
from crmbridge_salesforce.sandbox.ids import canonical_id
from crmbridge_salesforce.sandbox.indexes import Record
from crmbridge_salesforce.sandbox.rest import RestCall
from crmbridge_salesforce.sandbox.soql import (
    Comparison,
    FieldRef,
    InList,
    OrderItem,
    Predicate,
    Query,
    ResolvedField,
    SoqlError,
    check_sortable,
    compile_condition,
    conjuncts,
    parse,
    sort_records,
    unknown_field,
    unknown_object,
    unknown_relationship,
)
from crmbridge_salesforce.sandbox.state import Org

MAX_OFFSET = 2000
MIN_BATCH, MAX_BATCH = 200, 2000
CURSORS_PER_USER = 10
CURSOR_IDLE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Step:
    """One relationship hop of a field path: the output key and the id field to follow."""

    relationship: str
    id_field: str


@dataclass(frozen=True)
class SelectPath:
    """A selected field: the hops to its record and its canonical name there."""

    steps: tuple[Step, ...]
    field: FieldDef

    @property
    def text(self) -> str:
        """The canonical dotted path (``Owner.Email``)."""
        return ".".join([*(s.relationship for s in self.steps), self.field.name])


class SchemaResolver:
    """Binds field paths of one object to the org's schema and records."""

    def __init__(self, org: Org, obj: ObjectDef) -> None:
        self.org = org
        self.obj = obj

    def bind(self, ref: FieldRef) -> tuple[SelectPath, Callable[[Record], Any]]:
        """The path's hops and final field, and a getter reading it from a record."""
        targets = [self.obj]
        steps: list[Step] = []
        for name in ref.path[:-1]:
            link = next((f for t in targets if (f := t.relationship(name)) is not None), None)
            if link is None or link.relationship_name is None:
                raise unknown_relationship(name, ref.pos)
            steps.append(Step(link.relationship_name, link.name))
            targets = [self.org.schema.objects[n] for n in link.reference_to]
        last = ref.path[-1]
        found = next((f for t in targets if (f := t.field(last)) is not None), None)
        if found is None:
            raise unknown_field(last, targets[0].name, ref.pos)
        return SelectPath(tuple(steps), found), self._getter(tuple(steps), found.name)

    def _getter(self, steps: tuple[Step, ...], name: str) -> Callable[[Record], Any]:
        if not steps:
            return lambda r: r.get(name)
        lookup = self.org.lookup

        def get(record: Record) -> Any:
            current: Record | None = record
            for step in steps:
                found = lookup(current.get(step.id_field)) if current is not None else None
                current = found[1] if found is not None else None
            return current.get(name) if current is not None else None

        return get

    def resolve(self, ref: FieldRef) -> ResolvedField:
        """The path bound for SOQL compilation (see :class:`Resolver`)."""
        path, getter = self.bind(ref)
        return ResolvedField(path.field, getter, tuple(path.text.split(".")))


@dataclass
class PreparedQuery:
    """A parsed query bound to the schema, ready to run (again)."""

    query: Query
    obj: ObjectDef
    select: list[SelectPath]
    predicate: Predicate | None
    order: list[tuple[OrderItem, ResolvedField]]


@dataclass
class PlanInfo:
    """How the last query ran: which access path, how many records it looked at."""

    access: str
    examined: int
    returned: int


def prepare(org: Org, soql: str) -> PreparedQuery:
    """Parse and bind ``soql``; raises :class:`SoqlError`."""
    query = parse(soql)
    obj = org.schema.object(query.object_name)
    if obj is None:
        raise unknown_object(query.object_name, query.object_pos)
    resolver = SchemaResolver(org, obj)
    select: list[SelectPath] = []
    seen: set[str] = set()
    for ref in query.fields:
        path, _ = resolver.bind(ref)
        if path.text.lower() in seen:
            raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {ref.text}", ref.pos)
        seen.add(path.text.lower())
        select.append(path)
    predicate = compile_condition(query.where, resolver) if query.where is not None else None
    order = []
    for item in query.order_by:
        resolved = resolver.resolve(item.field)
        check_sortable(resolved, item.field)
        order.append((item, resolved))
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SoqlError(
            "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
        )
    return PreparedQuery(query, obj, select, predicate, order)


def execute(
    org: Org, prepared: PreparedQuery, *, include_deleted: bool
) -> tuple[list[Record], PlanInfo]:
    """The matching records in order, after OFFSET and LIMIT, and how they were found."""
    candidates, access, ordered = _access_path(org, prepared)
    query = prepared.query
    offset = query.offset or 0
    need = offset + query.limit if (ordered and query.limit is not None) else None
    predicate = prepared.predicate
    results: list[Record] = []
    examined = 0
    for record in candidates:
        examined += 1
        if not include_deleted and record.get("IsDeleted"):
            continue
        if predicate is not None and not predicate(record):
            continue
        results.append(record)
        if need is not None and len(results) >= need:
            break
    if prepared.order and not ordered:
        sort_records(results, prepared.order)
    end = None if query.limit is None else offset + query.limit
    results = results[offset:end]
    return results, PlanInfo(access, examined, len(results))


def _access_path(org: Org, prepared: PreparedQuery) -> tuple[Iterable[Record], str, bool]:
    """Candidate records, the access path's name, and whether they come in ORDER BY order."""
    obj = prepared.obj
    store = org.stores[obj.name]
    where = conjuncts(prepared.query.where)
    for cond in where:
        keys = _equality_keys(cond)
        if keys is None:
            continue
        ref, values = keys
        f = obj.field(ref.path[0])
        if f is None:
            continue
        if f.name == "Id":
            ids = dict.fromkeys(c for v in values if (c := canonical_id(v)) is not None)
            return [r for i in ids if (r := store.records.get(i)) is not None], "index:Id", False
        index = store.key_indexes.get(f.name)
        if index is not None:
            ids = dict.fromkeys(i for v in values for i in sorted(index.get(v)))
            return [store.records[i] for i in ids], f"index:{f.name}", False
    bounds = _time_bounds(obj, store.time_indexes.keys(), where)
    order = prepared.order
    if order:
        first, resolved = order[0]
        name = resolved.field.name
        tie_ok = len(order) == 1 or (
            len(order) == 2
            and order[1][1].field.name == "Id"
            and order[1][0].descending == first.descending
        )
        if len(first.field.path) == 1 and name in store.time_indexes and tie_ok:
            scan = store.time_indexes[name].scan(
                store.records, descending=first.descending, **bounds.get(name, {})
            )
            return scan, f"index:{name}", True
    if bounds:
        name, limits = next(iter(bounds.items()))
        return store.time_indexes[name].scan(store.records, **limits), f"index:{name}", False
    return store.records.values(), "scan", False


def _equality_keys(cond: Any) -> tuple[FieldRef, list[str]] | None:
    if (
        isinstance(cond, Comparison)
        and cond.op == "="
        and cond.value.kind == "string"
        and len(cond.field.path) == 1
    ):
        return cond.field, [cond.value.value]
    if (
        isinstance(cond, InList)
        and not cond.negated
        and len(cond.field.path) == 1
        and all(v.kind == "string" for v in cond.values)
    ):
        return cond.field, [v.value for v in cond.values]
    return None


def _time_bounds(
    obj: ObjectDef, indexed: Iterable[str], where: list[Any]
) -> dict[str, dict[str, Any]]:
    """Per time-indexed field, the tightest range the AND-ed comparisons allow."""
    indexed = set(indexed)
    bounds: dict[str, dict[str, Any]] = {}
    for cond in where:
        if not (
            isinstance(cond, Comparison)
            and cond.value.kind == "datetime"
            and len(cond.field.path) == 1
        ):
            continue
        f = obj.field(cond.field.path[0])
        if f is None or f.name not in indexed or cond.op == "!=":
            continue
        b = bounds.setdefault(f.name, {})
        value = cond.value.value
        if cond.op in {">", ">=", "="}:
            inclusive = cond.op != ">"
            if "low" not in b or value > b["low"] or (value == b["low"] and not inclusive):
                b["low"], b["low_inclusive"] = value, inclusive
        if cond.op in {"<", "<=", "="}:
            inclusive = cond.op != "<"
            if "high" not in b or value < b["high"] or (value == b["high"] and not inclusive):
                b["high"], b["high_inclusive"] = value, inclusive
    return bounds


def render(
    org: Org, version: str, obj_name: str, record: Record, select: list[SelectPath]
) -> Record:
    """A query result record: ``attributes`` then the selected fields, parents nested."""
    out: Record = {
        "attributes": {
            "type": obj_name,
            "url": f"/services/data/v{version}/sobjects/{obj_name}/{record['Id']}",
        }
    }
    for path in select:
        _place(org, version, out, record, path.steps, path.field.name)
    return out


def _place(
    org: Org, version: str, out: Record, record: Record, steps: tuple[Step, ...], name: str
) -> None:
    if not steps:
        out[name] = record.get(name)
        return
    step = steps[0]
    if step.relationship in out and out[step.relationship] is None:
        return
    found = org.lookup(record.get(step.id_field))
    if found is None:
        out[step.relationship] = None
        return
    parent_type, parent = found
    nested = out.get(step.relationship)
    if nested is None:
        nested = {
            "attributes": {
                "type": parent_type,
                "url": f"/services/data/v{version}/sobjects/{parent_type}/{parent['Id']}",
            }
        }
        out[step.relationship] = nested
    _place(org, version, nested, parent, steps[1:], name)


@dataclass
class Cursor:
    """The rest of a query's results, kept for ``query/{locator}-{offset}``."""

    locator: str
    token: str
    user_id: str
    prepared: PreparedQuery
    ids: list[str]
    batch: int
    last_used: float


class QueryApi:
    """``GET query/``, ``GET queryAll/`` and ``GET query/{locator}-{offset}``."""

    def __init__(self, org: Org, default_batch: int) -> None:
        self.org = org
        self.default_batch = default_batch
        self.cursors: dict[str, Cursor] = {}
        self.last_plan: PlanInfo | None = None

    def _batch(self, call: RestCall, default: int) -> int:
        options = call.request.headers.get("Sforce-Query-Options", "")
        for part in options.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "batchsize" and value.strip().isdigit():
                return max(MIN_BATCH, min(MAX_BATCH, int(value)))
        return default

    async def query(self, call: RestCall, *, include_deleted: bool) -> web.Response:
        """``GET query/?q=`` and ``GET queryAll/?q=``: the first page."""
        soql = call.request.query.get("q")
        if not soql:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            prepared = prepare(self.org, soql)
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message(soql)) from exc
        records, plan = execute(self.org, prepared, include_deleted=include_deleted)
        self.last_plan = plan
        if prepared.query.count:
            return web.json_response({"totalSize": len(records), "done": True, "records": []})
        batch = self._batch(call, self.default_batch)
        return self._page(call, prepared, [r["Id"] for r in records], 0, batch, None)

    async def more(self, call: RestCall, locator: str, *, include_deleted: bool) -> web.Response:
        """The next page of an open cursor; ``locator`` is ``<cursor id>-<offset>``."""
        del include_deleted  # the cursor remembers whether its query included deleted records
        locator, _, offset_text = locator.rpartition("-")
        cursor = self.cursors.get(locator)
        now = self.org.now_datetime().timestamp()
        if cursor is not None and now - cursor.last_used > CURSOR_IDLE_SECONDS:
            del self.cursors[locator]
            cursor = None
        if (
            cursor is None
            or cursor.token != call.session.token
            or not offset_text.isdigit()
            or int(offset_text) > len(cursor.ids)
        ):
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_used = now
        batch = self._batch(call, cursor.batch)
        return self._page(call, cursor.prepared, cursor.ids, int(offset_text), batch, cursor)

    def _page(
        self,
        call: RestCall,
        prepared: PreparedQuery,
        ids: list[str],
        offset: int,
        batch: int,
        cursor: Cursor | None,
    ) -> web.Response:
        store = self.org.stores[prepared.obj.name].records
        chunk = ids[offset : offset + batch]
        page = [
            render(self.org, call.version, prepared.obj.name, r, prepared.select)
            for i in chunk
            if (r := store.get(i)) is not None
        ]
        body: dict[str, Any] = {"totalSize": len(ids), "done": offset + batch >= len(ids)}
        if not body["done"]:
            if cursor is None:
                cursor = self._open(call, prepared, ids, batch)
            # Salesforce answers queryAll's next page under query/ too (both paths serve it).
            body["nextRecordsUrl"] = f"{call.base}/query/{cursor.locator}-{offset + batch}"
        elif cursor is not None:
            self.cursors.pop(cursor.locator, None)
        body["records"] = page
        Emulator.count_records(call.request, records_out=len(page))
        return web.json_response(body)

    def _open(self, call: RestCall, prepared: PreparedQuery, ids: list[str], batch: int) -> Cursor:
        mine = sorted(
            (c for c in self.cursors.values() if c.user_id == call.user_id),
            key=lambda c: c.last_used,
        )
        # A user may hold 10 open cursors; opening another releases the oldest.
        for old in mine[: max(0, len(mine) - CURSORS_PER_USER + 1)]:
            del self.cursors[old.locator]
        cursor = Cursor(
            locator=self.org.ids.next("01g"),
            token=call.session.token,
            user_id=call.user_id,
            prepared=prepared,
            ids=ids,
            batch=batch,
            last_used=self.org.now_datetime().timestamp(),
        )
        self.cursors[cursor.locator] = cursor
        return cursor
