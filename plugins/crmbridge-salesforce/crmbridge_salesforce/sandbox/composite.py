"""sObject Collections (``composite/sobjects``): up to 200 records per call, one result per record.

A well-formed request answers 200 with a result per record, in request order; a failed record
carries its own errors and does not stop the others, unless ``allOrNone`` is set, in which case
every write of the request is rolled back and the records that were fine report
``ALL_OR_NONE_OPERATION_ROLLED_BACK``. A malformed request (too many records, an unknown field, a
value of the wrong JSON type) is refused as a whole with 400.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox.emulator import Emulator
from crmbridge.testing.sandbox.faults import Fault, FaultKind
from crmbridge_salesforce.sandbox.describe import FieldDef, ObjectDef
from crmbridge_salesforce.sandbox.errors import ApiError, RecordError
from crmbridge_salesforce.sandbox.ids import canonical_id, object_of_id
from crmbridge_salesforce.sandbox.indexes import normalise_key
from crmbridge_salesforce.sandbox.rest import RestCall
from crmbridge_salesforce.sandbox.sobjects import save_options
from crmbridge_salesforce.sandbox.state import AmbiguousMatch, Org

MAX_RECORDS = 200
MAX_RETRIEVE = 2000
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
)
Operation = Callable[[], dict[str, Any]]


def _too_many(limit: int) -> ApiError:
    return ApiError(
        400, "EXCEEDED_ID_LIMIT",
        f"record limit reached. cannot submit more than {limit} records into this call",
    )  # fmt: skip


class CompositeApi:
    """``composite/sobjects`` in all its methods."""

    def __init__(self, org: Org) -> None:
        self.org = org

    # -- request parsing -------------------------------------------------------------------------

    async def _records(self, call: RestCall) -> tuple[list[dict[str, Any]], bool]:
        body = await call.json_object()
        records = body.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ApiError(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
        if len(records) > MAX_RECORDS:
            raise _too_many(MAX_RECORDS)
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise ApiError(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
        Emulator.count_records(call.request, records_in=len(records))
        return records, all_or_none

    def _typed(self, record: dict[str, Any], expected: ObjectDef | None = None) -> ObjectDef:
        attributes = record.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not name:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        obj = self.org.schema.object(str(name))
        if obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        if expected is not None and obj is not expected:
            raise ApiError(
                400, "INVALID_TYPE", f"all records must be of type {expected.name}, got {name}"
            )
        return obj

    def _prepare(self, obj: ObjectDef, record: dict[str, Any]) -> dict[str, Any]:
        """A record's values; a field the object lacks or a mistyped value fails the request."""
        try:
            return self.org.prepare(obj, record)
        except RecordError as exc:
            raise ApiError.of_record(exc) from exc

    # -- running ---------------------------------------------------------------------------------

    def _run(
        self,
        request: web.Request,
        operations: list[tuple[str | None, Operation]],
        all_or_none: bool,
    ) -> web.Response:
        """Run each operation in order; per-record results, rolled back as a whole if asked."""
        fault: Fault | None = Emulator.fault_of(request)
        locked = (
            fault.failed_indexes(len(operations))
            if fault is not None and fault.kind is FaultKind.PARTIAL
            else set()
        )
        results: list[dict[str, Any]] = []
        with self.org.transaction() as tx:
            for i, (record_id, operation) in enumerate(operations):
                try:
                    if i in locked:
                        raise _lock_error(fault, record_id)
                    results.append(operation())
                except RecordError as exc:
                    failed: dict[str, Any] = {"success": False, "errors": [exc.result()]}
                    if record_id is not None:
                        failed = {"id": record_id, **failed}
                    results.append(failed)
            if all_or_none and any(not r["success"] for r in results):
                tx.rollback()
                for i, (record_id, _) in enumerate(operations):
                    if results[i]["success"]:
                        # A rolled-back create has no id any more; updates keep theirs.
                        rolled: dict[str, Any] = {"id": record_id} if record_id else {}
                        results[i] = {**rolled, "success": False, "errors": [ROLLED_BACK.result()]}
        return web.json_response(results)

    # -- create, update, upsert ------------------------------------------------------------------

    async def create(self, call: RestCall) -> web.Response:
        """``POST composite/sobjects``: create records of any types."""
        records, all_or_none = await self._records(call)
        options = save_options(call)
        operations: list[tuple[str | None, Operation]] = []
        for record in records:
            obj = self._typed(record)
            values = self._prepare(obj, record)

            def create(obj: ObjectDef = obj, values: dict[str, Any] = values) -> dict[str, Any]:
                saved = self.org.insert(obj.name, values, user_id=call.user_id, options=options)
                return {"id": saved["Id"], "success": True, "errors": []}

            operations.append((None, create))
        return self._run(call.request, operations, all_or_none)

    async def update(self, call: RestCall, object_name: str | None = None) -> web.Response:
        """``PATCH composite/sobjects``: update records by their ``Id``."""
        expected = self._object(object_name) if object_name else None
        records, all_or_none = await self._records(call)
        options = save_options(call)
        operations: list[tuple[str | None, Operation]] = []
        for record in records:
            obj = self._typed(record, expected)
            values = self._prepare(obj, record)
            record_id = values.pop("Id", None)

            def update(
                obj: ObjectDef = obj, values: dict[str, Any] = values, rid: str | None = record_id
            ) -> dict[str, Any]:
                if not rid:
                    raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
                canonical = canonical_id(rid)
                if canonical is None or object_of_id(canonical) != obj.name:
                    raise RecordError(
                        "MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {rid}", ["Id"]
                    )
                self.org.update(obj.name, canonical, values, user_id=call.user_id, options=options)
                return {"id": canonical, "success": True, "errors": []}

            operations.append((record_id, update))
        return self._run(call.request, operations, all_or_none)

    async def upsert(self, call: RestCall, object_name: str, field_name: str) -> web.Response:
        """``PATCH composite/sobjects/{Object}/{ExternalIdField}``."""
        obj = self._object(object_name)
        key_field = obj.field(field_name)
        if key_field is None or not (key_field.external_id or key_field.name == "Id"):
            raise ApiError(
                400, "INVALID_FIELD",
                f"Field name provided, {field_name} is not an External ID or indexed field for "
                f"{obj.name}",
            )  # fmt: skip
        records, all_or_none = await self._records(call)
        prepared = []
        for record in records:
            self._typed(record, obj)
            prepared.append(self._prepare(obj, record))
        repeated = Counter(
            normalise_key(v[key_field.name]) for v in prepared if v.get(key_field.name) is not None
        )
        options = save_options(call)
        operations: list[tuple[str | None, Operation]] = []
        for values in prepared:

            def upsert(values: dict[str, Any] = values) -> dict[str, Any]:
                return self._upsert_one(call, obj, key_field, values, repeated, options)

            operations.append((None, upsert))
        return self._run(call.request, operations, all_or_none)

    def _upsert_one(
        self,
        call: RestCall,
        obj: ObjectDef,
        key_field: FieldDef,
        values: dict[str, Any],
        repeated: Counter[str],
        options: Any,
    ) -> dict[str, Any]:
        key = values.get(key_field.name)
        if key is None:
            raise RecordError("MISSING_ARGUMENT", f"{key_field.name} not specified")
        if repeated[normalise_key(key)] > 1:
            raise RecordError(
                "DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [key_field.name]
            )
        try:
            saved, created = self.org.upsert(
                obj.name, key_field, key, values, user_id=call.user_id, options=options
            )
        except AmbiguousMatch as exc:
            raise RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"{key_field.name}: more than one record found for external id field: {exc.ids}",
                [key_field.name],
            ) from exc
        return {"id": saved["Id"], "success": True, "errors": [], "created": created}

    # -- retrieve, delete ------------------------------------------------------------------------

    def _object(self, name: str) -> ObjectDef:
        obj = self.org.schema.object(name)
        if obj is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return obj

    async def retrieve(self, call: RestCall, object_name: str) -> web.Response:
        """``GET`` (or ``POST``) ``composite/sobjects/{Object}?ids&fields``."""
        obj = self._object(object_name)
        if call.request.method == "POST":
            body = await call.json_object()
            ids, names = body.get("ids") or [], body.get("fields") or []
        else:
            ids = _listed(call.request.query.get("ids", ""))
            names = _listed(call.request.query.get("fields", ""))
        if not ids or not names:
            raise ApiError(400, "MISSING_ARGUMENT", "ids and fields are required")
        if len(ids) > MAX_RETRIEVE:
            raise _too_many(MAX_RETRIEVE)
        fields = []
        for name in names:
            f = obj.field(str(name))
            if f is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                )
            fields.append(f)
        store = self.org.stores[obj.name].records
        results: list[dict[str, Any] | None] = []
        for rid in ids:
            canonical = canonical_id(str(rid))
            if canonical is None:
                raise ApiError(400, "MALFORMED_ID", f"malformed id {rid}")
            record = store.get(canonical)
            if record is None or record.get("IsDeleted"):
                results.append(None)
                continue
            row: dict[str, Any] = {
                "attributes": {"type": obj.name, "url": call.record_url(obj.name, canonical)}
            }
            row.update((f.name, record.get(f.name)) for f in fields)
            results.append(row)
        Emulator.count_records(call.request, records_out=sum(r is not None for r in results))
        return web.json_response(results)

    async def delete(self, call: RestCall, object_name: str | None = None) -> web.Response:
        """Delete by ids; each id's object comes from its key prefix, whatever the path names."""
        ids = _listed(call.request.query.get("ids", ""))
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids is required")
        if len(ids) > MAX_RECORDS:
            raise _too_many(MAX_RECORDS)
        all_or_none = call.flag("allOrNone")
        Emulator.count_records(call.request, records_in=len(ids))
        operations: list[tuple[str | None, Operation]] = []
        for rid in ids:

            def delete(rid: str = rid) -> dict[str, Any]:
                canonical = canonical_id(rid)
                if canonical is None:
                    raise RecordError("MALFORMED_ID", f"malformed id {rid}")
                owner = object_of_id(canonical)
                if owner is None or owner not in self.org.stores:
                    raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                self.org.delete(owner, canonical, user_id=call.user_id)
                return {"id": canonical, "success": True, "errors": []}

            operations.append((rid, delete))
        return self._run(call.request, operations, all_or_none)


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _lock_error(fault: Fault | None, record_id: str | None) -> RecordError:
    code = fault.rule.code if fault is not None and fault.rule.code else "UNABLE_TO_LOCK_ROW"
    target = f" or 1 records: {record_id}" if record_id else ""
    return RecordError(code, f"unable to obtain exclusive access to this record{target}")
