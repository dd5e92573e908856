"""Writing to HubSpot contacts: sales' verdicts back to marketing (batch update by record id), and
handoffs to HubSpot as the sales system (batch upsert by email). 100 records per call.

**Lifecycle stage moving back.** HubSpot silently keeps a contact's ``lifecyclestage`` when an
integration writes an earlier one, unless the stage is cleared first. For a write marked
``stage_backwards`` the stage is cleared in one batch call and set in the next — the move
HubSpot's own Salesforce sync cannot make (recycling a lead back to nurture). A write not marked
so, whose answer still shows another stage than the one written, is cleared and set again too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId, SimplePublicObjectId

from crmbridge import LeadWrite, RecordError, SystemMapping, WriteRejected, WriteResult
from crmbridge_hubspot.connector.batches import Answer, BatchWriter, Input
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import PLUGIN, SYSTEM
from crmbridge_hubspot.connector.native import properties_of
from crmbridge_hubspot.connector.owners import OwnerDirectory
from crmbridge_hubspot.connector.records import OWNER, contacts_of
from crmbridge_hubspot.connector.schema import annotation_properties, unknown_annotations

log = logging.getLogger("crmbridge.connector.hubspot")


@dataclass
class _Pending:
    """A write turned into a batch input, with its place in the caller's list."""

    index: int
    write: LeadWrite
    input: Input


class ContactWriter:
    """Builds HubSpot property values from :class:`LeadWrite` and sends them in batches."""

    def __init__(
        self,
        client: HubSpotClient,
        mapping: SystemMapping,
        owners: OwnerDirectory,
        size: int,
        concurrency: int = 1,
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.owners = owners
        self.size = size
        self.concurrency = concurrency
        self.batches = BatchWriter(client)
        self._warned: set[str] = set()

    # -- the values of a write ---------------------------------------------------------------

    def properties(self, write: LeadWrite) -> dict[str, str]:
        """HubSpot property → value for ``write``: fields, stage, outcome, crmbridge's own.

        A value with no mapping raises :class:`~crmbridge.MappingError` (a record error).
        """
        values: dict[str, Any] = self.mapping.to_native(write.fields)
        if write.stage and self.mapping.stage_field:
            values[self.mapping.stage_field] = self.mapping.stage_to_native(write.stage)
        if write.outcome is not None and self.mapping.outcome_field:
            values[self.mapping.outcome_field] = self.mapping.outcome_to_native(write.outcome)
        values.update(annotation_properties(write.annotations))
        for name in unknown_annotations(write.annotations):
            if name not in self._warned:
                self._warned.add(name)
                log.warning("hubspot: no crmbridge property for annotation %r; not written", name)
        return properties_of(values)

    # -- marketing side: write_outcomes ------------------------------------------------------

    def update(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Update existing contacts by record id; one result per write, in order."""
        results: list[WriteResult | None] = [None] * len(writes)
        pending: list[_Pending] = []
        for i, write in enumerate(writes):
            if not write.native_id:
                results[i] = _failed(write, "has no HubSpot record id to update", "NO_ID")
                continue
            prepared = self._prepare(i, write, write.native_id, results)
            if prepared is not None:
                pending.append(prepared)
        chunks = list(_chunks(pending, self.size, key=lambda p: p.input.id))
        self._in_parallel(chunks, lambda chunk: self._update_chunk(chunk, results))
        return [r for r in results if r is not None]

    def _in_parallel(
        self, chunks: list[list[_Pending]], work: Callable[[list[_Pending]], None]
    ) -> None:
        """Run ``work`` on every chunk, ``write_concurrency`` at a time (each writes its own
        results' slots); the first failure is raised, as it would be one after another."""
        workers = min(self.concurrency, len(chunks))
        if workers <= 1:
            for chunk in chunks:
                work(chunk)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hubspot-write") as pool:
            for future in [pool.submit(work, chunk) for chunk in chunks]:
                future.result()

    def _update_chunk(self, chunk: list[_Pending], results: list[WriteResult | None]) -> None:
        stage_field = self.mapping.stage_field or "lifecyclestage"
        backwards = [
            p for p in chunk if p.write.stage_backwards and stage_field in p.input.properties
        ]
        cleared = {p.index for p in backwards}
        refused = self._clear_stage(backwards, stage_field, results)
        todo = [p for p in chunk if p.index not in refused]
        answers = self.batches.update([p.input for p in todo])
        kept = [
            p
            for p in todo
            if p.index not in cleared and _stage_kept(p, answers.get(p.input.trace), stage_field)
        ]
        if kept:
            log.info(
                "hubspot: %d contacts kept a later lifecycle stage; clearing it and writing again",
                len(kept),
            )
            refused = self._clear_stage(kept, stage_field, results)
            again = [p for p in kept if p.index not in refused]
            answers.update(self.batches.update([p.input for p in again]))
        for p in todo:
            if results[p.index] is None:
                results[p.index] = _result(p, answers.get(p.input.trace), created=False)

    def _clear_stage(
        self, pending: list[_Pending], stage_field: str, results: list[WriteResult | None]
    ) -> set[int]:
        """Clear the stage of ``pending`` (one call); the indexes HubSpot refused."""
        if not pending:
            return set()
        cleared = self.batches.update(
            [Input(p.input.trace, p.input.id, {stage_field: ""}, p.input.record) for p in pending]
        )
        refused = set()
        for p in pending:
            answer = cleared.get(p.input.trace)
            if answer is None or not answer.ok:
                refused.add(p.index)
                results[p.index] = _result(p, answer, created=False)
        return refused

    # -- sales side: push_leads --------------------------------------------------------------

    def upsert(self, writes: Sequence[LeadWrite]) -> list[WriteResult]:
        """Create or update contacts by email (existing ones by id when they must exist)."""
        results: list[WriteResult | None] = [None] * len(writes)
        upserts: list[_Pending] = []
        updates: list[_Pending] = []
        for i, write in enumerate(writes):
            if not write.create and not write.native_id:
                results[i] = WriteResult(write.key, ok=True, skipped="no HubSpot record to update")
                continue
            target = write.email if write.create else str(write.native_id)
            prepared = self._prepare(i, write, target, results, sales=True)
            if prepared is None:
                continue
            (upserts if write.create else updates).append(prepared)

        self._sent_before(upserts)

        def upsert_chunk(chunk: list[_Pending]) -> None:
            answers = self.batches.upsert([p.input for p in chunk])
            for p in chunk:
                results[p.index] = _result(p, answers.get(p.input.trace), created=None)

        def update_chunk(chunk: list[_Pending]) -> None:
            answers = self.batches.update([p.input for p in chunk])
            for p in chunk:
                results[p.index] = _result(p, answers.get(p.input.trace), created=False)

        self._in_parallel(
            list(_chunks(upserts, self.size, key=lambda p: p.input.id.lower())), upsert_chunk
        )
        self._in_parallel(list(_chunks(updates, self.size, key=lambda p: p.input.id)), update_chunk)
        return [r for r in results if r is not None]

    def _sent_before(self, pending: Sequence[_Pending]) -> None:
        """Handoffs sent before whose answer crmbridge did not record (it stopped in between):
        a contact that already carries the write's crmbridge id is the one that handoff made or
        took over, so sales' stage, lead status and owner there are left as they are (batch reads
        by email, 100 a call, only for such writes)."""
        again = [p for p in pending if p.write.may_exist and not p.write.native_id]
        keep_out = {OWNER, self.mapping.stage_field, self.mapping.outcome_field} - {None}
        for start in range(0, len(again), self.size):
            chunk = again[start : start + self.size]
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=p.input.id) for p in chunk],
                properties=["email", "crmbridge_id"],
                properties_with_history=[],
                id_property="email",
            )
            answer = self.client.call_json(
                f"POST objects/contacts/batch/read ({len(chunk)} handoffs sent before)",
                self.client.batch_api.read_with_http_info,
                batch_read_input_simple_public_object_id=body,
                archived=False,
            )
            made = {str(c.properties.get("crmbridge_id")) for c in contacts_of(answer)}
            for p in chunk:
                if p.write.crmbridge_id in made:
                    for name in keep_out:
                        p.input.properties.pop(str(name), None)

    def _prepare(
        self,
        index: int,
        write: LeadWrite,
        target: str,
        results: list[WriteResult | None],
        *,
        sales: bool = False,
    ) -> _Pending | None:
        try:
            properties = self.properties(write)
            if sales:
                properties.setdefault("crmbridge_id", write.crmbridge_id)
                if write.owner:
                    properties[OWNER] = self._owner(write)
        except RecordError as exc:
            results[index] = WriteResult(write.key, ok=False, error=exc)
            return None
        record = write.email or target
        return _Pending(index, write, Input(str(index), target, properties, record))

    def _owner(self, write: LeadWrite) -> str:
        owner = str(write.owner)
        owner_id = self.owners.id_for(owner)
        if owner_id is None:
            raise WriteRejected(
                f"owner {owner!r} is not a HubSpot owner (an owner id or a user's email)",
                code="INVALID_OWNER",
                plugin=PLUGIN,
                system=SYSTEM,
                record=write.email,
                field=OWNER,
            )
        return owner_id


def _stage_kept(p: _Pending, answer: Answer | None, stage_field: str) -> bool:
    """Whether HubSpot answered with another stage than the one written (it kept its own)."""
    wanted = p.input.properties.get(stage_field)
    if not wanted or answer is None or not answer.ok or stage_field not in answer.properties:
        return False
    return answer.properties.get(stage_field) not in (wanted, None)


def _result(p: _Pending, answer: Answer | None, *, created: bool | None) -> WriteResult:
    if answer is None:
        return _failed(p.write, "got no answer from HubSpot", "NO_RESULT")
    if not answer.ok:
        return WriteResult(p.write.key, ok=False, native_id=p.write.native_id, error=answer.error)
    return WriteResult(
        p.write.key,
        ok=True,
        native_id=answer.native_id,
        created=answer.created if created is None else created,
        modified_at=answer.modified_at,
    )


def _failed(write: LeadWrite, why: str, code: str) -> WriteResult:
    error = WriteRejected(
        f"the write of {write.email or write.key} {why}",
        code=code,
        plugin=PLUGIN,
        system=SYSTEM,
        record=write.email or write.key,
    )
    return WriteResult(write.key, ok=False, native_id=write.native_id, error=error)


def _chunks(
    pending: list[_Pending], size: int, *, key: Callable[[_Pending], str]
) -> Iterator[list[_Pending]]:
    """Batches of at most ``size`` whose records are distinct (HubSpot refuses a batch naming a
    record twice); a record's second write goes into a later batch, after its first."""
    waiting = list(pending)
    while waiting:
        chunk: list[_Pending] = []
        seen: set[str] = set()
        later: list[_Pending] = []
        for p in waiting:
            k = key(p)
            if len(chunk) < size and k not in seen:
                seen.add(k)
                chunk.append(p)
            else:
                later.append(p)
        yield chunk
        waiting = later
