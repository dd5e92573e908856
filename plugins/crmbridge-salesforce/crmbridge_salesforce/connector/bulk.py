"""Bulk API 2.0: upsert jobs for large writes, query jobs for backfills.

An upsert job (create, upload, close, poll) is one retried call through the session, and reading
each kind of its results another, so a re-login in between hands the next call a client whose
``sf.bulk2`` carries the new token (the SDK's handler keeps the token it was made with). An
upsert job keyed on the external id is idempotent, so a job that failed half-way is aborted and
simply run again. A job done before its first poll costs five calls: create, upload, close, one
status read, the successful results.

Upsert results come back as CSV: ``successfulResults`` (``sf__Id``, ``sf__Created`` and the
columns sent), ``failedResults`` (``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``) and
``unprocessedrecords``; each row is matched to its write by the external id column.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceBulkV2LoadError, SalesforceError

from crmbridge_salesforce.connector.session import SalesforceSession

NULL_CELL = "#N/A"
"""What a Bulk API CSV cell holds to clear a field (an empty cell leaves it alone)."""


def csv_cell(value: Any) -> str:
    """A value as a Bulk API 2.0 CSV cell."""
    if value is None:
        return NULL_CELL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return str(json_value(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def json_value(value: Any) -> Any:
    """A value as Salesforce's JSON takes it (datetimes in UTC with milliseconds)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{aware.microsecond // 1000:03d}Z"
        )
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(frozen=True)
class BulkRow:
    """One row of an ingest job's results."""

    key: str
    ok: bool
    record_id: str | None
    created: bool | None = None
    code: str = ""
    message: str = ""
    fields: tuple[str, ...] = ()


def _csv_text(rows: Sequence[Mapping[str, str]]) -> str:
    """Rows of CSV cells as one CSV document (LF line endings, the header from the first row
    and any column a later row adds)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def parse_bulk_error(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``CODE:message:Field1,Field2 --`` → code, message, fields."""
    body = text.strip().removesuffix("--").strip()
    head, _, fields_text = body.rpartition(":")
    if not head:
        head, fields_text = body, ""
    code, _, message = head.partition(":")
    fields = tuple(f.strip() for f in fields_text.split(",") if f.strip())
    return code.strip(), message.strip(), fields


class BulkIngest:
    """Upsert jobs on one object, keyed on an external id field."""

    def __init__(
        self, session: SalesforceSession, object_name: str, key_field: str, log: logging.Logger
    ) -> None:
        self.session = session
        self.object_name = object_name
        self.key_field = key_field
        self.log = log

    def _type(self, sf: Salesforce) -> Any:
        return getattr(sf.bulk2, self.object_name)

    def upsert(self, rows: Sequence[Mapping[str, str]]) -> dict[str, BulkRow]:
        """Run one upsert job over ``rows`` (CSV cells); results by external id.

        The job's steps go through the SDK's own Bulk API 2.0 client (create, upload, close,
        status, results), one call each. The SDK's ``upsert`` would read the job once more after
        its poll saw it complete (a sixth call per job, against the org's daily quota) and copy
        the records into CSV twice; here the poll's answer is the job's summary, and the CSV is
        written once.
        """
        what = f"Bulk API 2.0 upsert of {len(rows)} {self.object_name} records"
        data = _csv_text(rows)
        job = self.session.call(what, lambda sf: self._run_job(sf, data))
        job_id = str(job["id"])
        self.log.info(
            "salesforce: bulk job %s processed %s records, %s failed",
            job_id,
            job.get("numberRecordsProcessed"),
            job.get("numberRecordsFailed"),
        )
        results = self._rows(job_id, "successful")
        if int(job.get("numberRecordsFailed") or 0):
            results.update(self._rows(job_id, "failed"))
        if int(job.get("numberRecordsProcessed") or 0) < len(rows):
            results.update(self._rows(job_id, "unprocessed"))
        return results

    def _run_job(self, sf: Salesforce, data: str) -> Mapping[str, Any]:
        """Create, fill and close an upsert job, then poll it until it ends; the job's summary.

        A failure after the job was created aborts it (as the SDK does), so a retry never
        leaves an open job behind; the retry runs a new job (an upsert on the external id is
        idempotent).
        """
        client = self._type(sf)._client
        created = client.create_job(Operation.upsert, external_id_field=self.key_field)
        job_id = str(created["id"])
        try:
            client.upload_job_data(job_id, data)
            client.close_job(job_id)
            return self._wait(client, job_id)
        except BaseException:
            try:
                client.abort_job(job_id, False)
            except (requests.RequestException, SalesforceError) as exc:
                # The first failure is the one raised; this one is said beside it.
                self.log.warning("salesforce: could not abort bulk job %s: %s", job_id, exc)
            raise

    def _wait(self, client: Any, job_id: str) -> Mapping[str, Any]:
        """Poll the job: the first look after ``bulk_poll_seconds``, then less and less often
        (half as long again each time, up to a minute), until it ends."""
        delay = self.session.settings.bulk_poll_seconds
        deadline = time.monotonic() + self.session.settings.bulk_job_timeout_seconds
        while True:
            time.sleep(delay)
            job: Mapping[str, Any] = client.get_job(job_id, False)
            state = job.get("state")
            if state == "JobComplete":
                return job
            if state in ("Failed", "Aborted"):
                raise SalesforceBulkV2LoadError(
                    f"bulk job {job_id} ended {state}: {job.get('errorMessage') or 'no message'}"
                )
            if time.monotonic() >= deadline:
                raise SalesforceBulkV2LoadError(
                    f"bulk job {job_id} still {state} after "
                    f"{self.session.settings.bulk_job_timeout_seconds:g} s"
                )
            delay = min(delay * 1.5, 60.0)

    def _rows(self, job_id: str, kind: str) -> dict[str, BulkRow]:
        getter = {
            "successful": "get_successful_records",
            "failed": "get_failed_records",
            "unprocessed": "get_unprocessed_records",
        }[kind]
        text = self.session.call(
            f"Bulk API 2.0 {kind} results of job {job_id}",
            lambda sf: getattr(self._type(sf), getter)(job_id),
        )
        out: dict[str, BulkRow] = {}
        for row in csv.DictReader(io.StringIO(text)):
            key = row.get(self.key_field) or ""
            record_id = row.get("sf__Id") or None
            if kind == "successful":
                created = (row.get("sf__Created") or "").lower() == "true"
                out[key] = BulkRow(key, True, record_id, created)
            elif kind == "failed":
                code, message, fields = parse_bulk_error(row.get("sf__Error") or "")
                out[key] = BulkRow(key, False, record_id, None, code, message, fields)
            else:
                out[key] = BulkRow(
                    key, False, None, None, "NOT_PROCESSED",
                    "the Bulk API job ended before processing this record",
                )  # fmt: skip
        return out


class BulkQueryPages:
    """A Bulk API 2.0 query's CSV pages, restartable from a keyset position.

    The SDK's query is a generator (job, wait, pages); a generator that failed is finished, so on
    a failure the next attempt starts a new job with the SOQL ``soql_for`` gives for the last
    row handed out.
    """

    def __init__(
        self,
        session: SalesforceSession,
        object_name: str,
        soql_for: Callable[[], str],
        log: logging.Logger,
    ) -> None:
        self.session = session
        self.object_name = object_name
        self.soql_for = soql_for
        self.log = log
        self.jobs = 0
        self._pages: Iterator[str] | None = None

    def _next(self, sf: Salesforce) -> str | None:
        if self._pages is None:
            self.jobs += 1
            self._pages = iter(
                getattr(sf.bulk2, self.object_name).query(
                    self.soql_for(),
                    max_records=self.session.settings.bulk_page_size,
                    wait=self.session.settings.bulk_poll_seconds,
                )
            )
        try:
            return next(self._pages, None)
        except BaseException:
            self._pages = None
            raise

    def pages(self) -> Iterator[list[dict[str, str]]]:
        """Every page's rows (column → text), in order."""
        while True:
            text = self.session.call(f"Bulk API 2.0 query of {self.object_name}", self._next)
            if text is None:
                return
            rows = list(csv.DictReader(io.StringIO(text)))
            if rows:
                yield rows
