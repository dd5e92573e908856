"""Bulk API 2.0: ingest jobs (insert, update, upsert, delete, hardDelete) and query jobs.

Ingest: ``POST jobs/ingest`` opens a job, ``PUT .../batches`` uploads CSV (answered 201), ``PATCH``
``{"state": "UploadComplete"}`` closes it; the job then runs after ``bulk_job_delay_seconds`` (so
the SDK's polling of ``GET jobs/ingest/{id}`` is exercised) and reports each row in
``successfulResults``, ``failedResults`` or ``unprocessedrecords``. Columns are matched by header
name (simple-salesforce writes them in set order). An empty cell leaves a field alone; ``#N/A``
clears it, as in Salesforce.

Query: ``POST jobs/query`` runs the SOQL after the same delay; ``GET .../results`` pages the CSV
with ``maxRecords`` and a locator (base64 of the next offset), answering ``Sforce-Locator`` (the
literal ``null`` on the last page) and ``Sforce-NumberOfRecords``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox.emulator import Emulator
from crmbridge.testing.sandbox.faults import FaultKind
from crmbridge_salesforce.sandbox.describe import FieldDef, ObjectDef
from crmbridge_salesforce.sandbox.errors import ApiError, RecordError, not_found
from crmbridge_salesforce.sandbox.indexes import normalise_key
from crmbridge_salesforce.sandbox.limits import ApiBudget
from crmbridge_salesforce.sandbox.query import PreparedQuery, SchemaResolver, execute, prepare
from crmbridge_salesforce.sandbox.rest import RestCall
from crmbridge_salesforce.sandbox.soql import FieldRef, SoqlError
from crmbridge_salesforce.sandbox.state import STRICT, AmbiguousMatch, Org, paused_gc
from crmbridge_salesforce.sandbox.values import csv_text, format_datetime

INGEST_OPERATIONS = {"insert", "update", "upsert", "delete", "hardDelete"}
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}  # fmt: skip
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
RESULT_KINDS = {
    "successfulresults": "successful",
    "failedresults": "failed",
    "unprocessedrecords": "unprocessed",
}
TERMINAL = {"JobComplete", "Failed", "Aborted"}
NULL_CELL = "#N/A"
JOB_RETENTION_DAYS = 7


@dataclass
class Job:
    """What ingest and query jobs share: identity, format, state, timing."""

    id: str
    operation: str
    object: str
    created_by: str
    created_date: str
    api_version: str
    column_delimiter: str
    line_ending: str
    state: str
    modstamp: str
    ready_at: float | None = None
    processing_ms: int = 0
    error_message: str | None = None
    handle: asyncio.TimerHandle | None = field(default=None, repr=False)

    def base_info(self) -> dict[str, Any]:
        """The JobInfo keys every job answers with."""
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.modstamp,
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
        }

    def write_csv(self, rows: list[list[str]]) -> str:
        """``rows`` as CSV in the job's delimiter and line ending, every value quoted."""
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=DELIMITERS[self.column_delimiter],
            lineterminator=LINE_ENDINGS[self.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerows(rows)
        return buffer.getvalue()


@dataclass
class IngestJob(Job):
    """An insert, update, upsert, delete or hardDelete job and its row results."""

    external_id_field: str | None = None
    uploads: list[str] = field(default_factory=list)
    locked_rows: set[int] = field(default_factory=set)
    lock_code: str = "UNABLE_TO_LOCK_ROW"
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self, version: str) -> dict[str, Any]:
        """The ingest JobInfo, with counts once processed."""
        body = self.base_info()
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        body.update(
            contentUrl=f"services/data/v{version}/jobs/ingest/{self.id}/batches",
            jobType="V2Ingest",
            numberRecordsProcessed=len(self.successful) + len(self.failed),
            numberRecordsFailed=len(self.failed),
            retries=0,
            totalProcessingTime=self.processing_ms,
            apiActiveProcessingTime=self.processing_ms,
            apexProcessingTime=0,
        )
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class QueryJob(Job):
    """A query or queryAll job and the ids it found."""

    query: str = ""
    prepared: PreparedQuery | None = None
    ids: list[str] = field(default_factory=list)

    def info(self, version: str) -> dict[str, Any]:
        """The query JobInfo."""
        body = self.base_info()
        body.update(
            jobType="V2Query",
            numberRecordsProcessed=len(self.ids),
            retries=0,
            totalProcessingTime=self.processing_ms,
            isPkChunkingSupported=True,
        )
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


def _state_error(message: str) -> ApiError:
    return ApiError(409, "INVALIDJOBSTATE", message)


class Bulk2Api:
    """``jobs/ingest`` and ``jobs/query``."""

    def __init__(
        self,
        org: Org,
        budget: ApiBudget,
        delay_seconds: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.org = org
        self.on_change = on_change
        self.budget = budget
        self.delay = delay_seconds
        self.ingest_jobs: dict[str, IngestJob] = {}
        self.query_jobs: dict[str, QueryJob] = {}

    # -- shared ----------------------------------------------------------------------------------

    def _format(self, body: dict[str, Any]) -> tuple[str, str]:
        delimiter = str(body.get("columnDelimiter", "COMMA"))
        ending = str(body.get("lineEnding", "LF"))
        if delimiter not in DELIMITERS or ending not in LINE_ENDINGS:
            raise ApiError(
                400, "INVALIDJOB", f"unsupported columnDelimiter {delimiter} or lineEnding {ending}"
            )
        return delimiter, ending

    def _forget_old_jobs(self) -> None:
        """Drop finished jobs older than a week, as Salesforce does, so a long demo stays small."""
        horizon = format_datetime(self.org.now_datetime() - timedelta(days=JOB_RETENTION_DAYS))
        for jobs in (self.ingest_jobs, self.query_jobs):
            for job_id in [
                i for i, j in jobs.items() if j.state in TERMINAL and j.modstamp < horizon
            ]:
                del jobs[job_id]

    def _schedule(self, job: Job, run: Any) -> None:
        job.ready_at = time.monotonic() + self.delay
        job.handle = asyncio.get_running_loop().call_later(self.delay, run, job)

    def _due(self, job: Job, run: Any) -> None:
        """Finish a job whose delay has passed but whose timer has not fired yet."""
        if job.state in TERMINAL or job.ready_at is None:
            return
        if time.monotonic() >= job.ready_at:
            run(job)
        else:
            job.state = "InProgress"

    def _finish(self, job: Job, started: float) -> None:
        if job.handle is not None:
            job.handle.cancel()
            job.handle = None
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.modstamp = self.org.now()
        job.ready_at = None
        self.on_change()

    # -- ingest ----------------------------------------------------------------------------------

    async def create_ingest(self, call: RestCall) -> web.Response:
        """``POST jobs/ingest``: open an ingest job."""
        body = await call.json_object()
        operation = str(body.get("operation", ""))
        if operation not in INGEST_OPERATIONS:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        obj = self.org.schema.object(str(body.get("object", "")))
        if obj is None:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid object: {body.get('object')}")
        external = body.get("externalIdFieldName")
        if operation == "upsert":
            f = obj.field(str(external or ""))
            if f is None or not (f.external_id or f.name == "Id"):
                raise ApiError(
                    400, "INVALIDJOB",
                    f"InvalidJob : Field name provided, {external} is not an External ID or "
                    f"indexed field for {obj.name}",
                )  # fmt: skip
            external = f.name
        delimiter, ending = self._format(body)
        self.budget.spend_bulk_job()
        self._forget_old_jobs()
        now = self.org.now()
        job = IngestJob(
            id=self.org.ids.next("750"), operation=operation, object=obj.name,
            created_by=call.user_id, created_date=now, api_version=call.version,
            column_delimiter=delimiter, line_ending=ending, state="Open", modstamp=now,
            external_id_field=external if operation == "upsert" else None,
        )  # fmt: skip
        self.ingest_jobs[job.id] = job
        return web.json_response(job.info(call.version))

    def _ingest(self, job_id: str) -> IngestJob:
        job = self.ingest_jobs.get(job_id)
        if job is None:
            raise not_found("Job not found")
        return job

    async def list_ingest(self, call: RestCall) -> web.Response:
        """``GET jobs/ingest``."""
        records = [j.info(call.version) for j in self.ingest_jobs.values()]
        return web.json_response({"done": True, "records": records, "nextRecordsUrl": None})

    async def get_ingest(self, call: RestCall, job_id: str) -> web.Response:
        """``GET jobs/ingest/{id}`` (a due job finishes first)."""
        job = self._ingest(job_id)
        self._due(job, self._run_ingest)
        return web.json_response(job.info(call.version))

    async def upload(self, call: RestCall, job_id: str) -> web.Response:
        """``PUT jobs/ingest/{id}/batches``: add CSV to an open job (201)."""
        job = self._ingest(job_id)
        if job.state != "Open":
            raise _state_error(f"Job {job.id} is {job.state}; data can only be added while Open")
        text = (await call.request.read()).decode("utf-8-sig")
        if not text.strip():
            raise ApiError(400, "INVALIDJOB", "InvalidBatch : Empty CSV file")
        job.uploads.append(text)
        rows = len(_rows(job, text)[1])
        Emulator.count_records(call.request, records_in=rows)
        self._mark_locked(call, job, rows)
        return web.Response(status=201)

    def _mark_locked(self, call: RestCall, job: IngestJob, rows: int) -> None:
        """Fail some rows of the latest upload when a PARTIAL fault fired on it."""
        fault = Emulator.fault_of(call.request)
        if fault is None or fault.kind is not FaultKind.PARTIAL:
            return
        before = sum(len(_rows(job, upload)[1]) for upload in job.uploads[:-1])
        job.locked_rows |= {before + i for i in fault.failed_indexes(rows)}
        job.lock_code = fault.rule.code or "UNABLE_TO_LOCK_ROW"

    async def patch_ingest(self, call: RestCall, job_id: str) -> web.Response:
        """``PATCH jobs/ingest/{id}``: UploadComplete (the job runs after the delay) or Aborted."""
        job = self._ingest(job_id)
        state = (await call.json_object()).get("state")
        if state == "UploadComplete":
            if job.state != "Open":
                raise _state_error(f"Job {job.id} is {job.state}, not Open")
            job.state = "UploadComplete"
            job.modstamp = self.org.now()
            self._schedule(job, self._run_ingest)
        elif state == "Aborted":
            self._abort(job)
            for upload in job.uploads:
                header, rows = _rows(job, upload)
                job.header = job.header or header
                job.unprocessed.extend(rows)
        else:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : cannot set state to {state}")
        return web.json_response(job.info(call.version))

    def _abort(self, job: Job) -> None:
        if job.state in TERMINAL:
            raise _state_error(f"Job {job.id} is already {job.state}")
        if job.handle is not None:
            job.handle.cancel()
            job.handle = None
        job.state = "Aborted"
        job.ready_at = None
        job.modstamp = self.org.now()

    async def delete_ingest(self, call: RestCall, job_id: str) -> web.Response:
        """``DELETE jobs/ingest/{id}`` of a finished job."""
        job = self._ingest(job_id)
        if job.state not in TERMINAL:
            raise _state_error(f"Job {job.id} is {job.state}; only finished jobs can be deleted")
        del self.ingest_jobs[job.id]
        return web.Response(status=204)

    async def results(self, call: RestCall, job_id: str, kind: str) -> web.Response:
        """``GET jobs/ingest/{id}/successfulResults|failedResults|unprocessedrecords``."""
        job = self._ingest(job_id)
        which = RESULT_KINDS.get(kind.lower())
        if which is None:
            raise not_found()
        self._due(job, self._run_ingest)
        if which != "unprocessed" and job.state != "JobComplete":
            raise _state_error(f"Job {job.id} is {job.state}; results come once it is complete")
        head = {"successful": ["sf__Id", "sf__Created"], "failed": ["sf__Id", "sf__Error"]}
        rows = {"successful": job.successful, "failed": job.failed,
                "unprocessed": job.unprocessed}[which]  # fmt: skip
        Emulator.count_records(call.request, records_out=len(rows))
        text = job.write_csv([[*head.get(which, []), *job.header], *rows])
        return web.Response(text=text, content_type="text/csv", charset="utf-8")

    def _run_ingest(self, job: IngestJob) -> None:
        if job.state in TERMINAL:
            return
        started = time.monotonic()
        job.state = "InProgress"
        try:
            with paused_gc():
                self._ingest_rows(job)
            job.state = "JobComplete" if job.state == "InProgress" else job.state
        except Exception as exc:  # noqa: BLE001 - a job that breaks fails, as on Salesforce
            job.state = "Failed"
            job.error_message = f"UNKNOWN_EXCEPTION : {exc}"
        self._finish(job, started)

    def _ingest_rows(self, job: IngestJob) -> None:
        obj = self.org.schema.objects[job.object]
        rows: list[list[str]] = []
        for upload in job.uploads:
            header, body = _rows(job, upload)
            if job.header and header != job.header:
                return self._fail(job, "InvalidBatch : every upload must have the same header")
            job.header = header
            rows.extend(body)
        problem = _check_header(job, obj)
        if problem:
            job.unprocessed = rows
            return self._fail(job, problem)
        columns = [obj.field(name) for name in job.header]
        repeated: Counter[str] = Counter()
        key_at = None
        if job.external_id_field:
            key_at = [f.name if f else "" for f in columns].index(job.external_id_field)
            repeated = Counter(normalise_key(r[key_at]) for r in rows if r[key_at])
        for i, row in enumerate(rows):
            self._ingest_row(job, obj, columns, row, i, key_at, repeated)
        return None

    def _ingest_row(
        self,
        job: IngestJob,
        obj: ObjectDef,
        columns: list[FieldDef | None],
        row: list[str],
        i: int,
        key_at: int | None,
        repeated: Counter[str],
    ) -> None:
        record_id = ""
        try:
            if i in job.locked_rows:
                raise RecordError(job.lock_code, "unable to obtain exclusive access to this record")
            raw = {f.name: cell for f, cell in zip(columns, row, strict=False)
                   if f is not None and cell not in ("", NULL_CELL)}  # fmt: skip
            nulls = [f.name for f, cell in zip(columns, row, strict=False)
                     if f is not None and cell == NULL_CELL]  # fmt: skip
            values = self.org.prepare(obj, raw, csv=True)
            values.update(dict.fromkeys(nulls))
            record_id = str(values.get("Id") or "")
            record_id, created = self._apply(job, obj, values, key_at, row, repeated)
        except RecordError as exc:
            job.failed.append([record_id, exc.bulk(), *row])
            return
        job.successful.append([record_id, "true" if created else "false", *row])

    def _apply(
        self,
        job: IngestJob,
        obj: ObjectDef,
        values: dict[str, Any],
        key_at: int | None,
        row: list[str],
        repeated: Counter[str],
    ) -> tuple[str, bool]:
        user = job.created_by
        if job.operation == "insert":
            return self.org.insert(obj.name, values, user_id=user, options=STRICT)["Id"], True
        if job.operation in {"delete", "hardDelete"}:
            record_id = values.get("Id")
            if not record_id:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in a delete call")
            if job.operation == "delete":
                self.org.delete(obj.name, record_id, user_id=user)
            else:
                self.org.hard_delete(obj.name, record_id)
            return record_id, False
        if job.operation == "update":
            record_id = values.pop("Id", None)
            if not record_id:
                raise RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
            return self.org.update(obj.name, record_id, values, user_id=user)["Id"], False
        assert key_at is not None
        assert job.external_id_field is not None
        key_field = obj.fields[job.external_id_field]
        key = values.get(key_field.name)
        if key is None:
            raise RecordError("MISSING_ARGUMENT", f"{key_field.name} not specified")
        if repeated[normalise_key(row[key_at])] > 1:
            raise RecordError(
                "DUPLICATE_VALUE", f"Duplicate external id specified: {key}", [key_field.name]
            )
        try:
            record, created = self.org.upsert(obj.name, key_field, key, values, user_id=user)
        except AmbiguousMatch as exc:
            raise RecordError(
                "DUPLICATE_EXTERNAL_ID",
                f"{key_field.name}: more than one record found for external id field: {exc.ids}",
                [key_field.name],
            ) from exc
        return record["Id"], created

    def _fail(self, job: Job, message: str) -> None:
        job.state = "Failed"
        job.error_message = message

    # -- query -----------------------------------------------------------------------------------

    async def create_query(self, call: RestCall) -> web.Response:
        """``POST jobs/query``: check the SOQL now, run it after the delay."""
        body = await call.json_object()
        operation = str(body.get("operation", "query"))
        if operation not in {"query", "queryAll"}:
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : Invalid operation: {operation}")
        soql = str(body.get("query", ""))
        try:
            prepared = prepare(self.org, soql)
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message(soql)) from exc
        if prepared.query.count or prepared.query.offset is not None:
            raise ApiError(
                400, "INVALIDJOB", "InvalidJob : Bulk queries support neither COUNT() nor OFFSET"
            )
        delimiter, ending = self._format(body)
        self.budget.spend_bulk_job()
        self._forget_old_jobs()
        now = self.org.now()
        job = QueryJob(
            id=self.org.ids.next("750"), operation=operation, object=prepared.obj.name,
            created_by=call.user_id, created_date=now, api_version=call.version,
            column_delimiter=delimiter, line_ending=ending, state="UploadComplete",
            modstamp=now, query=soql, prepared=prepared,
        )  # fmt: skip
        self.query_jobs[job.id] = job
        self._schedule(job, self._run_query)
        return web.json_response(job.info(call.version))

    def _query(self, job_id: str) -> QueryJob:
        job = self.query_jobs.get(job_id)
        if job is None:
            raise not_found("Job not found")
        return job

    def _run_query(self, job: QueryJob) -> None:
        if job.state in TERMINAL or job.prepared is None:
            return
        started = time.monotonic()
        records, _ = execute(self.org, job.prepared, include_deleted=job.operation == "queryAll")
        job.ids = [r["Id"] for r in records]
        job.state = "JobComplete"
        self._finish(job, started)

    async def list_query(self, call: RestCall) -> web.Response:
        """``GET jobs/query``."""
        records = [j.info(call.version) for j in self.query_jobs.values()]
        return web.json_response({"done": True, "records": records, "nextRecordsUrl": None})

    async def get_query(self, call: RestCall, job_id: str) -> web.Response:
        """``GET jobs/query/{id}`` (a due job finishes first)."""
        job = self._query(job_id)
        self._due(job, self._run_query)
        return web.json_response(job.info(call.version))

    async def patch_query(self, call: RestCall, job_id: str) -> web.Response:
        """``PATCH jobs/query/{id}``: abort."""
        job = self._query(job_id)
        state = (await call.json_object()).get("state")
        if state != "Aborted":
            raise ApiError(400, "INVALIDJOB", f"InvalidJob : cannot set state to {state}")
        self._abort(job)
        return web.json_response(job.info(call.version))

    async def delete_query(self, call: RestCall, job_id: str) -> web.Response:
        """``DELETE jobs/query/{id}`` of a finished job."""
        job = self._query(job_id)
        if job.state not in TERMINAL:
            raise _state_error(f"Job {job.id} is {job.state}; only finished jobs can be deleted")
        del self.query_jobs[job.id]
        return web.Response(status=204)

    async def query_results(self, call: RestCall, job_id: str) -> web.Response:
        """``GET jobs/query/{id}/results?maxRecords&locator``: one CSV page."""
        job = self._query(job_id)
        self._due(job, self._run_query)
        if job.state != "JobComplete" or job.prepared is None:
            raise _state_error(f"Job {job.id} is {job.state}; results come once it is complete")
        params = call.request.query
        offset = _decode_locator(params.get("locator", ""))
        try:
            page_size = int(params.get("maxRecords", "50000"))
        except ValueError as exc:
            raise ApiError(400, "INVALIDJOB", "maxRecords must be a number") from exc
        if page_size <= 0:
            raise ApiError(400, "INVALIDJOB", "maxRecords must be positive")
        if offset > len(job.ids):
            raise ApiError(400, "INVALID_LOCATOR", "Invalid locator")
        chunk = job.ids[offset : offset + page_size]
        prepared = job.prepared
        resolver = SchemaResolver(self.org, prepared.obj)
        getters = [
            (path.field.type, resolver.bind(FieldRef(tuple(path.text.split(".")), 0))[1])
            for path in prepared.select
        ]
        store = self.org.stores[prepared.obj.name].records
        rows = [[path.text for path in prepared.select]]
        for rid in chunk:
            record = store.get(rid)
            if record is not None:
                rows.append([csv_text(type_, get(record)) for type_, get in getters])
        end = offset + len(chunk)
        locator = _encode_locator(end) if end < len(job.ids) else "null"
        Emulator.count_records(call.request, records_out=len(rows) - 1)
        return web.Response(
            text=job.write_csv(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(rows) - 1)},
        )


def _rows(job: Job, text: str) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text), delimiter=DELIMITERS[job.column_delimiter])
    rows = [row for row in reader if row]
    if not rows:
        return [], []
    return [h.strip() for h in rows[0]], rows[1:]


def _check_header(job: IngestJob, obj: ObjectDef) -> str | None:
    header = job.header
    if not header:
        return "InvalidBatch : Empty CSV file"
    lowered = [h.lower() for h in header]
    for name in header:
        if obj.field(name) is None:
            return f"InvalidBatch : Field name not found : {name}"
    if len(set(lowered)) != len(lowered):
        return "InvalidBatch : Duplicate field name in the header"
    if job.operation in {"delete", "hardDelete"} and lowered != ["id"]:
        return "InvalidBatch : The 'delete/hardDelete' batch must contain only 'Id'"
    if job.external_id_field and job.external_id_field.lower() not in lowered:
        return f"InvalidBatch : Field name not found : {job.external_id_field}"
    return None


def _encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int:
    if not locator or locator == "null":
        return 0
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
        return int(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "INVALID_LOCATOR", "Invalid locator") from exc
