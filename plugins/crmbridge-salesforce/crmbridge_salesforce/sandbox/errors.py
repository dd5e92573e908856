"""Salesforce's error shapes: the REST error array, per-record errors, and the Bulk result text.

REST answers an error as a JSON *array* of ``{"message", "errorCode"[, "fields"]}``
(simple-salesforce reads ``[0]["errorCode"]`` of a 401 to decide whether to log in again, so the
array matters).
Collections and upserts report per-record ``{"statusCode", "message", "fields"}`` inside a result,
and Bulk API 2.0 writes ``CODE:message:fields --`` in its ``sf__Error`` column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

SESSION_EXPIRED = "Session expired or invalid"
RESOURCE_MISSING = "The requested resource does not exist"


class RecordError(Exception):
    """One record could not be saved: a validation rule, a missing field, a lock.

    ``extra`` carries additional keys Salesforce adds to some errors (``duplicateResult``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        fields: Sequence[str] = (),
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.extra = dict(extra or {})

    def rest(self) -> dict[str, Any]:
        """The entry of a REST error array."""
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        body["fields"] = self.fields
        body.update(self.extra)
        return body

    def result(self) -> dict[str, Any]:
        """The entry of a SaveResult's ``errors`` list (collections, upserts)."""
        body: dict[str, Any] = {
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields,
        }
        body.update(self.extra)
        return body

    def bulk(self) -> str:
        """The ``sf__Error`` text of a Bulk API 2.0 failed row."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


class ApiError(Exception):
    """A request Salesforce refuses as a whole, answered with ``status`` and an error array."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.errors = [error_entry(code, message, fields, extra)]
        self.headers = dict(headers or {})

    @classmethod
    def of_record(cls, error: RecordError, status: int = 400) -> ApiError:
        """The whole-request form of a record error (single-record REST calls)."""
        return cls(status, error.code, error.message, fields=error.fields, extra=error.extra)

    @property
    def code(self) -> str:
        """The first error's ``errorCode``."""
        return str(self.errors[0]["errorCode"])

    def response(self) -> web.Response:
        """The error array answered with this error's status."""
        return error_response(self.status, self.errors, headers=self.headers)


def error_entry(
    code: str,
    message: str,
    fields: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One entry of a REST error array; ``fields`` only when the error concerns fields."""
    entry: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        entry["fields"] = list(fields)
    if extra:
        entry.update(extra)
    return entry


def error_response(
    status: int, errors: list[dict[str, Any]], *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An error array answered as JSON with ``status``."""
    return web.json_response(errors, status=status, headers=dict(headers or {}), dumps=json.dumps)


def not_found(message: str = RESOURCE_MISSING) -> ApiError:
    """404 ``NOT_FOUND``, Salesforce's answer for an unknown record, route or external id."""
    return ApiError(404, "NOT_FOUND", message)


def json_parser_error(detail: str) -> ApiError:
    """400 ``JSON_PARSER_ERROR`` for a body that is not the JSON the resource expects."""
    return ApiError(400, "JSON_PARSER_ERROR", detail)
