"""Control actions: seed the org, change its schema, and act as a sales rep would in the UI.

Each ``control_<name>`` method is reachable as ``SandboxControl.control(name, **payload)`` and
takes and returns JSON. Acting as a rep changes records the way a person does: through the same
validation as the API, bumping ``LastModifiedDate``/``SystemModstamp`` and setting
``LastModifiedById`` to the rep, which is what a connector's "newer human edit" rule looks at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from crmbridge.testing.sandbox.emulator import ControlError
from crmbridge_salesforce.sandbox.auth import SessionStore
from crmbridge_salesforce.sandbox.config import SandboxConfig
from crmbridge_salesforce.sandbox.describe import Schema
from crmbridge_salesforce.sandbox.errors import RecordError
from crmbridge_salesforce.sandbox.ids import canonical_id, object_of_id
from crmbridge_salesforce.sandbox.indexes import Record
from crmbridge_salesforce.sandbox.limits import ApiBudget
from crmbridge_salesforce.sandbox.query import QueryApi, execute, prepare, render
from crmbridge_salesforce.sandbox.seed import DemoSeeder
from crmbridge_salesforce.sandbox.sobjects import record_body
from crmbridge_salesforce.sandbox.soql import SoqlError
from crmbridge_salesforce.sandbox.state import SEEDING, STRICT, Org, paused_gc


class SalesforceActions:
    """The Salesforce emulator's control actions (mixed into the emulator)."""

    config: SandboxConfig
    schema: Schema
    org: Org
    sessions: SessionStore
    budget: ApiBudget
    queries: QueryApi

    mark_dirty: Callable[[], None]

    # -- helpers ---------------------------------------------------------------------------------

    def _render(self, object_name: str, record: Record) -> dict[str, Any]:
        obj = self.schema.objects[object_name]
        return record_body(self.org, self.config.api_version, obj, record)

    def _object(self, name: str) -> str:
        obj = self.schema.object(name)
        if obj is None:
            raise ControlError(f"no sObject {name!r}; known: {sorted(self.schema.objects)}")
        return obj.name

    def _record(self, object_name: str, record_id: str) -> Record:
        record = self.org.get(object_name, record_id)
        if record is None:
            raise ControlError(f"no live {object_name} with id {record_id!r}")
        return record

    def _user(self, who: str | None) -> str | None:
        """A user id from a username, a user id or a name; ``None`` stays ``None``."""
        if who is None:
            return None
        if who in self.org.user_ids:
            return self.org.user_ids[who]
        canonical = canonical_id(who)
        if canonical and object_of_id(canonical) == "User" and self.org.lookup(canonical):
            return canonical
        for record in self.org.stores["User"].records.values():
            if record.get("Name") == who:
                return str(record["Id"])
        raise ControlError(f"no user {who!r}; known: {sorted(self.org.user_ids)}")

    def _owner(self, who: str) -> str:
        """A user or a queue, by username, id or name."""
        if who in self.org.queue_ids:
            return self.org.queue_ids[who]
        canonical = canonical_id(who)
        if canonical and object_of_id(canonical) == "Group" and self.org.lookup(canonical):
            return canonical
        return self._user(who) or ""

    def _rep(self, record: Record | None, as_user: str | None) -> str:
        """Who acts: the named user, else the record's owner if a user, else the first rep."""
        chosen = self._user(as_user)
        if chosen:
            return chosen
        owner = record.get("OwnerId") if record else None
        if owner and object_of_id(owner) == "User":
            return str(owner)
        integration = self.config.integration_user
        reps = [uid for name, uid in self.org.user_ids.items() if name != integration]
        return reps[0] if reps else self.org.user_ids[integration]

    def _saved(self, work: Any) -> Any:
        try:
            result = work()
        except RecordError as exc:
            raise ControlError(f"{exc.code}: {exc.message}") from exc
        self.mark_dirty()
        return result

    # -- seeding ---------------------------------------------------------------------------------

    def control_seed_demo(self, count: int, seed: int = 42) -> dict[str, int]:
        """Load the in-sales leads among ``count`` demo leads; returns counts per object."""
        return dict(self._saved(lambda: DemoSeeder(self.org).seed(int(count), int(seed))))

    def control_seed_records(
        self, object: str, records: Sequence[Mapping[str, Any]], validate: bool = True
    ) -> dict[str, list[str]]:
        """Insert raw records; ``validate=False`` skips Salesforce's rules (and may set audit
        fields, conversion fields and duplicates), as a data migration with special permissions
        would. Returns the new ids in order."""
        name = self._object(object)
        obj = self.schema.objects[name]
        user = self.org.user_ids[self.config.integration_user]
        options = STRICT if validate else SEEDING
        ids: list[str] = []
        with paused_gc(), self.org.transaction() as tx:
            for i, data in enumerate(records):
                try:
                    values = self.org.prepare(obj, data)
                    ids.append(self.org.insert(name, values, user_id=user, options=options)["Id"])
                except RecordError as exc:
                    tx.rollback()
                    raise ControlError(
                        f"record {i}: {exc.code}: {exc.message} (nothing was seeded)"
                    ) from exc
        self.mark_dirty()
        return {"ids": ids}

    def control_set_picklist(
        self, field: str, values: Sequence[str | Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace a picklist's values (``field`` as ``"Lead.Status"``), as an admin does."""
        try:
            changed = self.schema.set_picklist(field, values)
        except (KeyError, TypeError) as exc:
            raise ControlError(f"set_picklist {field!r}: {exc}") from exc
        self.mark_dirty()
        return {"field": field, "values": [v.value for v in changed.picklist or ()]}

    def control_remove_field(self, object: str, field: str) -> dict[str, Any]:
        """Delete a field and its data, as an admin would."""
        name = self._object(object)
        try:
            removed = self.schema.remove_field(name, field)
        except KeyError as exc:
            raise ControlError(f"remove_field {object}.{field}: {exc}") from exc
        cleared = self.org.field_removed(name, removed.name)
        self.mark_dirty()
        return {"removed": f"{name}.{removed.name}", "records_cleared": cleared}

    # -- acting as sales -------------------------------------------------------------------------

    def control_set_lead_status(
        self,
        lead_id: str,
        status: str,
        reason: str | None = None,
        owner: str | None = None,
        as_user: str | None = None,
    ) -> dict[str, Any]:
        """A rep works a lead: sets its Status (and Rejection Reason, and owner).

        The rep is ``as_user``, else the new owner when that is a user (who accepts the lead),
        else the lead's current owner.
        """
        lead = self._record("Lead", lead_id)
        changes: dict[str, Any] = {"Status": status}
        if reason is not None:
            changes["Rejection_Reason__c"] = reason
        new_owner = self._owner(owner) if owner is not None else None
        if new_owner:
            changes["OwnerId"] = new_owner
        taker = new_owner if new_owner and object_of_id(new_owner) == "User" else None
        rep = self._rep({"OwnerId": taker} if taker else lead, as_user)
        record = self._saved(lambda: self.org.update("Lead", lead["Id"], changes, user_id=rep))
        return self._render("Lead", record)

    def control_edit_record(
        self, object: str, id: str, fields: Mapping[str, Any], as_user: str | None = None
    ) -> dict[str, Any]:
        """A rep edits a record in the UI (same validation as the API)."""
        name = self._object(object)
        record = self._record(name, id)
        rep = self._rep(record, as_user)

        def edit() -> Record:
            values = self.org.prepare(self.schema.objects[name], fields)
            return self.org.update(name, record["Id"], values, user_id=rep)

        return self._render(name, self._saved(edit))

    def control_convert_lead(
        self,
        lead_id: str,
        create_opportunity: bool = True,
        opportunity_name: str | None = None,
        amount: float | None = None,
        stage_name: str = "Prospecting",
        as_user: str | None = None,
    ) -> dict[str, str | None]:
        """A rep converts a lead; returns the lead, account, contact and opportunity ids."""
        lead = self._record("Lead", lead_id)
        rep = self._rep(lead, as_user)

        def convert() -> dict[str, str | None]:
            with self.org.transaction():
                return self.org.convert_lead(
                    lead["Id"], user_id=rep, create_opportunity=create_opportunity,
                    opportunity_name=opportunity_name, amount=amount, stage_name=stage_name,
                )  # fmt: skip

        return dict(self._saved(convert))

    def control_close_opportunity(
        self,
        opportunity_id: str,
        won: bool,
        amount: float | None = None,
        loss_reason: str | None = None,
        as_user: str | None = None,
    ) -> dict[str, Any]:
        """A rep closes an opportunity as Closed Won or Closed Lost (with a loss reason)."""
        opportunity = self._record("Opportunity", opportunity_id)
        changes: dict[str, Any] = {"StageName": "Closed Won" if won else "Closed Lost"}
        if amount is not None:
            changes["Amount"] = float(amount)
        if loss_reason is not None:
            changes["Loss_Reason__c"] = loss_reason
        rep = self._rep(opportunity, as_user)
        record = self._saved(
            lambda: self.org.update("Opportunity", opportunity["Id"], changes, user_id=rep)
        )
        return self._render("Opportunity", record)

    def control_delete_record(
        self, object: str, id: str, as_user: str | None = None
    ) -> dict[str, Any]:
        """A rep deletes a record (to the recycle bin: ``queryAll`` and ``deleted/`` see it)."""
        name = self._object(object)
        record = self._record(name, id)
        rep = self._rep(record, as_user)
        self._saved(lambda: self.org.delete(name, record["Id"], user_id=rep))
        return {"id": record["Id"], "deleted": True}

    def control_find_leads(self, email: str) -> list[dict[str, Any]]:
        """Live leads whose email matches ``email`` (trimmed, case-insensitive)."""
        lead_def = self.schema.objects["Lead"]
        found = self.org.match(lead_def, lead_def.fields["Email"], email)
        return [self._render("Lead", r) for r in found]

    def control_query(self, soql: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record ``soql`` selects, in one answer (no paging, no API call counted): for a
        test to read an org's state as a whole."""
        try:
            prepared = prepare(self.org, soql)
        except SoqlError as exc:
            raise ControlError(f"{exc.code}: {exc}") from exc
        records, _plan = execute(self.org, prepared, include_deleted=include_deleted)
        version = self.config.api_version
        return [render(self.org, version, prepared.obj.name, r, prepared.select) for r in records]

    # -- sessions and limits ---------------------------------------------------------------------

    def control_expire_sessions(self) -> dict[str, int]:
        """End every session: the next call of each client answers 401 ``INVALID_SESSION_ID``."""
        return {"expired": self.sessions.expire_all()}

    def control_set_api_usage(self, used: int) -> dict[str, int]:
        """Set how many of today's API requests are used (near the limit, or over it)."""
        try:
            self.budget.set_used(int(used))
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        self.mark_dirty()
        return {"used": self.budget.requests.used, "max": self.budget.requests.limit}
