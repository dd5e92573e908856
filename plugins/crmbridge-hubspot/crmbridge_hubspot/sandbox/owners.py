"""``GET /crm/v3/owners``: the sales reps contacts can be assigned to (``hubspot_owner_id``)."""

from __future__ import annotations

from aiohttp import web

from crmbridge_hubspot.sandbox.errors import HubSpotError, json_response
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.wire import cursor, query_bool, query_int

OWNERS = "/crm/v3/owners"


class OwnersApi:
    """The owners list (paged like HubSpot's, with an ``email`` filter) and one owner by id."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def add_routes(self, app: web.Application) -> None:
        # The SDK asks for "/crm/v3/owners/" with a trailing slash.
        """Add the owners routes."""
        app.router.add_get(OWNERS, self.list_owners)
        app.router.add_get(OWNERS + "/", self.list_owners)
        app.router.add_get(OWNERS + "/{ownerId}", self.read)

    async def list_owners(self, request: web.Request) -> web.Response:
        """``GET``: a page of owners, optionally the one with ``email``."""
        limit = query_int(request, "limit", 100, maximum=500)
        after = cursor(request.query.get("after"))
        archived = query_bool(request, "archived")
        email = (request.query.get("email") or "").lower()
        owners = [
            o
            for o in self.portal.owners
            if o["archived"] == archived and (not email or o["email"].lower() == email)
        ]
        page = owners[after : after + limit]
        body: dict[str, object] = {"results": page}
        if after + limit < len(owners):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(body)

    async def read(self, request: web.Request) -> web.Response:
        """``GET {ownerId}``: one owner, or 404."""
        owner_id = request.match_info["ownerId"]
        for owner in self.portal.owners:
            if owner["id"] == owner_id:
                return json_response(owner)
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Owner {owner_id} not found")
