"""The properties API for contacts: read, create, update and archive definitions, and groups."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from crmbridge_hubspot.sandbox.catalog import TYPES_FIELD_TYPES, PropertyDef, from_api_fields
from crmbridge_hubspot.sandbox.errors import HubSpotError, json_response, validation_error
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.wire import query_bool, read_object

PROPERTIES = "/crm/v3/properties/{objectType}"
CONTACT_TYPES = frozenset({"contacts", "contact", "0-1"})
REQUIRED = ("name", "label", "type", "fieldType", "groupName")
DEFINED_EDITABLE = frozenset({"options", "hidden", "displayOrder", "description"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class PropertiesApi:
    """``/crm/v3/properties/contacts[/{name}]`` and ``/crm/v3/properties/contacts/groups``."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def add_routes(self, app: web.Application) -> None:
        """Add the properties and property-group routes."""
        app.router.add_get(PROPERTIES + "/groups", self.list_groups)
        app.router.add_post(PROPERTIES + "/groups", self.create_group)
        app.router.add_get(PROPERTIES, self.list_properties)
        app.router.add_post(PROPERTIES, self.create)
        app.router.add_get(PROPERTIES + "/{propertyName}", self.read)
        app.router.add_patch(PROPERTIES + "/{propertyName}", self.update)
        app.router.add_delete(PROPERTIES + "/{propertyName}", self.archive)

    @staticmethod
    def _object_type(request: web.Request) -> None:
        object_type = request.match_info["objectType"]
        if object_type not in CONTACT_TYPES:
            raise HubSpotError(
                400,
                "VALIDATION_ERROR",
                f"Unable to infer object type from: {object_type} (the sandbox emulates contacts)",
            )

    def _get(self, request: web.Request, *, archived: bool = False) -> PropertyDef:
        self._object_type(request)
        name = request.match_info["propertyName"]
        prop = self.portal.catalog.get(name, archived=archived)
        if prop is None:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return prop

    # -- properties ------------------------------------------------------------------------------

    async def list_properties(self, request: web.Request) -> web.Response:
        """``GET``: every live property (archived ones with ``archived=true``)."""
        self._object_type(request)
        archived = query_bool(request, "archived")
        props = self.portal.catalog.all(archived=archived)
        return json_response({"results": [p.to_json() for p in props]})

    async def read(self, request: web.Request) -> web.Response:
        """``GET {propertyName}``: one property, or 404."""
        prop = self._get(request, archived=query_bool(request, "archived"))
        return json_response(prop.to_json())

    async def create(self, request: web.Request) -> web.Response:
        """201 with the property; 409 when the name is taken (also by an archived property)."""
        self._object_type(request)
        body = await read_object(request)
        missing = [k for k in REQUIRED if not body.get(k)]
        if missing:
            raise validation_error(f"Missing required field(s) {missing} for a new property")
        name = str(body["name"])
        if not _NAME_RE.match(name) or name.startswith("hs_"):
            raise validation_error(
                f"Invalid property name {name!r}: use lower-case letters, digits and underscores, "
                "starting with a letter; the hs_ prefix is reserved"
            )
        if self.portal.catalog.exists(name):
            raise HubSpotError(
                409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already exists."
            )
        now = self.portal.now_ms()
        prop = PropertyDef(
            name=name,
            label=str(body["label"]),
            type=str(body["type"]),
            field_type=str(body["fieldType"]),
            hubspot_defined=False,
            created_at=now,
            updated_at=now,
        )
        prop = replace(prop, **from_api_fields(body))
        self._check(prop)
        self.portal.catalog.put(prop)
        return json_response(prop.to_json(), 201)

    async def update(self, request: web.Request) -> web.Response:
        """200 with the property; a HubSpot-defined property may change only its options."""
        prop = self._get(request)
        body = await read_object(request)
        if prop.hubspot_defined:
            refused = sorted(set(body) - DEFINED_EDITABLE)
            if refused:
                raise validation_error(
                    f"{prop.name} is a HubSpot-defined property; {refused} cannot be changed"
                )
            if "options" in body and (prop.type != "enumeration" or prop.external_options):
                raise validation_error(f"The options of {prop.name} cannot be changed")
        updated = replace(prop, **from_api_fields(body), updated_at=self.portal.now_ms())
        self._check(updated)
        self.portal.catalog.put(updated)
        return json_response(updated.to_json())

    async def archive(self, request: web.Request) -> web.Response:
        """204; HubSpot-defined properties cannot be archived."""
        prop = self._get(request)
        if prop.hubspot_defined:
            raise validation_error(
                f"{prop.name} is a HubSpot-defined property and cannot be archived"
            )
        prop.archived_at = self.portal.now_ms()
        self.portal.catalog.put(prop)
        return web.Response(status=204)

    def _check(self, prop: PropertyDef) -> None:
        allowed = TYPES_FIELD_TYPES.get(prop.type)
        if allowed is None:
            raise validation_error(
                f"Invalid type {prop.type!r}; expected one of {sorted(TYPES_FIELD_TYPES)}"
            )
        if prop.field_type not in allowed:
            raise validation_error(
                f"fieldType {prop.field_type!r} is not valid for type {prop.type!r}; expected one "
                f"of {sorted(allowed)}"
            )
        if prop.group_name not in self.portal.catalog.groups:
            raise validation_error(f"Property group {prop.group_name!r} does not exist")
        values = [o["value"] for o in prop.options]
        if len(values) != len(set(values)) or any(v == "" for v in values):
            raise validation_error(f"The options of {prop.name} need distinct, non-empty values")
        if prop.has_unique_value and prop.type not in {"string", "number"}:
            raise validation_error("hasUniqueValue is only allowed on string and number properties")

    # -- groups ----------------------------------------------------------------------------------

    async def list_groups(self, request: web.Request) -> web.Response:
        """``GET groups``: the property groups."""
        self._object_type(request)
        return json_response({"results": list(self.portal.catalog.groups.values())})

    async def create_group(self, request: web.Request) -> web.Response:
        """``POST groups``: 201 with the new group; 409 when the name is taken."""
        self._object_type(request)
        body = await read_object(request)
        name, label = body.get("name"), body.get("label")
        if not name or not label:
            raise validation_error("A property group needs a name and a label")
        if name in self.portal.catalog.groups:
            raise HubSpotError(
                409, "OBJECT_ALREADY_EXISTS", f"Property group named '{name}' already exists."
            )
        group: Mapping[str, Any] = {
            "name": str(name),
            "label": str(label),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        self.portal.catalog.groups[str(name)] = dict(group)
        return json_response(group, 201)
