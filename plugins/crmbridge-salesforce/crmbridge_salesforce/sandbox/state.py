"""The org: records per object, their indexes, and the rules Salesforce applies when saving them.

Every write goes through :meth:`Org.insert`, :meth:`Org.update` or :meth:`Org.delete`, which
validate like Salesforce (required fields, lengths, restricted picklists, references, unique and
duplicate rules, converted leads) and keep the audit fields (``CreatedDate``, ``LastModifiedById``,
``SystemModstamp`` ...) from the sandbox clock. A :meth:`Org.transaction` records an undo log so an
``allOrNone`` request can roll back everything it did.

All state is touched from the sandbox's event loop thread only, so nothing here locks.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crmbridge.testing.sandbox.clock import SandboxClock
from crmbridge_salesforce.sandbox.config import SandboxConfig
from crmbridge_salesforce.sandbox.describe import FieldDef, ObjectDef, Schema
from crmbridge_salesforce.sandbox.errors import RecordError
from crmbridge_salesforce.sandbox.ids import IdFactory, canonical_id, make_id, object_of_id
from crmbridge_salesforce.sandbox.indexes import KeyIndex, Record, TimeIndex, normalise_key
from crmbridge_salesforce.sandbox.values import (
    DECIMAL_TYPES,
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    ValueTypeError,
    from_csv,
    from_json,
    stamp,
)

TIME_INDEXED = ("SystemModstamp", "LastModifiedDate")
EMAIL_INDEXED = ("Lead", "Contact")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")
_AUDIT = frozenset(
    {"CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp"}
)
_READONLY_MESSAGE = (
    "Unable to create/update fields: {names}. Please check the security settings of this field "
    "and verify that it is read/write for your role or profile."
)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk load.

    Loading tens of thousands of records allocates a dict each; the collector would rescan the
    growing heap again and again (a third of a bulk job's time). Records hold no cycles, so
    nothing is lost by collecting once afterwards instead.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def valid_email(value: str) -> bool:
    """Whether Salesforce would accept ``value`` in an email field."""
    return _EMAIL.match(value) is not None


class AmbiguousMatch(Exception):
    """An external id matched more than one record (REST answers 300 with their URLs)."""

    def __init__(self, object_name: str, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} {object_name} records match")
        self.object_name = object_name
        self.ids = ids


@dataclass
class ObjectStore:
    """The records of one object (deleted ones included, with ``IsDeleted``) and their indexes."""

    name: str
    records: dict[str, Record] = field(default_factory=dict)
    time_indexes: dict[str, TimeIndex] = field(default_factory=dict)
    key_indexes: dict[str, KeyIndex] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)

    def rebuild(self) -> None:
        """Rebuild every index from the records (after a restore)."""
        for index in self.time_indexes.values():
            index.rebuild(self.records)
        for key_index in self.key_indexes.values():
            key_index.rebuild(self.records)


@dataclass(frozen=True)
class SaveOptions:
    """How a write is checked: ``validate=False`` is for seeding, ``system`` for Salesforce itself
    (lead conversion), ``allow_duplicates`` for the duplicate-rule header ``allowSave=true``."""

    validate: bool = True
    system: bool = False
    allow_duplicates: bool = False


STRICT = SaveOptions()
SEEDING = SaveOptions(validate=False, system=True, allow_duplicates=True)


class Org:
    """One Salesforce org in memory."""

    def __init__(self, schema: Schema, clock: SandboxClock, config: SandboxConfig) -> None:
        self.schema = schema
        self.clock = clock
        self.config = config
        self.ids = IdFactory()
        self.org_id = make_id("00D", 1)
        self.stores: dict[str, ObjectStore] = {}
        for name, obj in schema.objects.items():
            self.stores[name] = self._new_store(obj)
        self._undo: list[Callable[[], None]] | None = None
        self._last_stamp = ""
        self._stamp_second = -1
        self._stamp_text = ""
        self.user_ids: dict[str, str] = {}
        self.queue_ids: dict[str, str] = {}
        self._sync_users()

    def _new_store(self, obj: ObjectDef) -> ObjectStore:
        store = ObjectStore(obj.name)
        if "SystemModstamp" in obj.fields:
            store.time_indexes = {name: TimeIndex(name) for name in TIME_INDEXED}
        if obj.name in EMAIL_INDEXED:
            store.key_indexes["Email"] = KeyIndex("Email")
        for f in obj.fields.values():
            if f.external_id or f.unique:
                store.key_indexes[f.name] = KeyIndex(f.name)
        return store

    def _sync_users(self) -> None:
        """Create the configured users and queues that the org does not have yet."""
        users = self.stores["User"]
        by_username = {r["Username"]: rid for rid, r in users.records.items()}
        now = self.now()
        for spec in self.config.users:
            rid = by_username.get(spec.username)
            if rid is None:
                rid = self.ids.next_for("User")
                self._put(users, rid, {
                    "Id": rid, "Username": spec.username, "Name": spec.name,
                    "Email": spec.email, "IsActive": spec.active, **self._audit(now, rid),
                })  # fmt: skip
            self.user_ids[spec.username] = rid
        integration = self.user_ids[self.config.integration_user]
        for record in users.records.values():
            record.setdefault("CreatedById", integration)
            record.setdefault("LastModifiedById", integration)
        groups = self.stores["Group"]
        by_name = {r["Name"]: rid for rid, r in groups.records.items()}
        for queue in self.config.queues:
            rid = by_name.get(queue)
            if rid is None:
                rid = self.ids.next_for("Group")
                developer = re.sub(r"\W+", "_", queue).strip("_")
                self._put(groups, rid, {
                    "Id": rid, "Name": queue, "DeveloperName": developer, "Type": "Queue",
                    **self._audit(now, integration),
                })  # fmt: skip
            self.queue_ids[queue] = rid

    # -- time ------------------------------------------------------------------------------------

    def now(self) -> str:
        """The current system timestamp; never earlier than one already handed out."""
        now = self.clock.now()
        second = int(now.timestamp())
        if second == self._stamp_second:
            current = self._stamp_text
        else:
            current = stamp(now)
            self._stamp_second, self._stamp_text = second, current
        if current < self._last_stamp:
            return self._last_stamp
        self._last_stamp = current
        return current

    def now_datetime(self) -> datetime:
        """The sandbox clock's current time."""
        return self.clock.now()

    @staticmethod
    def _audit(now: str, user_id: str) -> dict[str, Any]:
        return {
            "CreatedDate": now, "CreatedById": user_id, "LastModifiedDate": now,
            "LastModifiedById": user_id, "SystemModstamp": now,
        }  # fmt: skip

    # -- reading ---------------------------------------------------------------------------------

    def get(self, object_name: str, record_id: str, *, deleted: bool = False) -> Record | None:
        """The record with ``record_id`` (15 or 18 characters) of ``object_name``."""
        canonical = canonical_id(record_id)
        if canonical is None:
            return None
        record = self.stores[object_name].records.get(canonical)
        if record is None or (record.get("IsDeleted") and not deleted):
            return None
        return record

    def lookup(self, record_id: str | None) -> tuple[str, Record] | None:
        """Any live record by id, whatever its object (for relationships and references)."""
        if not record_id:
            return None
        object_name = object_of_id(record_id)
        if object_name is None or object_name not in self.stores:
            return None
        record = self.stores[object_name].records.get(record_id)
        if record is None or record.get("IsDeleted"):
            return None
        return object_name, record

    def match(self, obj: ObjectDef, field_def: FieldDef, value: Any) -> list[Record]:
        """Live records whose ``field_def`` equals ``value`` (case-insensitively for text)."""
        store = self.stores[obj.name]
        if field_def.name == "Id":
            found = self.get(obj.name, str(value))
            return [found] if found is not None else []
        index = store.key_indexes.get(field_def.name)
        if index is not None:
            ids = sorted(index.get(value))
            candidates = [store.records[rid] for rid in ids]
        else:
            key = normalise_key(value)
            candidates = [
                r for r in store.records.values()
                if r.get(field_def.name) is not None and normalise_key(r[field_def.name]) == key
            ]  # fmt: skip
        return [r for r in candidates if not r.get("IsDeleted")]

    # -- input -----------------------------------------------------------------------------------

    def prepare(
        self, obj: ObjectDef, data: Mapping[str, Any], *, csv: bool = False
    ) -> dict[str, Any]:
        """A request's field values, by canonical field name, as canonical stored values.

        Unknown fields raise ``INVALID_FIELD``; values of the wrong type ``JSON_PARSER_ERROR`` (or,
        from CSV, ``INVALID_TYPE_ON_FIELD_IN_RECORD``). Empty text becomes null, as in Salesforce.
        """
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key == "attributes":
                continue
            field_def = obj.field(key)
            if field_def is None:
                raise RecordError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", [key]
                )
            try:
                value = from_csv(field_def.type, raw) if csv else from_json(field_def.type, raw)
            except ValueTypeError as exc:
                if csv:
                    raise RecordError(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        f"{field_def.label}: {exc}",
                        [field_def.name],
                    ) from exc
                raise RecordError("JSON_PARSER_ERROR", str(exc), [field_def.name]) from exc
            if value == "" and field_def.type in TEXT_TYPES | ID_TYPES:
                value = None
            values[field_def.name] = value
        return values

    # -- writing ---------------------------------------------------------------------------------

    def insert(
        self,
        object_name: str,
        values: Mapping[str, Any],
        *,
        user_id: str,
        options: SaveOptions = STRICT,
    ) -> Record:
        """Create a record from prepared ``values``; raises :class:`RecordError`."""
        obj = self._writable_object(object_name)
        if options.validate and not options.system:
            if "Id" in values:
                raise RecordError("INVALID_FIELD", "cannot specify Id in an insert call", [])
            self._check_writable(obj, values, create=True)
        now = self.now()
        record: Record = {"IsDeleted": False}
        record.update(self._defaults(obj, user_id))
        record.update(self._audit(now, user_id))
        record.update({k: v for k, v in values.items() if v is not None})
        if options.system:
            record.setdefault("CreatedById", user_id)
        record_id = record.get("Id") or self.ids.next_for(obj.name)
        if "Id" in values:
            record_id = self._seeded_id(obj, str(record_id))
        record["Id"] = record_id
        self._derive(obj, record, values)
        if options.validate:
            self._validate(obj, record, values, record_id=None, options=options)
        self._put(self.stores[obj.name], record_id, record)
        return record

    def update(
        self,
        object_name: str,
        record_id: str,
        values: Mapping[str, Any],
        *,
        user_id: str,
        options: SaveOptions = STRICT,
    ) -> Record:
        """Change a record; raises :class:`RecordError` (missing, deleted, converted, invalid)."""
        obj = self._writable_object(object_name)
        store = self.stores[obj.name]
        canonical = canonical_id(record_id)
        if canonical is None:
            raise RecordError("MALFORMED_ID", f"malformed id {record_id}", ["Id"])
        old = store.records.get(canonical)
        if old is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
        if old.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        values = {k: v for k, v in values.items() if k != "Id"}
        if not options.system:
            if old.get("IsConverted"):
                raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
            if options.validate:
                self._check_writable(obj, values, create=False)
        record = dict(old)
        for name, value in values.items():
            if value is None:
                record.pop(name, None)
            else:
                record[name] = value
        if obj.name == "Opportunity" and "StageName" in values and "Probability" not in values:
            record.pop("Probability", None)
        now = self.now()
        record["LastModifiedDate"] = record["SystemModstamp"] = now
        record["LastModifiedById"] = user_id
        self._derive(obj, record, values)
        if options.validate:
            self._validate(obj, record, values, record_id=canonical, options=options)
        self._put(store, canonical, record)
        return record

    def delete(self, object_name: str, record_id: str, *, user_id: str) -> Record:
        """Move a record to the recycle bin (``IsDeleted``; still seen by ``queryAll``)."""
        obj = self._writable_object(object_name)
        store = self.stores[obj.name]
        canonical = canonical_id(record_id)
        if canonical is None:
            raise RecordError("MALFORMED_ID", f"malformed id {record_id}", ["Id"])
        old = store.records.get(canonical)
        if old is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if old.get("IsDeleted"):
            raise RecordError("ENTITY_IS_DELETED", "entity is deleted", [])
        now = self.now()
        record = dict(old)
        record.update(IsDeleted=True, LastModifiedDate=now, SystemModstamp=now)
        record["LastModifiedById"] = user_id
        self._put(store, canonical, record)
        store.deleted.append((now, canonical))
        if self._undo is not None:
            self._undo.append(lambda: _drop_last(store.deleted))
        return record

    def hard_delete(self, object_name: str, record_id: str) -> None:
        """Remove a record for good (Bulk ``hardDelete``); it still shows in ``deleted/``."""
        store = self.stores[object_name]
        canonical = canonical_id(record_id)
        if canonical is None or canonical not in store.records:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        self._put(store, canonical, None)
        store.deleted.append((self.now(), canonical))
        if self._undo is not None:
            self._undo.append(lambda: _drop_last(store.deleted))

    def upsert(
        self,
        object_name: str,
        field_def: FieldDef,
        key: Any,
        values: Mapping[str, Any],
        *,
        user_id: str,
        update_only: bool = False,
        options: SaveOptions = STRICT,
    ) -> tuple[Record, bool]:
        """Update the one record whose ``field_def`` equals ``key``, or create it.

        Returns the record and whether it was created; raises :class:`AmbiguousMatch` when the key
        matches several records.
        """
        obj = self._writable_object(object_name)
        matches = self.match(obj, field_def, key)
        if len(matches) > 1:
            raise AmbiguousMatch(obj.name, [r["Id"] for r in matches])
        values = {k: v for k, v in values.items() if k != field_def.name}
        if matches:
            return self.update(obj.name, matches[0]["Id"], values, user_id=user_id,
                               options=options), False  # fmt: skip
        if update_only or field_def.name == "Id":
            raise RecordError("NOT_FOUND", "The requested resource does not exist", [])
        values[field_def.name] = key
        return self.insert(obj.name, values, user_id=user_id, options=options), True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Record an undo log for the writes in the block; roll back with ``tx.rollback()``."""
        if self._undo is not None:
            raise RuntimeError("transactions do not nest")
        tx = Transaction(self)
        self._undo = tx.undo
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        finally:
            self._undo = None

    def _seeded_id(self, obj: ObjectDef, record_id: str) -> str:
        """An id a seed brings along: well formed, of this object, not taken."""
        canonical = canonical_id(record_id)
        if canonical is None or object_of_id(canonical) != obj.name:
            raise RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: "
                              f"{record_id}", ["Id"])  # fmt: skip
        if canonical in self.stores[obj.name].records:
            raise RecordError(
                "DUPLICATE_VALUE", f"duplicate value found: Id duplicates value on record with "
                f"id: {canonical}", ["Id"],
            )  # fmt: skip
        return canonical

    def _writable_object(self, name: str) -> ObjectDef:
        obj = self.schema.object(name)
        if obj is None:
            raise RecordError("INVALID_TYPE", f"sObject type '{name}' is not supported.")
        if not obj.createable:
            raise RecordError(
                "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
            )
        return obj

    def _put(self, store: ObjectStore, record_id: str, new: Record | None) -> None:
        """Replace a record (``None`` removes it), keeping every index and the undo log right."""
        old = store.records.get(record_id)
        if new is None:
            store.records.pop(record_id, None)
        else:
            store.records[record_id] = new
        for name, key_index in store.key_indexes.items():
            before = old.get(name) if old is not None else None
            after = new.get(name) if new is not None else None
            if before != after or old is None or new is None:
                key_index.discard(before, record_id)
                key_index.add(after, record_id)
        for name, time_index in store.time_indexes.items():
            before = old.get(name) if old is not None else None
            after = new.get(name) if new is not None else None
            if before != after:
                if after is not None:
                    time_index.add(after, record_id)
                if before is not None:
                    time_index.moved()
        if self._undo is not None:
            self._undo.append(lambda: self._put(store, record_id, old))

    # -- rules -----------------------------------------------------------------------------------

    def _defaults(self, obj: ObjectDef, user_id: str) -> dict[str, Any]:
        defaults = dict(obj.defaults)
        if "OwnerId" in obj.fields:
            defaults["OwnerId"] = user_id
        return defaults

    def _derive(self, obj: ObjectDef, record: Record, changed: Mapping[str, Any]) -> None:
        """Fields Salesforce computes: compound names, opportunity flags and probability."""
        if obj.name in {"Lead", "Contact"} and ("Name" not in record or changed.keys() & {
            "FirstName", "LastName"
        }):  # fmt: skip
            parts = [record.get("FirstName"), record.get("LastName")]
            record["Name"] = " ".join(p for p in parts if p)
        if obj.name == "Opportunity":
            stage = obj.fields["StageName"].picklist_entry(record.get("StageName", ""))
            record["IsClosed"] = bool(stage and stage.closed)
            record["IsWon"] = bool(stage and stage.won)
            if "Probability" not in record and stage is not None and stage.probability is not None:
                record["Probability"] = float(stage.probability)

    def _check_writable(self, obj: ObjectDef, values: Mapping[str, Any], *, create: bool) -> None:
        locked = [
            name for name in values
            if not (obj.fields[name].createable if create else obj.fields[name].updateable)
        ]  # fmt: skip
        if locked:
            raise RecordError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                _READONLY_MESSAGE.format(names=", ".join(locked)),
                locked,
            )

    def _validate(
        self,
        obj: ObjectDef,
        record: Record,
        changed: Mapping[str, Any],
        *,
        record_id: str | None,
        options: SaveOptions,
    ) -> None:
        creating = record_id is None
        missing = [
            name for name in obj.not_nillable
            if name not in record and (creating or name in changed)
        ]  # fmt: skip
        if missing:
            raise RecordError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )  # fmt: skip
        for name, value in changed.items():
            if value is not None:
                record[name] = self._check_value(obj, obj.fields[name], value, record)
        if (
            obj.name == "Lead"
            and not options.system
            and "Status" in changed
            and not record.get("IsConverted")
        ):
            entry = obj.fields["Status"].picklist_entry(record.get("Status", ""))
            if entry is not None and entry.converted:
                raise RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Status: a converted lead status can only be set by converting the lead",
                    ["Status"],
                )
        self._check_unique(obj, record, changed, record_id)
        if (
            obj.name == "Lead"
            and self.config.duplicate_rule_on_email
            and not options.allow_duplicates
            and (creating or "Email" in changed)
        ):
            self._check_duplicates(obj, record, record_id)

    def _check_value(self, obj: ObjectDef, f: FieldDef, value: Any, record: Record) -> Any:
        type_ = f.type
        if type_ in TEXT_TYPES:
            if len(value) > f.length:
                raise RecordError(
                    "STRING_TOO_LONG",
                    f"{f.label}: data value too large: {value} (max length={f.length})",
                    [f.name],
                )
            if f.restricted and f.picklist_entry(value) is None:
                raise RecordError(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{f.label}: bad value for restricted picklist field: {value}",
                    [f.name],
                )
            if type_ == "email" and not valid_email(value.strip()):
                raise RecordError(
                    "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]
                )
            return value.strip() if type_ == "email" else value
        if type_ in NUMBER_TYPES:
            return _check_number(f, value)
        if type_ == "reference":
            return self._check_reference(obj, f, value)
        return value

    def _check_reference(self, obj: ObjectDef, f: FieldDef, value: str) -> str:
        canonical = canonical_id(value)
        if canonical is None:
            raise RecordError(
                "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name]
            )
        target = object_of_id(canonical)
        if target not in f.reference_to:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                [f.name],
            )
        found = self.lookup(canonical)
        if found is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [f.name])
        if f.name == "OwnerId":
            _, owner = found
            if target == "User" and not owner.get("IsActive", True):
                raise RecordError(
                    "INACTIVE_OWNER_OR_USER",
                    f"operation performed with inactive user [{canonical}] as owner of "
                    f"{obj.name.lower()}",
                    [],
                )
            if target == "Group" and owner.get("Type") != "Queue":
                raise RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"{f.label}: id value of incorrect type: {value}",
                    [f.name],
                )
        return canonical

    def _check_unique(
        self, obj: ObjectDef, record: Record, changed: Mapping[str, Any], record_id: str | None
    ) -> None:
        store = self.stores[obj.name]
        for name in changed:
            f = obj.fields[name]
            value = record.get(name)
            if not f.unique or value is None:
                continue
            for other in store.key_indexes[name].get(value):
                if other != record_id and not store.records[other].get("IsDeleted"):
                    raise RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: "
                        f"{other}",
                        [name],
                    )

    def _check_duplicates(self, obj: ObjectDef, record: Record, record_id: str | None) -> None:
        email = record.get("Email")
        if not email:
            return
        store = self.stores[obj.name]
        dupes = sorted(
            rid for rid in store.key_indexes["Email"].get(email)
            if rid != record_id and not store.records[rid].get("IsDeleted")
        )  # fmt: skip
        if dupes:
            raise duplicates_detected(obj.name, dupes, self.config.api_version)

    # -- lead conversion -------------------------------------------------------------------------

    def convert_lead(
        self,
        lead_id: str,
        *,
        user_id: str,
        create_opportunity: bool = True,
        opportunity_name: str | None = None,
        amount: float | None = None,
        stage_name: str = "Prospecting",
    ) -> dict[str, str | None]:
        """Convert a lead like the Convert button: Account, Contact, maybe an Opportunity."""
        lead = self.get("Lead", lead_id)
        if lead is None:
            raise RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        if lead.get("IsConverted"):
            raise RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        lead_def = self.schema.objects["Lead"]
        converted = next((v for v in lead_def.fields["Status"].picklist or () if v.converted), None)
        if converted is None:
            raise RecordError(
                "FIELD_INTEGRITY_EXCEPTION", "no Lead Status value is marked converted", ["Status"]
            )
        owner = lead.get("OwnerId", user_id)
        if object_of_id(owner) != "User":
            owner = user_id
        today = self.clock.now().date()
        company = lead.get("Company") or lead.get("LastName", "")
        carry: dict[str, Any] = {
            k: lead[k] for k in ("Industry", "NumberOfEmployees", "Website") if k in lead
        }
        account = self.insert(
            "Account", {"Name": company, "OwnerId": owner, **carry}, user_id=user_id
        )
        person: dict[str, Any] = {
            k: lead[k] for k in ("FirstName", "LastName", "Email", "Title", "Phone", "LeadSource")
            if k in lead
        }  # fmt: skip
        contact = self.insert(
            "Contact", {**person, "AccountId": account["Id"], "OwnerId": owner}, user_id=user_id
        )
        opportunity_id = None
        if create_opportunity:
            opportunity = {
                "Name": opportunity_name or f"{company}-",
                "StageName": stage_name,
                "CloseDate": (today + timedelta(days=30)).isoformat(),
                "AccountId": account["Id"],
                "OwnerId": owner,
            }
            if amount is not None:
                opportunity["Amount"] = float(amount)
            if "LeadSource" in lead:
                opportunity["LeadSource"] = lead["LeadSource"]
            opportunity_id = self.insert("Opportunity", opportunity, user_id=user_id)["Id"]
        self.update(
            "Lead",
            lead["Id"],
            {
                "IsConverted": True, "ConvertedDate": today.isoformat(),
                "ConvertedAccountId": account["Id"], "ConvertedContactId": contact["Id"],
                "ConvertedOpportunityId": opportunity_id, "Status": converted.value,
                "OwnerId": owner,
            },
            user_id=user_id,
            options=SaveOptions(system=True),
        )  # fmt: skip
        return {
            "lead_id": lead["Id"],
            "account_id": account["Id"],
            "contact_id": contact["Id"],
            "opportunity_id": opportunity_id,
        }

    # -- schema changes --------------------------------------------------------------------------

    def field_removed(self, object_name: str, field_name: str) -> int:
        """Drop a deleted field's values and index; returns how many records held a value."""
        store = self.stores[object_name]
        store.key_indexes.pop(field_name, None)
        held = 0
        for record in store.records.values():
            if record.pop(field_name, None) is not None:
                held += 1
        return held

    # -- persistence -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Records, deletion logs and id counters, for the state file."""
        return {
            "ids": dict(self.ids.counters),
            "last_stamp": self._last_stamp,
            "objects": {
                name: {"records": list(store.records.values()), "deleted": store.deleted}
                for name, store in self.stores.items()
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot`, rebuild the indexes, and add missing configured users."""
        self.ids = IdFactory(data.get("ids", {}))
        self._last_stamp = data.get("last_stamp", "")
        for name, saved in data.get("objects", {}).items():
            obj = self.schema.object(name)
            if obj is None:
                continue
            store = self._new_store(obj)
            store.records = {r["Id"]: r for r in saved.get("records", [])}
            store.deleted = [(str(a), str(b)) for a, b in saved.get("deleted", [])]
            store.rebuild()
            self.stores[obj.name] = store
        self._sync_users()


class Transaction:
    """The undo log of one :meth:`Org.transaction` block."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.undo: list[Callable[[], None]] = []
        self.rolled_back = False

    def rollback(self) -> None:
        """Undo every write of the block, newest first."""
        logging, self.org._undo = self.org._undo, None
        try:
            while self.undo:
                self.undo.pop()()
        finally:
            self.org._undo = logging
        self.rolled_back = True


def _drop_last(items: list[Any]) -> None:
    items.pop()


def _check_number(f: FieldDef, value: int | float) -> int | float:
    if f.type in DECIMAL_TYPES:
        value = round(float(value), f.scale)
    digits = f.precision - f.scale if f.precision else 18
    if abs(value) >= 10**digits:
        raise RecordError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{f.label}: value outside of valid range on numeric field: {value}",
            [f.name],
        )
    return value


def duplicates_detected(object_name: str, ids: list[str], version: str) -> RecordError:
    """``DUPLICATES_DETECTED`` with the ``duplicateResult`` Salesforce attaches."""
    matches = [
        {
            "additionalInformation": [],
            "fieldDiffs": [],
            "matchConfidence": 100.0,
            "record": {
                "attributes": {
                    "type": object_name,
                    "url": f"/services/data/v{version}/sobjects/{object_name}/{rid}",
                },
                "Id": rid,
            },
        }
        for rid in ids
    ]
    result = {
        "allowSave": False,
        "duplicateRule": f"Standard_{object_name}_Duplicate_Rule",
        "duplicateRuleEntityType": object_name,
        "errorMessage": "Use one of these records?",
        "matchResults": [
            {
                "entityType": object_name,
                "errors": [],
                "matchEngine": "ExactMatchEngine",
                "matchRecords": matches,
                "rule": f"Standard_{object_name}_Match_Rule_v1_0",
                "size": len(matches),
                "success": True,
            }
        ],
    }
    return RecordError(
        "DUPLICATES_DETECTED", "Use one of these records?", [], extra={"duplicateResult": result}
    )
