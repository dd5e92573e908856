"""Bulk API 2.0: upsert jobs for large writes, query jobs for backfills.

Each step is its own retried call through the session, so a re-login in between hands the next
step a client whose ``sf.bulk2`` carries the new token (the SDK's handler keeps the token it was
made with). An upsert job keyed on the external id is idempotent, so a job that failed half-way
is simply run again.

Upsert results come back as CSV: ``successfulResults`` (``sf__Id``, ``sf__Created`` and the
columns sent), ``failedResults`` (``sf__Id``, ``sf__Error`` as ``CODE:message:fields --``) and
``unprocessedrecords``; each row is matched to its write by the external id column.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from simple_salesforce.api import Salesforce

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
        """Run one upsert job over ``rows`` (CSV cells); results by external id."""
        poll = self.session.settings.bulk_poll_seconds
        what = f"Bulk API 2.0 upsert of {len(rows)} {self.object_name} records"
        jobs = self.session.call(
            what,
            lambda sf: self._type(sf).upsert(
                records=[dict(r) for r in rows], external_id_field=self.key_field, wait=poll
            ),
        )
        results: dict[str, BulkRow] = {}
        for job in jobs:
            job_id = str(job["job_id"])
            self.log.info(
                "salesforce: bulk job %s processed %s records, %s failed",
                job_id,
                job.get("numberRecordsProcessed"),
                job.get("numberRecordsFailed"),
            )
            results.update(self._rows(job_id, "successful"))
            if int(job.get("numberRecordsFailed") or 0):
                results.update(self._rows(job_id, "failed"))
            if int(job.get("numberRecordsProcessed") or 0) < int(
                job.get("numberRecordsTotal") or 0
            ):
                results.update(self._rows(job_id, "unprocessed"))
        return results

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
