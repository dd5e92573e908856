"""Writing Leads: handoffs as upserts on crmbridge's external id, outcomes onto existing Leads.

Handoffs (:meth:`LeadWriter.push`) go out as sObject Collections upserts
(``PATCH composite/sobjects/Lead/CrmBridge_Id__c``, 200 records a call, ``allOrNone=false``), or,
from ``bulk_threshold`` records on, as one Bulk API 2.0 upsert job. Every write gets its own
result, in order; a record Salesforce refuses is a failed result naming the lead, the field and
Salesforce's code, and the rest of the batch goes on (one it could not write just now, such as
``UNABLE_TO_LOCK_ROW``, is a :class:`~crmbridge.TransientRecordError`, written again at the next
cycle). Two refusals are answered instead:

* ``DUPLICATES_DETECTED``: a lead with the same email exists (made by a person or another tool)
  and the org's duplicate rule blocks a second one. When the rule names exactly one Lead,
  crmbridge adopts it: one composite update for the batch's duplicates writes the external id and
  the fields crmbridge may write there (never the ones the definition says sales owns, never its
  status or owner);
* ``CANNOT_UPDATE_CONVERTED_LEAD``: a converted lead is never updated; its contact and
  opportunity are the records to follow, and the write is reported as skipped.

Outcomes (:meth:`LeadWriter.update`, the marketing side) are composite updates by Id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crmbridge import (
    FatalError,
    LeadDefinition,
    LeadWrite,
    MappingError,
    OutcomeKind,
    SystemMapping,
    TransientRecordError,
    WriteRejected,
    WriteResult,
    normalize_email,
)
from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.connector.bulk import BulkIngest, BulkRow, csv_cell, json_value
from crmbridge_salesforce.connector.errors import PLUGIN, SYSTEM, TRANSIENT_CODES
from crmbridge_salesforce.connector.owners import OwnerDirectory
from crmbridge_salesforce.connector.records import (
    REJECTION_REASONS,
    Conversion,
    ConvertedLeads,
    chunks,
)
from crmbridge_salesforce.connector.schema import FieldInfo, FieldSpec, OrgSchema
from crmbridge_salesforce.connector.session import SalesforceSession
from crmbridge_salesforce.connector.settings import SalesforceSettings

LEAD = "Lead"
COLLECTION_SIZE = 200
"""The most records one sObject Collections call takes."""
CONVERTED = "CANNOT_UPDATE_CONVERTED_LEAD"
DUPLICATES = "DUPLICATES_DETECTED"
ELLIPSIS = "…"


@dataclass
class _Item:
    """One write on its way: its position in the batch, and the native record to send."""

    index: int
    write: LeadWrite
    record: dict[str, Any]


class LeadWriter:
    """Lead upserts and updates, with per-record results."""

    def __init__(
        self,
        session: SalesforceSession,
        schema: OrgSchema,
        definition: LeadDefinition,
        mapping: SystemMapping,
        settings: SalesforceSettings,
        owners: OwnerDirectory,
        converted: ConvertedLeads,
        specs: Sequence[FieldSpec],
        log: logging.Logger,
    ) -> None:
        self.session = session
        self.schema = schema
        self.definition = definition
        self.mapping = mapping
        self.settings = settings
        self.owners = owners
        self.converted = converted
        self.log = log
        self.key_field = settings.external_id_field
        self.specs = {s.annotation: s for s in specs}
        self.bulk = BulkIngest(session, LEAD, self.key_field, log)
        self._skipped_annotations: set[str] = set()

    # -- handoffs --------------------------------------------------------------------------------

    def push(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Upsert ``writes`` on the external id (updates by Id for writes that may not create);
        one result per write, in order."""
        results: list[WriteResult | None] = [None] * len(writes)
        self._require_fields()
        self.owners.resolve(w.owner for w in writes if w.owner)
        items: list[_Item] = []
        for i, write in enumerate(writes):
            conversion = self.converted.find(write.native_id, write.crmbridge_id)
            if conversion is not None:
                results[i] = _skipped(write, conversion)
                continue
            try:
                items.append(_Item(i, write, self._handoff_record(write)))
            except WriteRejected as exc:
                results[i] = WriteResult(write.key, ok=False, native_id=write.native_id, error=exc)
        # A write that may not create (an update of a lead crmbridge linked) goes by Id: an
        # upsert would make a new lead of one that was deleted in Salesforce meanwhile. So does
        # a handoff sent again whose lead exists already.
        for item in items:
            if not item.write.create and item.write.native_id:
                item.record["Id"] = item.write.native_id
        self._find_sent_before(items)
        updates = [i for i in items if "Id" in i.record]
        upserts = [i for i in items if "Id" not in i.record]
        for part in chunks(updates, COLLECTION_SIZE):
            self._update_collection(list(part), results)
        if len(upserts) >= self.settings.bulk_threshold:
            self._push_bulk(upserts, results)
        else:
            for part in chunks(upserts, COLLECTION_SIZE):
                self._push_collection(list(part), results)
        return _complete(writes, results)

    def _find_sent_before(self, items: list[_Item]) -> None:
        """Handoffs sent before whose answer crmbridge did not record (it stopped in between):
        the leads they made (or adopted), found by crmbridge id, are written by Id as an adopted
        lead is — never the status, the owner, the email or a field sales owns, which are sales'
        from the moment the lead exists."""
        again = [i for i in items if i.write.may_exist and not i.write.native_id]
        for part in soql.in_chunks(again, lambda i: (i.write.crmbridge_id,)):
            query = soql.select(
                LEAD,
                ["Id", self.key_field],
                [soql.is_in(self.key_field, [i.write.crmbridge_id for i in part])],
            )
            answer = self.session.query_all("query Lead (handoffs sent before)", query)
            found = {str(r[self.key_field]): str(r["Id"]) for r in answer.get("records") or []}
            for item in part:
                lead_id = found.get(item.write.crmbridge_id)
                if lead_id is None:
                    continue
                item.record.clear()
                item.record.update({"Id": lead_id, **self._adoption_record(item.write)})

    def _push_collection(self, items: list[_Item], results: list[WriteResult | None]) -> None:
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": LEAD}, **item.record} for item in items],
        }
        path = f"composite/sobjects/{LEAD}/{self.key_field}"
        answer = self.session.restful(f"PATCH {path} ({len(items)} leads)", path, "PATCH", body)
        duplicates: list[tuple[_Item, str]] = []
        converted: list[_Item] = []
        for item, outcome in zip(items, _answers(answer, len(items)), strict=True):
            if outcome.get("success"):
                results[item.index] = WriteResult(
                    item.write.key,
                    ok=True,
                    native_id=str(outcome.get("id")),
                    created=_created(outcome.get("created")),
                )
                continue
            error = _first_error(outcome)
            code = str(error.get("statusCode", ""))
            matches = _duplicate_leads(error) if code == DUPLICATES else []
            if code == CONVERTED:
                converted.append(item)
            elif len(matches) == 1:
                duplicates.append((item, matches[0]))
            else:
                results[item.index] = self._refused(item.write, error, matches=matches)
        self._adopt(duplicates, results)
        self._skip_converted(converted, results)

    def _push_bulk(self, items: list[_Item], results: list[WriteResult | None]) -> None:
        rows = [{k: csv_cell(v) for k, v in item.record.items()} for item in items]
        answered = self.bulk.upsert(rows)
        duplicates: list[_Item] = []
        converted: list[_Item] = []
        for item in items:
            row = answered.get(item.write.crmbridge_id)
            if row is None:
                row = BulkRow(
                    item.write.crmbridge_id, False, None, None, "NOT_REPORTED",
                    "the Bulk API job did not report this record",
                )  # fmt: skip
            if row.ok:
                results[item.index] = WriteResult(
                    item.write.key, ok=True, native_id=row.record_id, created=row.created
                )
            elif row.code == DUPLICATES:
                duplicates.append(item)
            elif row.code == CONVERTED:
                converted.append(item)
            else:
                error = {"statusCode": row.code, "message": row.message, "fields": row.fields}
                results[item.index] = self._refused(item.write, error)
        self._adopt(self._match_by_email(duplicates, results), results)
        self._skip_converted(converted, results)

    def _match_by_email(
        self, items: list[_Item], results: list[WriteResult | None]
    ) -> list[tuple[_Item, str]]:
        """The one live Lead with each item's email (Bulk API results do not name it)."""
        if not items:
            return []
        email_field = self.mapping.fields.get("email", "Email")
        emails = sorted({normalize_email(i.write.email) for i in items})
        found: dict[str, list[str]] = {}
        for part in soql.in_chunks(emails, most=COLLECTION_SIZE):
            query = soql.select(LEAD, ["Id", email_field], [soql.is_in(email_field, part)])
            answer = self.session.query_all("query Lead (duplicates)", query)
            for record in answer.get("records") or []:
                key = normalize_email(record.get(email_field))
                found.setdefault(key, []).append(str(record["Id"]))
        pairs = []
        for item in items:
            ids = found.get(normalize_email(item.write.email), [])
            if len(ids) == 1:
                pairs.append((item, ids[0]))
            else:
                error = {"statusCode": DUPLICATES, "message": "Use one of these records?"}
                results[item.index] = self._refused(item.write, error, matches=ids)
        return pairs

    # -- duplicates and converted leads ------------------------------------------------------------

    def _adopt(self, pairs: list[tuple[_Item, str]], results: list[WriteResult | None]) -> None:
        """Take over the existing leads the duplicate rule named: write the external id and the
        fields crmbridge may write there, by Id."""
        if not pairs:
            return
        converted: list[_Item] = []
        for part in chunks(pairs, COLLECTION_SIZE):
            records = [
                {"attributes": {"type": LEAD}, "Id": lead_id, **self._adoption_record(item.write)}
                for item, lead_id in part
            ]
            answer = self.session.restful(
                f"PATCH composite/sobjects ({len(records)} duplicate leads adopted)",
                "composite/sobjects",
                "PATCH",
                {"allOrNone": False, "records": records},
            )
            for (item, lead_id), outcome in zip(part, _answers(answer, len(part)), strict=True):
                if outcome.get("success"):
                    self.log.info(
                        "salesforce: lead %s existed (%s); crmbridge adopted it",
                        item.write.email,
                        lead_id,
                    )
                    results[item.index] = WriteResult(
                        item.write.key, ok=True, native_id=lead_id, created=False
                    )
                    continue
                error = _first_error(outcome)
                if error.get("statusCode") == CONVERTED:
                    converted.append(_Item(item.index, item.write, {"Id": lead_id}))
                else:
                    results[item.index] = self._refused(item.write, error)
        self._skip_converted(converted, results)

    def _adoption_record(self, write: LeadWrite) -> dict[str, Any]:
        email = self.mapping.fields.get("email")
        fields = {
            f: v
            for f, v in write.fields.items()
            if f != "email" and not self.definition.owned_by(f, self.mapping)
        }
        record = {k: json_value(v) for k, v in self.mapping.to_native(fields).items() if k != email}
        record.update(self._annotations(write))
        record[self.key_field] = write.crmbridge_id
        return record

    def _skip_converted(self, items: list[_Item], results: list[WriteResult | None]) -> None:
        """Report writes to converted leads as skipped, naming what each lead became."""
        if not items:
            return
        unknown = [i for i in items if self._conversion(i) is None]
        if unknown:
            self._look_up_conversions(unknown)
        for item in items:
            conversion = self._conversion(item) or Conversion(
                str(item.record.get("Id") or item.write.native_id or "?"), None, None
            )
            results[item.index] = _skipped(item.write, conversion)

    def _conversion(self, item: _Item) -> Conversion | None:
        return self.converted.find(
            str(item.record.get("Id") or item.write.native_id or ""), item.write.crmbridge_id
        )

    def _look_up_conversions(self, items: list[_Item]) -> None:
        lead = self.schema.lead
        fields = lead.existing(
            ["Id", self.key_field, "IsConverted", "ConvertedContactId",
             "ConvertedOpportunityId", "ConvertedAccountId"]
        )  # fmt: skip
        for part in soql.in_chunks(items, self._lookup_keys):
            keys = [i.write.crmbridge_id for i in part]
            ids = [v for i in part for v in self._lookup_keys(i)[1:]]
            conditions = [soql.is_in(self.key_field, keys)]
            if ids:
                conditions.append(soql.is_in("Id", ids))
            query = soql.select(LEAD, fields, [soql.any_of(*conditions)])
            answer = self.session.query_all("query Lead (converted)", query)
            for record in answer.get("records") or []:
                self.converted.note(record, self.key_field)

    @staticmethod
    def _lookup_keys(item: _Item) -> list[str]:
        """The crmbridge id of an item's write, then its Salesforce id when it has one."""
        lead_id = str(item.record.get("Id") or item.write.native_id)
        return [item.write.crmbridge_id, *([lead_id] if lead_id and lead_id != "None" else [])]

    # -- outcomes on existing leads (marketing side) -----------------------------------------------

    def update(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Write stage, outcome and crmbridge's fields onto existing Leads, by Id."""
        results: list[WriteResult | None] = [None] * len(writes)
        self._require_fields()
        items: list[_Item] = []
        for i, write in enumerate(writes):
            conversion = self.converted.find(write.native_id, write.crmbridge_id)
            if conversion is not None:
                results[i] = _skipped(write, conversion)
            elif not write.native_id:
                error = WriteRejected(
                    f"lead {write.email} has no Salesforce id to update",
                    code="MISSING_ID", **_where(write, "Id"),
                )  # fmt: skip
                results[i] = WriteResult(write.key, ok=False, error=error)
            else:
                try:
                    items.append(_Item(i, write, self._outcome_record(write)))
                except WriteRejected as exc:
                    results[i] = WriteResult(
                        write.key, ok=False, native_id=write.native_id, error=exc
                    )
        for part in chunks(items, COLLECTION_SIZE):
            self._update_collection(list(part), results)
        return _complete(writes, results)

    def _update_collection(self, items: list[_Item], results: list[WriteResult | None]) -> None:
        """Update existing Leads by Id (records carry ``Id``); never creates one."""
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": LEAD}, **item.record} for item in items],
        }
        answer = self.session.restful(
            f"PATCH composite/sobjects ({len(items)} leads)", "composite/sobjects", "PATCH", body
        )
        converted: list[_Item] = []
        for item, outcome in zip(items, _answers(answer, len(items)), strict=True):
            error = _first_error(outcome)
            if outcome.get("success"):
                results[item.index] = WriteResult(
                    item.write.key,
                    ok=True,
                    native_id=item.write.native_id or str(item.record["Id"]),
                    created=False,
                )
            elif error.get("statusCode") == CONVERTED:
                converted.append(item)
            else:
                results[item.index] = self._refused(item.write, error)
        self._skip_converted(converted, results)

    def _outcome_record(self, write: LeadWrite) -> dict[str, Any]:
        try:
            record = {k: json_value(v) for k, v in self.mapping.to_native(write.fields).items()}
            status = self._status(write)
        except MappingError as exc:
            raise _mapping_refused(write, exc) from exc
        if status is not None:
            record["Status"] = status
        reason = self._rejection_reason(write)
        if reason is not None:
            record[REJECTION_REASONS.split(".", 1)[1]] = reason
        record.update(self._annotations(write))
        if self.schema.lead.has(self.key_field) and "crmbridge_id" in write.annotations:
            record[self.key_field] = write.crmbridge_id
        record["Id"] = write.native_id
        return record

    def _status(self, write: LeadWrite) -> str | None:
        """The Lead Status showing the verdict (else the stage), if the definition spells one.

        A status that means "converted" is left alone: only converting the lead sets it.
        """
        wanted: list[tuple[str | None, str, str]] = []
        if write.outcome is not None:
            wanted.append((self.mapping.outcome_field, "outcome", str(write.outcome)))
        if write.stage is not None:
            wanted.append((self.mapping.stage_field, "stage", write.stage))
        for key, kind, shared in wanted:
            if key is None or key not in self.mapping.picklists:
                continue
            picklist = self.mapping.picklist(key)
            if not picklist.can_write(kind, shared):
                continue
            native = picklist.write(kind, shared)
            if picklist.read(native).outcome is OutcomeKind.CONVERTED:
                return None
            return native
        return None

    def _rejection_reason(self, write: LeadWrite) -> str | None:
        given = write.annotations.get("outcome_reason")
        if (
            write.outcome is not OutcomeKind.REJECTED
            or not given
            or REJECTION_REASONS not in self.mapping.picklists
            or not self.schema.lead.has(REJECTION_REASONS.split(".", 1)[1])
        ):
            return None
        picklist = self.mapping.picklist(REJECTION_REASONS)
        for code, spec in self.definition.reasons.items():
            if str(given) in (code, spec.label) and picklist.can_write("reason", code):
                return picklist.write("reason", code)
        return None

    # -- building records ----------------------------------------------------------------------

    def _handoff_record(self, write: LeadWrite) -> dict[str, Any]:
        try:
            record = {k: json_value(v) for k, v in self.mapping.to_native(write.fields).items()}
            # Status only on a lead crmbridge has not written yet: afterwards it is sales'.
            if write.stage and write.native_id is None and self.mapping.stage_field:
                record["Status"] = self.mapping.stage_to_native(write.stage)
        except MappingError as exc:
            raise _mapping_refused(write, exc) from exc
        email = self.mapping.fields.get("email")
        if email and write.native_id is None:
            record.setdefault(email, write.email)
        if write.owner:
            owner = self.owners.id_of(write.owner)
            if owner is None:
                raise WriteRejected(
                    f"lead {write.email}: {self.owners.why_not(write.owner)}",
                    code="OWNER_NOT_FOUND",
                    hint="route to a user's username or email, a queue's name, or an id",
                    **_where(write, "OwnerId"),
                )
            record["OwnerId"] = owner
        record.update(self._annotations(write))
        record[self.key_field] = write.crmbridge_id
        return record

    def _annotations(self, write: LeadWrite) -> dict[str, Any]:
        """crmbridge's fields for the write's annotations, cut to the fields' lengths."""
        lead = self.schema.lead
        out: dict[str, Any] = {}
        for annotation, raw in write.annotations.items():
            spec = self.specs.get(annotation)
            if spec is None or annotation == "crmbridge_id":
                continue
            info = lead.get(spec.name)
            if info is None:
                self._skip_annotation(spec)
                continue
            out[info.name] = _cell(info, raw)
        return out

    def _skip_annotation(self, spec: FieldSpec) -> None:
        if spec.annotation not in self._skipped_annotations:
            self._skipped_annotations.add(spec.annotation)
            self.log.warning(
                "salesforce: not writing %s: the org has no %s (%s)",
                spec.annotation,
                f"Lead.{spec.name}",
                spec.instruction(),
            )

    def _require_fields(self) -> None:
        """Stop before writing when a field every write needs is missing (an admin's task)."""
        lead = self.schema.lead
        missing = [s for s in self.specs.values() if not s.marketing and not lead.has(s.name)]
        if missing:
            raise FatalError(
                "the org lacks crmbridge's Lead fields "
                + ", ".join(f"Lead.{s.name}" for s in missing),
                plugin=PLUGIN,
                system=SYSTEM,
                hint="an admin adds: " + "; ".join(s.instruction() for s in missing),
            )

    def _refused(
        self, write: LeadWrite, error: Mapping[str, Any], *, matches: Sequence[str] = ()
    ) -> WriteResult:
        code = str(error.get("statusCode") or "UNKNOWN")
        fields = [str(f) for f in error.get("fields") or ()]
        message = str(error.get("message") or "").strip()
        field = fields[0] if fields else None
        on = f" on {', '.join(f'Lead.{f}' for f in fields)}" if fields else ""
        if code == DUPLICATES:
            field = field or self.mapping.fields.get("email", "Email")
            on = f" on Lead.{field}"
            message += (
                f" (the org's duplicate rule matches {', '.join(matches)}; crmbridge adopts a "
                "lead only when exactly one Lead matches)"
                if matches
                else " (no single matching Lead to adopt)"
            )
        # A lock or an internal error on one record: the same write goes through later.
        kind = TransientRecordError if code in TRANSIENT_CODES else WriteRejected
        rejected = kind(
            f"Salesforce refused lead {write.email} (crmbridge id {write.crmbridge_id}){on}: "
            f"{code}: {message}",
            code=code,
            rule=code,
            **_where(write, field),
        )
        return WriteResult(write.key, ok=False, native_id=write.native_id, error=rejected)


# -- helpers -------------------------------------------------------------------------------------


def _where(write: LeadWrite, field: str | None) -> dict[str, str]:
    where = {"plugin": PLUGIN, "system": SYSTEM, "record": write.email}
    if field:
        where["field"] = field
    return where


def _mapping_refused(write: LeadWrite, exc: MappingError) -> WriteRejected:
    extra = {"hint": exc.hint} if exc.hint else {}
    return WriteRejected(
        f"lead {write.email} (crmbridge id {write.crmbridge_id}) cannot be written: {exc.message}",
        code="MAPPING_ERROR",
        rule=exc.rule or "picklist_mapping",
        **_where(write, exc.field),
        **extra,
    )


def _cell(info: FieldInfo, raw: Any) -> Any:
    if raw is None:
        # A checkbox cannot be null; "not breached" is what no value means.
        return False if info.type == "boolean" else None
    if isinstance(raw, OutcomeKind):
        raw = str(raw)
    value = json_value(raw)
    if isinstance(value, str) and info.length and len(value) > info.length:
        value = value[: info.length - 1] + ELLIPSIS
    return value


def _answers(answer: Any, count: int) -> list[Mapping[str, Any]]:
    """The per-record results of a collection call, one per record sent."""
    results = [r if isinstance(r, Mapping) else {} for r in (answer or [])]
    if len(results) != count:
        raise FatalError(
            f"Salesforce answered {len(results)} results for {count} records",
            plugin=PLUGIN,
            system=SYSTEM,
        )
    return results


def _first_error(outcome: Mapping[str, Any]) -> Mapping[str, Any]:
    errors = outcome.get("errors") or [{}]
    first = errors[0]
    return first if isinstance(first, Mapping) else {"message": str(first)}


def _duplicate_leads(error: Mapping[str, Any]) -> list[str]:
    """The Lead ids a ``DUPLICATES_DETECTED`` error's ``duplicateResult`` names."""
    result = error.get("duplicateResult") or {}
    ids: list[str] = []
    for match in result.get("matchResults") or ():
        for found in match.get("matchRecords") or ():
            record = found.get("record") or {}
            kind = (record.get("attributes") or {}).get("type") or match.get("entityType")
            if kind == LEAD and record.get("Id") and record["Id"] not in ids:
                ids.append(str(record["Id"]))
    return ids


def _created(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _skipped(write: LeadWrite, conversion: Conversion) -> WriteResult:
    return WriteResult(
        write.key, ok=True, native_id=conversion.lead_id, created=False,
        skipped=conversion.describe(),
    )  # fmt: skip


def _complete(writes: Sequence[LeadWrite], results: list[WriteResult | None]) -> list[WriteResult]:
    """Every result filled in (a gap would be a bug: it is reported, never dropped)."""
    out = []
    for write, result in zip(writes, results, strict=True):
        if result is None:
            error = WriteRejected(
                f"lead {write.email}: no result was recorded for this write",
                code="NO_RESULT",
                **_where(write, None),
            )
            result = WriteResult(write.key, ok=False, native_id=write.native_id, error=error)
        out.append(result)
    return out
