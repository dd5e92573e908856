"""The contacts batch API: read, create, update, upsert and archive, up to 100 inputs a call.

HubSpot's batch writes are all-or-nothing: the first invalid input or duplicate fails the whole
call and nothing is written. Giving *every* input a unique ``objectWriteTraceId`` turns on
multi-status: the valid inputs are written and the call answers 207 with one error per failed
input. Reads and unknown ids answer 207 in either mode. A PARTIAL fault fails a seeded share of
the inputs the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crmbridge.testing.sandbox import Emulator, FaultKind
from crmbridge_hubspot.sandbox.catalog import iso_ms
from crmbridge_hubspot.sandbox.errors import HubSpotError, json_response, validation_error
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.state import Contact, email_key
from crmbridge_hubspot.sandbox.wire import query_bool, read_object, string_list, token_of

BATCH = "/crm/v3/objects/contacts/batch"
BATCH_MAX = 100
NOT_FOUND_MESSAGE = (
    "Could not get some CONTACT objects, they may be deleted or not exist. "
    "Check that ids are valid."
)


@dataclass
class _Step:
    """One input of a batch write, resolved before anything is written."""

    index: int
    trace_id: str | None
    values: dict[str, str]
    contact: Contact | None = None
    create_key: tuple[str, str] | None = None


class _Outcome:
    """The results and per-input errors of one batch call."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.started = portal.now_ms()
        self.results: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def fail(self, error: HubSpotError, step: _Step | None = None, **context: list[str]) -> None:
        """Record one error entry, with the input's trace id in its context."""
        if step is not None and step.trace_id:
            context = {**context, "objectWriteTraceId": [step.trace_id]}
        self.errors.append(error.batch_error(context))

    def response(self, success_status: int) -> web.Response:
        """``success_status`` when nothing failed, else 207 with ``errors``."""
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": self.results,
            "startedAt": iso_ms(self.started),
            "completedAt": iso_ms(self.portal.now_ms()),
        }
        if self.errors:
            body["numErrors"] = len(self.errors)
            body["errors"] = self.errors
        return json_response(body, 207 if self.errors else success_status)


class BatchApi:
    """``/crm/v3/objects/contacts/batch/{read,create,update,upsert,archive}``."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def add_routes(self, app: web.Application) -> None:
        """Add the batch routes."""
        app.router.add_post(BATCH + "/read", self.read)
        app.router.add_post(BATCH + "/create", self.create)
        app.router.add_post(BATCH + "/update", self.update)
        app.router.add_post(BATCH + "/upsert", self.upsert)
        app.router.add_post(BATCH + "/archive", self.archive)

    # -- shared ----------------------------------------------------------------------------------

    async def _inputs(self, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = await read_object(request)
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise validation_error("inputs must be a list of objects")
        if len(inputs) > BATCH_MAX:
            raise validation_error(
                f"The number of inputs ({len(inputs)}) exceeds the limit of {BATCH_MAX}"
            )
        Emulator.count_records(request, records_in=len(inputs))
        return body, inputs

    def _check_id_property(self, id_property: str | None, *, allow_email: bool) -> None:
        if id_property in (None, "hs_object_id") or (id_property == "email" and allow_email):
            return
        prop = self.portal.catalog.get(id_property)
        if id_property == "email" or prop is None or not prop.has_unique_value:
            raise validation_error(
                f"Unable to perform update/upsert by non-unique 0-1 property {id_property}; use "
                "the record id, or a property with hasUniqueValue"
            )

    @staticmethod
    def _failed_by_fault(request: web.Request, count: int) -> set[int]:
        fault = Emulator.fault_of(request)
        if fault is None or fault.kind is not FaultKind.PARTIAL:
            return set()
        return fault.failed_indexes(count)

    @staticmethod
    def _fault_error(request: web.Request) -> HubSpotError:
        fault = Emulator.fault_of(request)
        category = (fault.rule.code if fault else None) or "INTERNAL_ERROR"
        return HubSpotError(500, category, "The write of this record failed; retry it.")

    @staticmethod
    def _multi_status(inputs: Sequence[Mapping[str, Any]]) -> bool:
        traces = [i.get("objectWriteTraceId") for i in inputs]
        return bool(traces) and all(isinstance(t, str) and t for t in traces)

    @staticmethod
    def _duplicates(keys: Sequence[str]) -> list[str]:
        seen: set[str] = set()
        dupes: list[str] = []
        for key in keys:
            if key in seen and key not in dupes:
                dupes.append(key)
            seen.add(key)
        return dupes

    def _apply(
        self,
        request: web.Request,
        inputs: list[dict[str, Any]],
        resolve: Callable[[int, dict[str, Any]], _Step],
        outcome: _Outcome,
    ) -> list[_Step]:
        """Resolve every input, then either fail the call or return the steps to write."""
        multi = self._multi_status(inputs)
        failed = self._failed_by_fault(request, len(inputs))
        steps: list[_Step] = []
        for i, item in enumerate(inputs):
            trace = item.get("objectWriteTraceId") if multi else None
            try:
                step = resolve(i, item)
            except HubSpotError as error:
                if not multi:
                    raise
                outcome.fail(error, _Step(i, trace, {}))
                continue
            step.trace_id = trace
            if i in failed:
                outcome.fail(self._fault_error(request), step)
                continue
            steps.append(step)
        return steps

    def _result(self, contact: Contact, step: _Step, **extra: Any) -> dict[str, Any]:
        body = self.portal.public(contact, list(step.values))
        if step.trace_id:
            body["objectWriteTraceId"] = step.trace_id
        body.update(extra)
        return body

    # -- read ------------------------------------------------------------------------------------

    async def read(self, request: web.Request) -> web.Response:
        """Contacts by id, email or a unique property; unknown ones are one 207 error."""
        body, inputs = await self._inputs(request)
        id_property = body.get("idProperty") or None
        self._check_id_property(id_property, allow_email=True)
        properties = string_list(body.get("properties"), "properties")
        history = string_list(body.get("propertiesWithHistory"), "propertiesWithHistory")
        archived = query_bool(request, "archived")
        outcome = _Outcome(self.portal)
        missing: list[str] = []
        seen: set[int] = set()
        failed = self._failed_by_fault(request, len(inputs))
        for i, item in enumerate(inputs):
            raw = str(item.get("id", ""))
            if i in failed:
                outcome.fail(self._fault_error(request), None, ids=[raw])
                continue
            contact = self.portal.store.find(raw, id_property, archived=archived)
            if contact is None:
                missing.append(raw)
            elif contact.id not in seen:
                seen.add(contact.id)
                outcome.results.append(
                    self.portal.public(contact, properties or None, history=history)
                )
        if missing:
            outcome.fail(
                HubSpotError(404, "OBJECT_NOT_FOUND", NOT_FOUND_MESSAGE), None, ids=missing
            )
        Emulator.count_records(request, records_in=len(inputs), records_out=len(outcome.results))
        return outcome.response(200)

    # -- create ----------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        """201 with every contact, or the whole call's 409/400; 207 under multi-status."""
        _body, inputs = await self._inputs(request)
        outcome = _Outcome(self.portal)
        batch_emails: dict[str, int] = {}

        def resolve(i: int, item: dict[str, Any]) -> _Step:
            values = self.portal.clean(item.get("properties") or {})
            conflict = self.portal.store.conflict(values)
            if conflict is not None:
                raise conflict
            email = values.get("email")
            if email:
                first = batch_emails.setdefault(email_key(email), i)
                if first != i:
                    raise HubSpotError(
                        409,
                        "CONFLICT",
                        f"Duplicate email {email} in batch inputs {first} and {i}",
                    )
            return _Step(i, None, values)

        steps = self._apply(request, inputs, resolve, outcome)
        source = self.portal.integration(token_of(request))
        for step in steps:
            contact = self.portal.store.create(step.values, source)
            outcome.results.append(self._result(contact, step))
        Emulator.count_records(request, records_in=len(inputs), records_out=len(outcome.results))
        return outcome.response(201)

    # -- update ----------------------------------------------------------------------------------

    async def update(self, request: web.Request) -> web.Response:
        """200 with every contact; unknown ids → 207; by email → 400 (as HubSpot)."""
        body, inputs = await self._inputs(request)
        default_id_property = body.get("idProperty") or None
        for item in inputs:
            self._check_id_property(
                item.get("idProperty") or default_id_property, allow_email=False
            )
        ids = [str(item.get("id", "")) for item in inputs]
        dupes = self._duplicates(ids)
        if dupes:
            raise validation_error(f"Duplicate IDs found in batch input: {dupes}")
        outcome = _Outcome(self.portal)
        missing: list[str] = []

        def resolve(i: int, item: dict[str, Any]) -> _Step:
            values = self.portal.clean(item.get("properties") or {})
            id_property = item.get("idProperty") or default_id_property
            contact = self.portal.store.find(ids[i], id_property)
            if contact is not None:
                conflict = self.portal.store.conflict(values, exclude=contact.id)
                if conflict is not None:
                    raise conflict
            return _Step(i, None, values, contact)

        steps = self._apply(request, inputs, resolve, outcome)
        source = self.portal.integration(token_of(request))
        for step in steps:
            if step.contact is None:
                missing.append(ids[step.index])
                continue
            self.portal.store.update(step.contact, step.values, source)
            outcome.results.append(self._result(step.contact, step))
        if missing:
            outcome.fail(
                HubSpotError(404, "OBJECT_NOT_FOUND", NOT_FOUND_MESSAGE), None, ids=missing
            )
        Emulator.count_records(request, records_in=len(inputs), records_out=len(outcome.results))
        return outcome.response(200)

    # -- upsert ----------------------------------------------------------------------------------

    async def upsert(self, request: web.Request) -> web.Response:
        """Create or update by email or a unique property; each result says whether it is new."""
        body, inputs = await self._inputs(request)
        default_id_property = body.get("idProperty") or None
        for item in inputs:
            id_property = item.get("idProperty") or default_id_property
            if not id_property or id_property == "hs_object_id":
                raise validation_error(
                    "idProperty is required for upsert and must be email or a property with "
                    "hasUniqueValue"
                )
            self._check_id_property(id_property, allow_email=True)
        keys = [
            email_key(str(item.get("id", "")))
            if (item.get("idProperty") or default_id_property) == "email"
            else str(item.get("id", ""))
            for item in inputs
        ]
        dupes = self._duplicates(keys)
        if dupes:
            raise validation_error(f"Duplicate IDs found in batch input: {dupes}")
        outcome = _Outcome(self.portal)

        def resolve(i: int, item: dict[str, Any]) -> _Step:
            id_property = str(item.get("idProperty") or default_id_property)
            raw = {**(item.get("properties") or {}), id_property: item.get("id", "")}
            values = self.portal.clean(raw)
            contact = self.portal.store.find(values.get(id_property, ""), id_property)
            conflict = self.portal.store.conflict(
                values, exclude=contact.id if contact is not None else None
            )
            if conflict is not None:
                raise conflict
            return _Step(i, None, values, contact)

        steps = self._apply(request, inputs, resolve, outcome)
        source = self.portal.integration(token_of(request))
        for step in steps:
            if step.contact is None:
                contact = self.portal.store.create(step.values, source)
                outcome.results.append(self._result(contact, step, new=True))
            else:
                self.portal.store.update(step.contact, step.values, source)
                outcome.results.append(self._result(step.contact, step, new=False))
        Emulator.count_records(request, records_in=len(inputs), records_out=len(outcome.results))
        return outcome.response(200)

    # -- archive ---------------------------------------------------------------------------------

    async def archive(self, request: web.Request) -> web.Response:
        """204; ids that do not exist are ignored, as HubSpot does."""
        _body, inputs = await self._inputs(request)
        for item in inputs:
            contact = self.portal.store.get(str(item.get("id", "")))
            if contact is not None:
                self.portal.store.archive(contact)
        return web.Response(status=204)
