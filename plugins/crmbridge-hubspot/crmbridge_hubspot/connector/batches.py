"""HubSpot's batch writes, answered per record.

Every input carries a unique ``objectWriteTraceId``, which turns on HubSpot's multi-status mode:
valid inputs are written and the call answers 207 with one error per refused input, instead of
failing the whole batch on the first bad record. Results and errors are matched to inputs by
that trace id (HubSpot does not promise their order), else by the record id in the error's
context.

If HubSpot still refuses a whole batch (a 400 or 409 that names no input), the batch is split in
halves and each half sent again, until the refused record stands alone: a partial failure never
fails the batch, at the cost of a few calls only when something is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmbridge import TransientRecordError, WriteRejected
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import (
    PLUGIN,
    SYSTEM,
    HubSpotRequestError,
    existing_id,
    problem_text,
    property_problem,
)
from crmbridge_hubspot.connector.native import parse_time

log = logging.getLogger("crmbridge.connector.hubspot")
TRANSIENT_CATEGORIES = frozenset({"INTERNAL_ERROR", "RATE_LIMITS", "TIMEOUT"})
"""Error categories of one record in a multi-status answer that a later attempt gets past."""


@dataclass
class Input:
    """One record of a batch write.

    :param trace: the ``objectWriteTraceId`` (unique within the call).
    :param id: the record id (update) or the email (upsert by email).
    :param properties: HubSpot property → value (strings; ``""`` clears).
    :param record: how errors name the record (an email, else the id).
    """

    trace: str
    id: str
    properties: dict[str, str]
    record: str


@dataclass
class Answer:
    """HubSpot's answer for one input."""

    ok: bool
    native_id: str | None = None
    created: bool | None = None
    modified_at: datetime | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    error: WriteRejected | None = None


Send = Callable[[list[Input]], Any]


class BatchWriter:
    """Sends batch updates and upserts and answers per input, by trace id."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    def update(self, inputs: Sequence[Input]) -> dict[str, Answer]:
        """Batch update by record id (at most 100 inputs)."""
        return self._write("update", list(inputs), self._send_update)

    def upsert(self, inputs: Sequence[Input]) -> dict[str, Answer]:
        """Batch upsert by email (at most 100 inputs); each answer says whether it created."""
        return self._write("upsert", list(inputs), self._send_upsert)

    def _send_update(self, inputs: list[Input]) -> Any:
        # The body goes as plain JSON (the SDK sends dicts as given) and the answer comes back
        # as JSON: the SDK's models cost a Configuration copy each, 200 a call, and its parsing
        # of every timestamp took as much CPU as the rest of the write-back.
        body = {
            "inputs": [
                {"id": i.id, "properties": i.properties, "objectWriteTraceId": i.trace}
                for i in inputs
            ]
        }
        return self.client.call_json(
            f"POST objects/contacts/batch/update ({len(inputs)} contacts)",
            self.client.batch_api.update_with_http_info,
            batch_input_simple_public_object_batch_input=body,
        )

    def _send_upsert(self, inputs: list[Input]) -> Any:
        body = {
            "inputs": [
                {
                    "id": i.id,
                    "idProperty": "email",
                    "properties": i.properties,
                    "objectWriteTraceId": i.trace,
                }
                for i in inputs
            ]
        }
        return self.client.call_json(
            f"POST objects/contacts/batch/upsert ({len(inputs)} contacts)",
            self.client.batch_api.upsert_with_http_info,
            batch_input_simple_public_object_batch_input_upsert=body,
        )

    def _write(self, kind: str, inputs: list[Input], send: Send) -> dict[str, Answer]:
        if not inputs:
            return {}
        try:
            answer = send(inputs)
        except HubSpotRequestError as exc:
            if exc.status not in (400, 404, 409):
                raise
            if len(inputs) == 1:
                return {inputs[0].trace: Answer(False, error=_refusal(kind, inputs[0], exc))}
            log.info(
                "hubspot: the %s of %d contacts was refused as a whole (%s); sending halves to "
                "find the records at fault",
                kind,
                len(inputs),
                exc.category or exc.status,
            )
            half = len(inputs) // 2
            return {
                **self._write(kind, inputs[:half], send),
                **self._write(kind, inputs[half:], send),
            }
        return _answers(kind, inputs, answer)


def _answers(kind: str, inputs: list[Input], answer: Mapping[str, Any]) -> dict[str, Answer]:
    by_trace = {i.trace: i for i in inputs}
    by_id = {i.id.lower(): i for i in inputs}
    out: dict[str, Answer] = {}
    for result in answer.get("results") or []:
        props = result.get("properties") or {}
        item = by_trace.get(str(result.get("objectWriteTraceId") or ""))
        if item is None:
            item = by_id.get(str(result.get("id"))) or by_id.get(
                str(props.get("email") or "").lower()
            )
        if item is None:
            continue
        out[item.trace] = Answer(
            True,
            native_id=str(result.get("id")),
            created=result.get("new"),
            modified_at=parse_time(result.get("updatedAt")),
            properties=dict(props),
        )
    for error in answer.get("errors") or []:
        for item in _inputs_of(error, by_trace, by_id) or _unanswered(inputs, out):
            out.setdefault(item.trace, Answer(False, error=_batch_refusal(kind, item, error)))
    for item in _unanswered(inputs, out):
        out[item.trace] = Answer(
            False,
            error=WriteRejected(
                f"HubSpot gave no answer for the {kind} of contact {item.id}",
                code="NO_RESULT",
                plugin=PLUGIN,
                system=SYSTEM,
                record=item.record,
            ),
        )
    return out


def _inputs_of(
    error: Mapping[str, Any], by_trace: Mapping[str, Input], by_id: Mapping[str, Input]
) -> list[Input]:
    context: Mapping[str, Any] = error.get("context") or {}
    found = [by_trace[t] for t in context.get("objectWriteTraceId") or [] if t in by_trace]
    found += [by_id[i.lower()] for i in context.get("ids") or [] if i.lower() in by_id]
    return found


def _unanswered(inputs: Sequence[Input], out: Mapping[str, Answer]) -> list[Input]:
    return [i for i in inputs if i.trace not in out]


def _batch_refusal(kind: str, item: Input, error: Mapping[str, Any]) -> WriteRejected:
    message = str(error.get("message") or "refused")
    category = str(error.get("category") or "") or None
    field_name, code = property_problem(message)
    details = error.get("errors") or []
    if field_name is None and details:
        field_name = details[0].get("in") or None
        code = code or details[0].get("code")
    return _rejected(kind, item, message, category, field_name, code)


def _refusal(kind: str, item: Input, exc: HubSpotRequestError) -> WriteRejected:
    detail = exc.detail
    message = detail.message if detail is not None else exc.message
    field_name = detail.field if detail is not None else None
    code = detail.code if detail is not None else None
    return _rejected(kind, item, message, exc.category, field_name, code)


def _rejected(
    kind: str,
    item: Input,
    message: str,
    category: str | None,
    field_name: str | None,
    code: str | None,
) -> WriteRejected:
    hint = None
    if category == "OBJECT_NOT_FOUND":
        field_name = field_name or "hs_object_id"
        hint = "the contact was deleted or merged in HubSpot"
    elif (field_name or "").startswith("crmbridge_") and code == "PROPERTY_DOESNT_EXIST":
        hint = "run `crmbridge setup` to create crmbridge's properties"
    elif category == "CONFLICT":
        field_name = field_name or "email"
        other = existing_id(message)
        hint = f"contact {other} already has this email" if other else None
    # The core's errors type their optional keywords as ``str``: pass only those that are set.
    optional = {"rule": category, "field": field_name, "hint": hint}
    # HubSpot failed this one record on its side (the rest of the batch went through): the same
    # write succeeds later, so it is written again at the next cycle.
    error = TransientRecordError if category in TRANSIENT_CATEGORIES else WriteRejected
    return error(
        f"HubSpot refused the {kind} of contact {item.id}: {problem_text(message)}",
        code=code or category,
        plugin=PLUGIN,
        system=SYSTEM,
        record=item.record,
        **{k: v for k, v in optional.items() if v is not None},
    )
