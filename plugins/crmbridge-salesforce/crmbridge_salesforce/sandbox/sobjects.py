"""The sObject REST resources: describe, create, read, update, delete, upsert by external id,
and the ``updated/`` and ``deleted/`` replication windows.

Paths are dispatched from their raw (still percent-encoded) segments, because an external id may
contain ``/`` (``%2F``) and ``+`` (simple-salesforce's ``get_by_custom_id`` encodes spaces so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, unquote_plus

from aiohttp import web

from crmbridge_salesforce.sandbox.describe import FieldDef, ObjectDef
from crmbridge_salesforce.sandbox.errors import (
    RESOURCE_MISSING,
    ApiError,
    RecordError,
    not_found,
)
from crmbridge_salesforce.sandbox.ids import canonical_id, object_of_id
from crmbridge_salesforce.sandbox.indexes import Record
from crmbridge_salesforce.sandbox.rest import RestCall
from crmbridge_salesforce.sandbox.state import AmbiguousMatch, Org, SaveOptions
from crmbridge_salesforce.sandbox.values import (
    ValueTypeError,
    format_datetime,
    from_csv,
    parse_datetime,
)

RESERVED = {"describe", "updated", "deleted"}
UPDATED_DAYS = 30
DELETED_DAYS = 15
MAX_REPLICATION_IDS = 600_000
UPSERT_STATUS_SINCE = 46.0
_HANDLER = Callable[..., Awaitable[web.StreamResponse]]


def record_body(org: Org, version: str, obj: ObjectDef, record: Record,
                fields: list[FieldDef] | None = None) -> Record:  # fmt: skip
    """A record as ``GET sobjects/{Object}/{id}`` returns it: every field, nulls included."""
    out: Record = {
        "attributes": {
            "type": obj.name,
            "url": f"/services/data/v{version}/sobjects/{obj.name}/{record['Id']}",
        }
    }
    for f in fields if fields is not None else obj.fields.values():
        out[f.name] = record.get(f.name)
    return out


def save_options(call: RestCall) -> SaveOptions:
    """The save options a request's headers ask for (``Sforce-Duplicate-Rule-Header``)."""
    header = call.request.headers.get("Sforce-Duplicate-Rule-Header", "").replace(" ", "").lower()
    return SaveOptions(allow_duplicates="allowsave=true" in header)


class SObjectsApi:
    """Everything under ``/services/data/vXX.X/sobjects``."""

    def __init__(self, org: Org) -> None:
        self.org = org

    async def dispatch(self, call: RestCall) -> web.StreamResponse:
        """Route a request under ``sobjects`` by its path segments and method."""
        raw = call.request.rel_url.raw_path
        tail = raw.split("/sobjects", 1)[1].strip("/")
        segments = [unquote(s) for s in tail.split("/")] if tail else []
        method = call.request.method
        if not segments:
            return await self._allow(method, {"GET": self.describe_global}, call)
        obj = self.org.schema.object(segments[0])
        if obj is None:
            raise not_found()
        rest = segments[1:]
        raw_rest = tail.split("/")[1:]
        if not rest:
            return await self._allow(method, {"GET": self.metadata, "POST": self.create}, call, obj)
        if len(rest) == 1 and rest[0].lower() in RESERVED:
            handler = {"describe": self.describe, "updated": self.updated,
                       "deleted": self.deleted}[rest[0].lower()]  # fmt: skip
            return await self._allow(method, {"GET": handler}, call, obj)
        if len(rest) == 1:
            handlers: dict[str, _HANDLER] = {
                "GET": self.get, "PATCH": self.update, "DELETE": self.delete
            }  # fmt: skip
            return await self._allow(method, handlers, call, obj, rest[0])
        if len(rest) == 2:
            value = unquote_plus(raw_rest[1])
            handlers = {"GET": self.get_by_external, "PATCH": self.upsert,
                        "DELETE": self.delete_by_external}  # fmt: skip
            return await self._allow(method, handlers, call, obj, rest[0], value)
        raise not_found()

    @staticmethod
    async def _allow(
        method: str, handlers: Mapping[str, _HANDLER], call: RestCall, *args: Any
    ) -> web.StreamResponse:
        handler = handlers.get(method)
        if handler is None:
            allowed = ",".join(sorted(handlers))
            raise ApiError(
                405, "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
            )  # fmt: skip
        return await handler(call, *args)

    # -- describe --------------------------------------------------------------------------------

    async def describe_global(self, call: RestCall) -> web.Response:
        """``GET sobjects/``."""
        return web.json_response(self.org.schema.describe_global(call.version))

    async def metadata(self, call: RestCall, obj: ObjectDef) -> web.Response:
        """``GET sobjects/{Object}/``: the object's summary and recent items."""
        store = self.org.stores[obj.name].records
        recent = [
            {"attributes": {"type": obj.name, "url": call.record_url(obj.name, rid)}, "Id": rid,
             "Name": r.get("Name")}
            for rid, r in list(store.items())[-5:] if not r.get("IsDeleted")
        ]  # fmt: skip
        return web.json_response(
            {"objectDescribe": obj.summary(call.version), "recentItems": recent[::-1]}
        )

    async def describe(self, call: RestCall, obj: ObjectDef) -> web.Response:
        """``GET sobjects/{Object}/describe``."""
        return web.json_response(obj.describe(call.version))

    # -- records by id ---------------------------------------------------------------------------

    def _record(self, obj: ObjectDef, record_id: str, *, writing: bool) -> Record:
        canonical = canonical_id(record_id)
        if canonical is None or object_of_id(canonical) != obj.name:
            raise not_found(f"Provided external ID field does not exist or is not accessible: "
                            f"{record_id}")  # fmt: skip
        record = self.org.stores[obj.name].records.get(canonical)
        if record is None:
            raise not_found()
        if record.get("IsDeleted"):
            if writing:
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted", fields=[])
            raise not_found()
        return record

    async def get(self, call: RestCall, obj: ObjectDef, record_id: str) -> web.Response:
        """``GET sobjects/{Object}/{id}[?fields=]``."""
        record = self._record(obj, record_id, writing=False)
        fields = None
        wanted = call.request.query.get("fields")
        if wanted:
            fields = []
            for name in wanted.split(","):
                f = obj.field(name.strip())
                if f is None:
                    raise ApiError(
                        400, "INVALID_FIELD",
                        f"No such column '{name.strip()}' on sobject of type {obj.name}",
                    )  # fmt: skip
                fields.append(f)
            if obj.fields["Id"] not in fields:
                fields.insert(0, obj.fields["Id"])
        return web.json_response(record_body(self.org, call.version, obj, record, fields))

    async def create(self, call: RestCall, obj: ObjectDef) -> web.Response:
        """``POST sobjects/{Object}/``: 201 with the new id."""
        body = await call.json_object()
        try:
            values = self.org.prepare(obj, body)
            record = self.org.insert(
                obj.name, values, user_id=call.user_id, options=save_options(call)
            )
        except RecordError as exc:
            raise ApiError.of_record(exc) from exc
        return web.json_response({"id": record["Id"], "success": True, "errors": []}, status=201)

    async def update(self, call: RestCall, obj: ObjectDef, record_id: str) -> web.Response:
        """``PATCH sobjects/{Object}/{id}``: 204."""
        record = self._record(obj, record_id, writing=True)
        body = await call.json_object()
        try:
            values = self.org.prepare(obj, body)
            self.org.update(
                obj.name, record["Id"], values, user_id=call.user_id, options=save_options(call)
            )
        except RecordError as exc:
            raise ApiError.of_record(exc) from exc
        return web.Response(status=204)

    async def delete(self, call: RestCall, obj: ObjectDef, record_id: str) -> web.Response:
        """``DELETE sobjects/{Object}/{id}``: 204, to the recycle bin."""
        record = self._record(obj, record_id, writing=True)
        try:
            self.org.delete(obj.name, record["Id"], user_id=call.user_id)
        except RecordError as exc:
            raise ApiError.of_record(exc) from exc
        return web.Response(status=204)

    # -- records by external id ------------------------------------------------------------------

    def _external_field(self, obj: ObjectDef, name: str) -> FieldDef:
        f = obj.field(name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise not_found(
                f"Provided external ID field does not exist or is not accessible: {name}"
            )
        return f

    def _key(self, f: FieldDef, value: str) -> Any:
        try:
            return from_csv(f.type, value)
        except ValueTypeError as exc:
            raise ApiError(400, "MALFORMED_ID", f"{f.label}: invalid value: {value}") from exc

    def _matches(self, call: RestCall, obj: ObjectDef, name: str, value: str) -> list[Record]:
        f = self._external_field(obj, name)
        return self.org.match(obj, f, self._key(f, value))

    @staticmethod
    def _multiple(call: RestCall, obj: ObjectDef, matches: list[Record]) -> web.Response:
        urls = [call.record_url(obj.name, r["Id"]) for r in matches]
        return web.json_response(urls, status=300)

    async def get_by_external(
        self, call: RestCall, obj: ObjectDef, name: str, value: str
    ) -> web.Response:
        """``GET sobjects/{Object}/{Field}/{value}`` (300 when ambiguous)."""
        matches = self._matches(call, obj, name, value)
        if len(matches) > 1:
            return self._multiple(call, obj, matches)
        if not matches:
            raise not_found()
        return web.json_response(record_body(self.org, call.version, obj, matches[0]))

    async def delete_by_external(
        self, call: RestCall, obj: ObjectDef, name: str, value: str
    ) -> web.Response:
        """``DELETE sobjects/{Object}/{Field}/{value}``."""
        matches = self._matches(call, obj, name, value)
        if len(matches) > 1:
            return self._multiple(call, obj, matches)
        if not matches:
            raise not_found()
        try:
            self.org.delete(obj.name, matches[0]["Id"], user_id=call.user_id)
        except RecordError as exc:
            raise ApiError.of_record(exc) from exc
        return web.Response(status=204)

    async def upsert(self, call: RestCall, obj: ObjectDef, name: str, value: str) -> web.Response:
        """``PATCH sobjects/{Object}/{Field}/{value}``: 201 created, 200 updated, 300 ambiguous."""
        f = self._external_field(obj, name)
        key = self._key(f, value)
        body = await call.json_object()
        try:
            values = self.org.prepare(obj, body)
            record, created = self.org.upsert(
                obj.name, f, key, values, user_id=call.user_id,
                update_only=call.flag("updateOnly"), options=save_options(call),
            )  # fmt: skip
        except AmbiguousMatch as exc:
            urls = [call.record_url(obj.name, rid) for rid in exc.ids]
            return web.json_response(urls, status=300)
        except RecordError as exc:
            if exc.code == "NOT_FOUND":
                raise not_found(RESOURCE_MISSING) from exc
            raise ApiError.of_record(exc) from exc
        result = {"id": record["Id"], "success": True, "errors": [], "created": created}
        if created:
            return web.json_response(result, status=201)
        if float(call.version) < UPSERT_STATUS_SINCE:
            return web.Response(status=204)
        return web.json_response(result, status=200)

    # -- replication -----------------------------------------------------------------------------

    def _window(self, call: RestCall, days: int) -> tuple[str, str, str]:
        """``start``, ``end`` (rounded down to the minute) and ``latestDateCovered``."""
        params = call.request.query
        if "start" not in params or "end" not in params:
            raise ApiError(400, "MISSING_ARGUMENT", "Both start and end must be specified")
        try:
            start, end = (
                _minute(parse_datetime(params[k].replace(" ", "+"))) for k in ("start", "end")
            )
        except ValueTypeError as exc:
            raise ApiError(
                400, "INVALID_REPLICATION_DATE", f"invalid start or end date: {exc}"
            ) from exc
        now = self.org.now_datetime()
        if start >= end:
            raise ApiError(
                400, "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate by more than one minute",
            )  # fmt: skip
        if start < now - timedelta(days=days):
            raise ApiError(
                400, "INVALID_REPLICATION_DATE", f"startDate cannot be more than {days} days ago"
            )
        covered = min(end, _minute(now))
        return format_datetime(start), format_datetime(end), format_datetime(covered)

    async def updated(self, call: RestCall, obj: ObjectDef) -> web.Response:
        """``GET sobjects/{Object}/updated/?start&end``."""
        start, end, covered = self._window(call, UPDATED_DAYS)
        store = self.org.stores[obj.name]
        index = store.time_indexes["SystemModstamp"]
        ids = [
            r["Id"]
            for r in index.scan(store.records, low=start, high=end, high_inclusive=False)
            if not r.get("IsDeleted")
        ]
        if len(ids) > MAX_REPLICATION_IDS:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", "too many ids to return; use a smaller window")
        return web.json_response({"ids": ids, "latestDateCovered": covered})

    async def deleted(self, call: RestCall, obj: ObjectDef) -> web.Response:
        """``GET sobjects/{Object}/deleted/?start&end``."""
        start, end, covered = self._window(call, DELETED_DAYS)
        log = self.org.stores[obj.name].deleted
        rows = [{"id": rid, "deletedDate": when} for when, rid in log if start <= when < end]
        earliest = log[0][0] if log else covered
        return web.json_response(
            {"deletedRecords": rows, "earliestDateAvailable": earliest,
             "latestDateCovered": covered}
        )  # fmt: skip


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)
