"""One emulated HubSpot account: its properties, contacts, owners, tokens and limits, and the rules
every API write follows (validation, duplicate emails, the lifecycle-stage rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crmbridge.testing.sandbox import SandboxClock
from crmbridge_hubspot.sandbox.catalog import (
    DEFAULT_PROPERTIES,
    Catalog,
    default_properties,
    iso_ms,
)
from crmbridge_hubspot.sandbox.config import HubSpotOptions
from crmbridge_hubspot.sandbox.errors import HubSpotError, property_error
from crmbridge_hubspot.sandbox.ratelimit import AccountLimits
from crmbridge_hubspot.sandbox.state import INTEGRATION, Contact, ContactStore, Source

DEFAULT_OWNERS: tuple[dict[str, Any], ...] = (
    {"id": "70001", "email": "ava.stone@sandbox-sales.example", "firstName": "Ava",
     "lastName": "Stone", "userId": 9001},
    {"id": "70002", "email": "noah.kim@sandbox-sales.example", "firstName": "Noah",
     "lastName": "Kim", "userId": 9002},
    {"id": "70003", "email": "lena.fischer@sandbox-sales.example", "firstName": "Lena",
     "lastName": "Fischer", "userId": 9003},
)  # fmt: skip


class Portal:
    """The account a HubSpot emulator serves; handlers and control actions both work on it."""

    def __init__(self, options: HubSpotOptions, clock: SandboxClock) -> None:
        self.options = options
        self.clock = clock
        now = self.now_ms()
        self.owners: list[dict[str, Any]] = [
            _owner(o, now)
            for o in (options.owners if options.owners is not None else DEFAULT_OWNERS)
        ]
        self.catalog = Catalog(default_properties(now, self.owners), (o["id"] for o in self.owners))
        for spec in options.properties:
            self.catalog.apply_override(spec, now)
        self.store = ContactStore(
            self.catalog,
            self.now_ms,
            lag_ms=options.search_index_lag_ms,
            forward_only=options.lifecycle_forward_only,
        )
        self.limits = AccountLimits(options, clock.now)
        # A private app per token; its id is the sourceId of the app's writes.
        self.apps: dict[str, int] = {t: 3_000_001 + i for i, t in enumerate(options.tokens)}
        self.expired: dict[str, int] = {}

    def now_ms(self) -> int:
        """The sandbox clock in epoch milliseconds."""
        return int(self.clock.now().timestamp() * 1000)

    # -- the rules of API writes -----------------------------------------------------------------

    def integration(self, token: str) -> Source:
        """The source of writes made with ``token`` (a private app)."""
        app_id = self.apps.get(token, 0)
        return Source(INTEGRATION, str(app_id), f"Private app {app_id}")

    def clean(self, values: Any, *, allow_read_only: bool = False) -> dict[str, str]:
        """Validated, normalised values of a write, or the 400 HubSpot answers."""
        if not isinstance(values, Mapping):
            raise HubSpotError(400, "VALIDATION_ERROR", "properties must be an object")
        clean, problems = self.catalog.validate(values, allow_read_only=allow_read_only)
        if problems:
            raise property_error(problems, self.options.portal_id)
        return clean

    def create(self, values: Mapping[str, str], source: Source) -> Contact:
        """Create a contact from clean values, or raise the 409 a duplicate meets."""
        conflict = self.store.conflict(values)
        if conflict is not None:
            raise conflict
        return self.store.create(values, source)

    def update(
        self, contact: Contact, values: Mapping[str, str], source: Source, *, human: bool = False
    ) -> Contact:
        """Update a contact with clean values (a person may move the lifecycle stage backwards)."""
        conflict = self.store.conflict(values, exclude=contact.id)
        if conflict is not None:
            raise conflict
        self.store.update(contact, values, source, enforce_lifecycle=not human)
        return contact

    # -- the public object shape ---------------------------------------------------------------

    def public(
        self,
        contact: Contact,
        properties: Sequence[str] | None = None,
        *,
        history: Sequence[str] = (),
        view: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A contact as the API returns it: requested properties (null when empty) and stamps.

        ``view`` is the search index's version of the contact when search answers.
        """
        values = contact.props if view is None else view
        names = list(properties) if properties else list(DEFAULT_PROPERTIES)
        names += [n for n in ("createdate", "hs_object_id", "lastmodifieddate") if n not in names]
        known = [n for n in names if self.catalog.get(n) is not None]
        updated = contact.ix[0] if view is not None and contact.ix else contact.modified_ms
        body: dict[str, Any] = {
            "id": str(contact.id),
            "properties": {n: values.get(n) for n in known},
            "createdAt": iso_ms(contact.created_ms),
            "updatedAt": iso_ms(updated),
            "archived": contact.archived,
        }
        if contact.archived_ms is not None:
            body["archivedAt"] = iso_ms(contact.archived_ms)
        if history:
            body["propertiesWithHistory"] = {
                n: [w.to_json() for w in contact.history_of(n)]
                for n in history
                if self.catalog.get(n) is not None
            }
        return body

    # -- persistence -----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The whole portal as JSON-able data."""
        return {
            "catalog": self.catalog.to_state(),
            "contacts": self.store.to_state(),
            "owners": self.owners,
            "expired": self.expired,
            "limits": self.limits.to_state(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load a portal written by :meth:`to_state`."""
        self.catalog = Catalog.from_state(data["catalog"])
        self.store.catalog = self.catalog
        self.store.restore(data["contacts"])
        self.owners = list(data["owners"])
        self.expired = {k: int(v) for k, v in data["expired"].items()}
        self.limits.restore(data["limits"])


def _owner(data: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    stamp = iso_ms(now_ms)
    return {
        "id": str(data["id"]),
        "email": data.get("email", ""),
        "type": "PERSON",
        "firstName": data.get("firstName", ""),
        "lastName": data.get("lastName", ""),
        "userId": int(data.get("userId", 0)),
        "userIdIncludingInactive": int(data.get("userId", 0)),
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": bool(data.get("archived", False)),
        "teams": list(data.get("teams", [])),
    }
