"""The contacts object API: list with cursor paging, create, read, update, archive and merge."""

from __future__ import annotations

from aiohttp import web

from crmbridge.testing.sandbox import Emulator
from crmbridge_hubspot.sandbox.errors import (
    HubSpotError,
    json_response,
    object_not_found,
    validation_error,
)
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.state import Contact
from crmbridge_hubspot.sandbox.wire import (
    cursor,
    query_bool,
    query_int,
    query_list,
    read_object,
    token_of,
)

CONTACTS = "/crm/v3/objects/contacts"
LIST_MAX = 100


class ObjectsApi:
    """``/crm/v3/objects/contacts[/{contactId}]`` and ``/merge``."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def add_routes(self, app: web.Application) -> None:
        """Add the object routes."""
        app.router.add_get(CONTACTS, self.list_page)
        app.router.add_post(CONTACTS, self.create)
        app.router.add_post(CONTACTS + "/merge", self.merge)
        app.router.add_get(CONTACTS + "/{contactId}", self.read)
        app.router.add_patch(CONTACTS + "/{contactId}", self.update)
        app.router.add_delete(CONTACTS + "/{contactId}", self.archive)

    async def list_page(self, request: web.Request) -> web.Response:
        """``GET``: a page of contacts in id order; ``paging.next.after`` resumes after it."""
        limit = query_int(request, "limit", 10, maximum=LIST_MAX)
        after = cursor(request.query.get("after"))
        properties = query_list(request, "properties")
        history = query_list(request, "propertiesWithHistory") or []
        archived = query_bool(request, "archived")
        contacts, next_id = self.portal.store.page(after, limit, archived=archived)
        body: dict[str, object] = {
            "results": [self.portal.public(c, properties, history=history) for c in contacts]
        }
        if next_id is not None:
            link = f"{request.url.with_query(None)}?limit={limit}&after={next_id}"
            body["paging"] = {"next": {"after": str(next_id), "link": link}}
        Emulator.count_records(request, records_out=len(contacts))
        return json_response(body)

    async def create(self, request: web.Request) -> web.Response:
        """``POST``: 201 with the new contact; 409 when its email belongs to a contact."""
        body = await read_object(request)
        values = self.portal.clean(body.get("properties") or {})
        contact = self.portal.create(values, self.portal.integration(token_of(request)))
        Emulator.count_records(request, records_in=1, records_out=1)
        return json_response(self.portal.public(contact, list(values)), 201)

    def _lookup(self, request: web.Request, *, archived: bool = False) -> Contact:
        raw = request.match_info["contactId"]
        id_property = request.query.get("idProperty") or None
        if id_property not in (None, "hs_object_id", "email"):
            prop = self.portal.catalog.get(id_property)
            if prop is None or not prop.has_unique_value:
                raise validation_error(
                    f"{id_property} is not a unique identifier property for contacts; use the "
                    "record id, email, or a property with hasUniqueValue"
                )
        contact = self.portal.store.find(raw, id_property, archived=archived)
        if contact is None:
            raise object_not_found(raw)
        return contact

    async def read(self, request: web.Request) -> web.Response:
        """``GET {contactId}[?idProperty=email]``: the contact, or 404."""
        contact = self._lookup(request, archived=query_bool(request, "archived"))
        properties = query_list(request, "properties")
        history = query_list(request, "propertiesWithHistory") or []
        Emulator.count_records(request, records_out=1)
        return json_response(self.portal.public(contact, properties, history=history))

    async def update(self, request: web.Request) -> web.Response:
        """``PATCH {contactId}``: 200 with the contact; unknown or read-only property → 400."""
        contact = self._lookup(request)
        body = await read_object(request)
        values = self.portal.clean(body.get("properties") or {})
        self.portal.update(contact, values, self.portal.integration(token_of(request)))
        Emulator.count_records(request, records_in=1, records_out=1)
        return json_response(self.portal.public(contact, list(values)))

    async def archive(self, request: web.Request) -> web.Response:
        """``DELETE {contactId}``: 204, also when the contact is already gone (as HubSpot)."""
        contact = self.portal.store.get(request.match_info["contactId"])
        if contact is not None:
            self.portal.store.archive(contact)
        Emulator.count_records(request, records_in=1)
        return web.Response(status=204)

    async def merge(self, request: web.Request) -> web.Response:
        """``POST merge``: merge ``objectIdToMerge`` into ``primaryObjectId``; 200 with it."""
        body = await read_object(request)
        primary_id, other_id = body.get("primaryObjectId"), body.get("objectIdToMerge")
        if not primary_id or not other_id:
            raise validation_error("primaryObjectId and objectIdToMerge are required")
        primary = self.portal.store.get(str(primary_id))
        other = self.portal.store.get(str(other_id))
        if primary is None:
            raise object_not_found(str(primary_id))
        if other is None:
            raise object_not_found(str(other_id))
        if primary.id == other.id:
            raise HubSpotError(
                400, "VALIDATION_ERROR", f"Cannot merge contact {primary.id} with itself"
            )
        self.portal.store.merge(primary, other, self.portal.integration(token_of(request)))
        Emulator.count_records(request, records_in=2, records_out=1)
        return json_response(self.portal.public(primary))
