"""The portal's contacts: ids, values, who wrote each value, and the search index that lags writes.

A contact's values are strings keyed by property name (an absent key is an empty value). Each write
names its source (an integration through the API, a person in the UI, a form, analytics, an
import), and the store keeps a short history per property, so a test can ask who last changed a
value and when. Search reads a separate *indexed view* of each contact that catches up with writes
``lag_ms`` after they happen, as HubSpot's search index does; ``lastmodifieddate``, ``createdate``
and the id are kept in sorted indexes of that view.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from crmbridge_hubspot.sandbox.catalog import Catalog, iso_ms
from crmbridge_hubspot.sandbox.errors import HubSpotError, contact_exists
from crmbridge_hubspot.sandbox.index import SortedIndex

INTEGRATION = "INTEGRATION"
CRM_UI = "CRM_UI"
FORM = "FORM"
ANALYTICS = "ANALYTICS"
IMPORT = "IMPORT"

SYSTEM_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate"})
HISTORY_DEPTH = 20
FIRST_ID = 1001


def email_key(email: str) -> str:
    """How emails are compared: HubSpot treats them case-insensitively, ignoring outer spaces."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class Source:
    """Who or what made a write: HubSpot's ``sourceType`` and ``sourceId`` (and a label)."""

    type: str
    id: str
    label: str = ""
    user_id: int | None = None


SEED = Source(IMPORT, "sandbox-seed", "Demo import")


class Write(NamedTuple):
    """One value a property took, when, and from which source."""

    value: str
    at_ms: int
    source_type: str
    source_id: str
    source_label: str
    user_id: int | None

    def to_json(self) -> dict[str, Any]:
        """The write as ``propertiesWithHistory`` lists it."""
        data: dict[str, Any] = {
            "value": self.value,
            "timestamp": iso_ms(self.at_ms),
            "sourceType": self.source_type,
            "sourceId": self.source_id,
        }
        if self.source_label:
            data["sourceLabel"] = self.source_label
        if self.user_id is not None:
            data["updatedByUserId"] = self.user_id
        return data


class Contact:
    """One contact. ``indexed`` is what search sees (``props`` itself once search caught up)."""

    __slots__ = (
        "archived_ms",
        "created_ms",
        "history",
        "id",
        "indexed",
        "ix",
        "merged_into",
        "modified_ms",
        "props",
    )

    def __init__(self, cid: int, props: dict[str, str], created_ms: int, modified_ms: int) -> None:
        self.id = cid
        self.props = props
        self.created_ms = created_ms
        self.modified_ms = modified_ms
        self.archived_ms: int | None = None
        self.merged_into: int | None = None
        # None until a write after seeding: the seeded values count as one import.
        self.history: dict[str, list[Write]] | None = None
        self.indexed: dict[str, str] | None = None
        self.ix: tuple[int, int] | None = None

    @property
    def archived(self) -> bool:
        """Whether the contact is archived (deleted, or merged away)."""
        return self.archived_ms is not None

    def last_write(self, name: str) -> Write | None:
        """The write that set the property's current value (seeded values: the import)."""
        if self.history is None or name not in self.history:
            value = self.props.get(name)
            if value is None:
                return None
            return Write(value, self.modified_ms, *_seed_fields())
        return self.history[name][-1]

    def history_of(self, name: str) -> list[Write]:
        """The property's values, newest first, as ``propertiesWithHistory`` lists them."""
        if self.history is not None and name in self.history:
            return list(reversed(self.history[name]))
        last = self.last_write(name)
        return [last] if last is not None else []


def _seed_fields() -> tuple[str, str, str, None]:
    return SEED.type, SEED.id, SEED.label, None


class ContactStore:
    """Every contact of the portal, with the lookups and the lagging search index."""

    def __init__(
        self,
        catalog: Catalog,
        clock_ms: Callable[[], int],
        *,
        lag_ms: int = 0,
        forward_only: bool = True,
    ) -> None:
        self.catalog = catalog
        self.clock_ms = clock_ms
        self.lag_ms = lag_ms
        self.forward_only = forward_only
        self.contacts: dict[int, Contact] = {}
        self.ids: list[int] = []
        self.archived_ids: list[int] = []
        self.next_id = FIRST_ID
        self.by_email: dict[str, int] = {}
        self._unique: dict[str, dict[str, int]] = {}
        self.ix_modified = SortedIndex()
        self.ix_created = SortedIndex()
        self.ix_id = SortedIndex()
        self.index_version = 0
        self._pending: dict[int, int] = {}
        self._queue: deque[tuple[int, int]] = deque()
        self._bulk = False

    # -- lookups -------------------------------------------------------------------------------

    def get(self, cid: int | str, *, archived: bool = False) -> Contact | None:
        """The contact with this id; a merged-away id answers its surviving contact."""
        try:
            contact = self.contacts.get(int(cid))
        except ValueError:
            return None
        seen = 0
        while contact is not None and contact.merged_into is not None and seen < 64:
            contact = self.contacts.get(contact.merged_into)
            seen += 1
        if contact is None or contact.archived != archived:
            return None
        return contact

    def find_by_email(self, email: str) -> Contact | None:
        """The contact an email belongs to (also a merged-away contact's email)."""
        cid = self.by_email.get(email_key(email))
        return self.contacts.get(cid) if cid is not None else None

    def find(
        self, value: str, id_property: str | None, *, archived: bool = False
    ) -> Contact | None:
        """Look a contact up by id, by email, or by a property with unique values."""
        if not id_property or id_property == "hs_object_id":
            return self.get(value, archived=archived)
        if id_property == "email":
            return None if archived else self.find_by_email(value)
        cid = self._unique_index(id_property).get(value)
        contact = self.contacts.get(cid) if cid is not None else None
        return contact if contact is not None and not contact.archived else None

    def live_count(self) -> int:
        """How many contacts are not archived."""
        return len(self.contacts) - len(self.archived_ids)

    def page(self, after: int, limit: int, *, archived: bool) -> tuple[list[Contact], int | None]:
        """Up to ``limit`` contacts with id ``>= after`` in id order, and the next cursor."""
        ids = self.archived_ids if archived else self.ids
        found: list[Contact] = []
        for i in range(bisect_left(ids, after), len(ids)):
            contact = self.contacts[ids[i]]
            if contact.archived != archived:
                continue
            if len(found) == limit:
                return found, contact.id
            found.append(contact)
        return found, None

    # -- checks --------------------------------------------------------------------------------

    def conflict(
        self, values: Mapping[str, str], exclude: int | None = None
    ) -> HubSpotError | None:
        """The 409 a write of ``values`` meets (an email or unique value another contact has)."""
        email = values.get("email")
        if email:
            owner = self.by_email.get(email_key(email))
            if owner is not None and owner != exclude:
                return contact_exists(owner)
        for name in self.catalog.unique_names():
            value = values.get(name)
            if not value:
                continue
            owner = self._unique_index(name).get(value)
            if owner is not None and owner != exclude:
                return HubSpotError(
                    409,
                    "CONFLICT",
                    f"A contact with {name} {value!r} already exists. Existing ID: {owner}",
                )
        return None

    def _unique_index(self, name: str) -> dict[str, int]:
        index = self._unique.get(name)
        if index is None:
            index = {
                c.props[name]: c.id
                for c in self.contacts.values()
                if not c.archived and c.props.get(name)
            }
            self._unique[name] = index
        return index

    # -- writes --------------------------------------------------------------------------------

    def create(
        self,
        values: Mapping[str, str],
        source: Source,
        *,
        created_ms: int | None = None,
        modified_ms: int | None = None,
    ) -> Contact:
        """A new contact with ``values`` (already validated and checked for conflicts)."""
        now = self.clock_ms()
        created = now if created_ms is None else created_ms
        modified = max(created, now if modified_ms is None else modified_ms)
        cid = self.next_id
        self.next_id += 1
        props = {k: v for k, v in values.items() if v != ""}
        props["hs_object_id"] = str(cid)
        props["createdate"] = iso_ms(created)
        props["lastmodifieddate"] = iso_ms(modified)
        contact = Contact(cid, props, created, modified)
        if source != SEED:
            contact.history = {
                name: [Write(value, modified, source.type, source.id, source.label, source.user_id)]
                for name, value in props.items()
                if name not in SYSTEM_PROPERTIES
            }
        self.contacts[cid] = contact
        self.ids.append(cid)
        self._claim(contact)
        self._after_write(contact)
        return contact

    def update(
        self,
        contact: Contact,
        values: Mapping[str, str],
        source: Source,
        *,
        at_ms: int | None = None,
        enforce_lifecycle: bool = True,
    ) -> set[str]:
        """Write ``values`` to the contact; returns the names whose value changed.

        An integration may not move ``lifecyclestage`` backwards (the value is silently kept)
        unless it was cleared first: HubSpot's rule, switched by ``forward_only``.
        """
        at = self.clock_ms() if at_ms is None else at_ms
        values = dict(values)
        if (
            enforce_lifecycle
            and self.forward_only
            and self._is_backwards(
                contact.props.get("lifecyclestage", ""), values.get("lifecyclestage", "")
            )
        ):
            del values["lifecyclestage"]
        changed = {n for n, v in values.items() if contact.props.get(n, "") != v}
        if not changed:
            return changed
        self._before_write(contact)
        self._release(contact)
        history = self._history(contact)
        for name in changed:
            value = values[name]
            if value == "":
                contact.props.pop(name, None)
            else:
                contact.props[name] = value
            entries = history.setdefault(name, [])
            entries.append(Write(value, at, source.type, source.id, source.label, source.user_id))
            del entries[:-HISTORY_DEPTH]
        self._claim(contact)
        self._modified(contact, at)
        self._after_write(contact)
        return changed

    def touch(self, contact: Contact, at_ms: int) -> None:
        """Move ``lastmodifieddate`` without changing a value (a workflow, a recalculation)."""
        self._before_write(contact)
        self._modified(contact, at_ms)
        self._after_write(contact)

    def archive(self, contact: Contact, *, at_ms: int | None = None) -> None:
        """Archive (HubSpot's delete): gone from reads and search, listable with archived=true."""
        self._before_write(contact)
        self._release(contact)
        contact.archived_ms = self.clock_ms() if at_ms is None else at_ms
        insort(self.archived_ids, contact.id)
        self._after_write(contact)

    def merge(self, primary: Contact, secondary: Contact, source: Source) -> Contact:
        """Merge ``secondary`` into ``primary``: the primary keeps its id and fills its gaps.

        The merged-away contact is archived and marked ``merged_into``; reading its id answers the
        primary; the primary lists it in ``hs_merged_object_ids`` and its email in
        ``hs_additional_emails``, and both emails find the primary.
        """
        at = self.clock_ms()
        fill = {
            n: v
            for n, v in secondary.props.items()
            if n not in SYSTEM_PROPERTIES and n != "email" and not primary.props.get(n)
        }
        merged = [i for i in primary.props.get("hs_merged_object_ids", "").split(";") if i]
        merged += [str(secondary.id)]
        merged += [i for i in secondary.props.get("hs_merged_object_ids", "").split(";") if i]
        fill["hs_merged_object_ids"] = ";".join(merged)
        secondary_email = secondary.props.get("email", "")
        if secondary_email:
            extra = [e for e in primary.props.get("hs_additional_emails", "").split(";") if e]
            fill["hs_additional_emails"] = ";".join([*extra, secondary_email])
        self.archive(secondary, at_ms=at)
        secondary.merged_into = primary.id
        self.update(primary, fill, source, at_ms=at, enforce_lifecycle=False)
        if secondary_email:
            self.by_email[email_key(secondary_email)] = primary.id
        return primary

    def _is_backwards(self, current: str, new: str) -> bool:
        if not current or not new:
            return False
        old_rank, new_rank = self.catalog.stage_rank(current), self.catalog.stage_rank(new)
        return old_rank is not None and new_rank is not None and new_rank < old_rank

    def _history(self, contact: Contact) -> dict[str, list[Write]]:
        if contact.history is None:
            seeded = _seed_fields()
            contact.history = {
                name: [Write(value, contact.modified_ms, *seeded)]
                for name, value in contact.props.items()
                if name not in SYSTEM_PROPERTIES
            }
        return contact.history

    def _modified(self, contact: Contact, at_ms: int) -> None:
        contact.modified_ms = at_ms
        contact.props["lastmodifieddate"] = iso_ms(at_ms)

    def _claim(self, contact: Contact) -> None:
        """Register the contact's email and unique values (after a write)."""
        email = contact.props.get("email")
        if email:
            self.by_email.setdefault(email_key(email), contact.id)
        for name in self.catalog.unique_names():
            value = contact.props.get(name)
            if value:
                self._unique_index(name).setdefault(value, contact.id)

    def _release(self, contact: Contact) -> None:
        """Forget the contact's email and unique values (before a write or an archive)."""
        email = contact.props.get("email")
        if email and self.by_email.get(email_key(email)) == contact.id:
            del self.by_email[email_key(email)]
        for name, index in self._unique.items():
            value = contact.props.get(name)
            if value and index.get(value) == contact.id:
                del index[value]

    # -- the search index ------------------------------------------------------------------------

    @contextlib.contextmanager
    def bulk(self) -> Iterator[None]:
        """Seed many contacts: index them all at once at the end, visible immediately."""
        self._bulk = True
        try:
            yield
        finally:
            self._bulk = False
            self.rebuild_index()

    def _before_write(self, contact: Contact) -> None:
        # With a lag, search keeps the old version until the write is indexed.
        if self.lag_ms and not self._bulk and contact.indexed is contact.props:
            contact.indexed = dict(contact.props)

    def _after_write(self, contact: Contact) -> None:
        if self._bulk:
            return
        if not self.lag_ms:
            self._index(contact)
            return
        due = self.clock_ms() + self.lag_ms
        self._pending[contact.id] = due
        self._queue.append((due, contact.id))

    def catch_up(self) -> None:
        """Index every write older than the lag (search calls this before it reads)."""
        now = self.clock_ms()
        while self._queue and self._queue[0][0] <= now:
            due, cid = self._queue.popleft()
            if self._pending.get(cid) == due:
                del self._pending[cid]
                self._index(self.contacts[cid])

    def pending_ids(self) -> set[int]:
        """Contacts with writes search does not see yet."""
        return set(self._pending)

    def _index(self, contact: Contact) -> None:
        cid = contact.id
        if contact.ix is not None:
            self.ix_modified.remove((contact.ix[0], cid))
            self.ix_created.remove((contact.ix[1], cid))
        visible = not contact.archived
        if visible:
            contact.ix = (contact.modified_ms, contact.created_ms)
            self.ix_modified.add((contact.modified_ms, cid))
            self.ix_created.add((contact.created_ms, cid))
            if contact.indexed is None:
                self.ix_id.add((cid, cid))
            contact.indexed = contact.props
        else:
            if contact.indexed is not None:
                self.ix_id.remove((cid, cid))
            contact.ix = None
            contact.indexed = None
        self.index_version += 1

    def rebuild_index(self) -> None:
        """Index every live contact now (after bulk seeding or a restore)."""
        live = [c for c in self.contacts.values() if not c.archived]
        for contact in self.contacts.values():
            contact.indexed = None if contact.archived else contact.props
            contact.ix = None if contact.archived else (contact.modified_ms, contact.created_ms)
        self.ix_modified.rebuild((c.modified_ms, c.id) for c in live)
        self.ix_created.rebuild((c.created_ms, c.id) for c in live)
        self.ix_id.rebuild((c.id, c.id) for c in live)
        self._pending.clear()
        self._queue.clear()
        self.index_version += 1

    # -- persistence -----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Every contact as JSON-able rows."""
        return {
            "next_id": self.next_id,
            "contacts": [_contact_state(c) for c in self.contacts.values()],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load contacts written by :meth:`to_state` and rebuild every lookup."""
        self.contacts.clear()
        self.ids.clear()
        self.archived_ids.clear()
        self.by_email.clear()
        self._unique.clear()
        self.next_id = int(data["next_id"])
        for row in data["contacts"]:
            cid, props, created, modified, archived, merged_into, history = row
            contact = Contact(int(cid), dict(props), int(created), int(modified))
            contact.archived_ms = archived
            contact.merged_into = merged_into
            if history is not None:
                contact.history = {n: [Write(*w) for w in ws] for n, ws in history.items()}
            self.contacts[contact.id] = contact
            self.ids.append(contact.id)
            if contact.archived:
                self.archived_ids.append(contact.id)
            else:
                self._claim(contact)
        for contact in self.contacts.values():
            if contact.merged_into is not None and contact.props.get("email"):
                self.by_email.setdefault(email_key(contact.props["email"]), contact.merged_into)
        self.ids.sort()
        self.archived_ids.sort()
        self.rebuild_index()


def _contact_state(contact: Contact) -> list[Any]:
    history = (
        None
        if contact.history is None
        else {n: [list(w) for w in ws] for n, ws in contact.history.items()}
    )
    return [
        contact.id,
        contact.props,
        contact.created_ms,
        contact.modified_ms,
        contact.archived_ms,
        contact.merged_into,
        history,
    ]
