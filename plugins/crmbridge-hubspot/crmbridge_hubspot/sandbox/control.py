"""Control actions of the HubSpot sandbox: seed the portal, and act as a marketer or a sales rep.

Each is a ``control_<name>`` method, reached through ``SandboxControl.control(name, **payload)``
with JSON in and out. Acting as a person is a *human* write (``sourceType`` ``CRM_UI``, a form is
``FORM``, tracking is ``ANALYTICS``), stamped with the sandbox clock, so a test can tell a crmbridge
write from a person's. Seeding is an import: values are stored as given, invalid emails included,
and search sees them at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from crmbridge.testing.demodata import DemoLead, generate
from crmbridge.testing.sandbox import ControlError
from crmbridge_hubspot.sandbox.catalog import iso_ms, options_of, parse_ms
from crmbridge_hubspot.sandbox.errors import HubSpotError
from crmbridge_hubspot.sandbox.portal import Portal
from crmbridge_hubspot.sandbox.state import (
    ANALYTICS,
    CRM_UI,
    FORM,
    SEED,
    SYSTEM_PROPERTIES,
    Contact,
    Source,
    email_key,
)

DEMO_STAGES = {
    "subscriber": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sal": "salesqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
    "recycled": "lead",
    "disqualified": "other",
}
"""The shared lead definition's demo stages, as the demo portal's ``lifecyclestage`` values."""

DEMO_LEAD_STATUS = {"recycled": "BAD_TIMING", "disqualified": "UNQUALIFIED", "sal": "OPEN"}
ANALYTICS_OF_SOURCE = {
    "demo_request": "DIRECT_TRAFFIC",
    "content_download": "OTHER_CAMPAIGNS",
    "webinar": "EMAIL_MARKETING",
    "trade_show": "OFFLINE",
    "organic": "ORGANIC_SEARCH",
    "paid": "PAID_SEARCH",
    "referral": "REFERRALS",
}
EMPLOYEE_BANDS = ((5, "1-5"), (25, "5-25"), (50, "25-50"), (100, "50-100"), (500, "100-500"),
                  (1000, "500-1000"))  # fmt: skip
SALES_STAGES = frozenset({"sal", "sql", "opportunity", "customer"})


def _band(employees: int | None) -> str | None:
    if employees is None:
        return None
    for limit, band in EMPLOYEE_BANDS:
        if employees <= limit:
            return band
    return "1000+"


class ControlActions:
    """The control actions; mixed into the emulator, which provides ``portal``."""

    portal: Portal

    # -- helpers ---------------------------------------------------------------------------------

    def _person(self, user_id: int | None) -> Source:
        owners = self.portal.owners
        uid = user_id if user_id is not None else (int(owners[0]["userId"]) if owners else 1)
        return Source(CRM_UI, f"userId:{uid}", "CRM UI", uid)

    def _contact(self, email: str) -> Contact:
        contact = self.portal.store.find_by_email(email)
        if contact is None:
            raise ControlError(f"hubspot sandbox: no contact with email {email!r}")
        return contact

    def _clean(self, properties: Mapping[str, Any], *, read_only: bool = False) -> dict[str, str]:
        try:
            return self.portal.clean(properties, allow_read_only=read_only)
        except HubSpotError as exc:
            raise ControlError(f"hubspot sandbox: {exc.message}") from exc

    def _write(self, contact: Contact, values: Mapping[str, str], source: Source) -> None:
        try:
            self.portal.update(contact, values, source, human=source.type == CRM_UI)
        except HubSpotError as exc:
            raise ControlError(f"hubspot sandbox: {exc.message}") from exc

    def _describe(self, contact: Contact) -> dict[str, Any]:
        written_by: dict[str, Any] = {}
        for name in contact.props:
            if name in SYSTEM_PROPERTIES:
                continue
            last = contact.last_write(name)
            if last is not None:
                written_by[name] = {**last.to_json(), "human": last.source_type == CRM_UI}
        return {
            "id": str(contact.id),
            "archived": contact.archived,
            "properties": dict(contact.props),
            "written_by": written_by,
        }

    # -- seeding ---------------------------------------------------------------------------------

    def control_seed_demo(self, count: int, seed: int = 42) -> dict[str, int]:
        """Import the marketing side of ``count`` demo leads (duplicates update the first)."""
        now = self.portal.clock.now()
        start = datetime(now.year, now.month, now.day, tzinfo=now.tzinfo) - timedelta(days=330)
        created = merged = skipped = 0
        store = self.portal.store
        with store.bulk():
            for lead in generate(int(count), int(seed), start=start):
                if not lead.in_marketing:
                    skipped += 1
                    continue
                values = self._demo_values(lead)
                created_ms = int(lead.created_at.timestamp() * 1000)
                modified_ms = int(lead.updated_at.timestamp() * 1000)
                existing = store.find_by_email(lead.email)
                if existing is not None:
                    store.update(existing, values, SEED, at_ms=modified_ms, enforce_lifecycle=False)
                    merged += 1
                    continue
                store.create(values, SEED, created_ms=created_ms, modified_ms=modified_ms)
                created += 1
        return {
            "created": created,
            "duplicates_merged": merged,
            "not_in_marketing": skipped,
        }

    def _demo_values(self, lead: DemoLead) -> dict[str, str]:
        owners = self.portal.owners
        values = {
            "email": lead.email,
            "firstname": lead.first_name,
            "lastname": lead.last_name,
            "company": lead.company,
            "jobtitle": lead.job_title,
            "phone": lead.phone,
            "country": lead.country,
            "city": lead.city,
            "website": lead.website,
            "industry": lead.industry,
            "numemployees": _band(lead.employees),
            "lifecyclestage": DEMO_STAGES[lead.stage],
            "hs_lead_status": DEMO_LEAD_STATUS.get(lead.stage),
            "lead_source": lead.lead_source,
            "hs_analytics_source": ANALYTICS_OF_SOURCE.get(lead.lead_source),
            "hs_analytics_num_page_views": str(lead.page_views),
            "hs_email_open": str(lead.email_opens),
            "hs_email_click": str(lead.email_clicks),
            "num_conversion_events": str(lead.form_submissions),
        }
        if lead.form_submissions:
            values["recent_conversion_event_name"] = lead.lead_source.replace("_", " ").title()
            values["recent_conversion_date"] = iso_ms(int(lead.updated_at.timestamp() * 1000))
        if lead.stage in SALES_STAGES and owners:
            values["hubspot_owner_id"] = str(owners[lead.key % len(owners)]["id"])
        return {k: v for k, v in values.items() if v}

    def control_seed_contacts(
        self,
        contacts: list[dict[str, Any]],
        modified_at: str | None = None,
        spread_seconds: float | None = None,
    ) -> list[str]:
        """Import raw property dicts as they are; returns their ids.

        ``modified_at`` (ISO-8601 or epoch ms) back-dates them: created and last modified then,
        yet written now, the way a record committed late shows up. With ``spread_seconds`` each
        gets its own time, spread evenly over the seconds before ``modified_at`` (default: now),
        as the contacts of a real portal were modified, one at a time, over its history.
        """
        at = parse_ms(modified_at) if modified_at is not None else None
        if modified_at is not None and at is None:
            raise ControlError(f"hubspot sandbox: modified_at {modified_at!r} is not a timestamp")
        if spread_seconds is not None and spread_seconds <= 0:
            raise ControlError("hubspot sandbox: spread_seconds must be > 0")
        times: list[int | None] = [at] * len(contacts)
        if spread_seconds is not None and contacts:
            end = at if at is not None else self.portal.now_ms()
            span = spread_seconds * 1000.0
            times = [
                int(end - span + (i + 0.5) * span / len(contacts)) for i in range(len(contacts))
            ]
        store = self.portal.store
        ids: list[str] = []
        with store.bulk():
            for raw, at in zip(contacts, times, strict=True):
                values = {str(k): "" if v is None else str(v) for k, v in raw.items()}
                existing = store.find_by_email(values["email"]) if values.get("email") else None
                if existing is not None:
                    store.update(existing, values, SEED, at_ms=at, enforce_lifecycle=False)
                    ids.append(str(existing.id))
                else:
                    ids.append(str(store.create(values, SEED, created_ms=at, modified_ms=at).id))
        return ids

    def control_seed_bulk(
        self,
        count: int,
        within_seconds: float = 3600.0,
        ending_at: str | None = None,
        prefix: str = "bulk",
    ) -> dict[str, Any]:
        """Create ``count`` plain contacts, created and modified at distinct times in a window.

        The window is the ``within_seconds`` before ``ending_at`` (default: now). This is the
        fast way to a search-cap scenario: 25,000 contacts modified within one hour.
        """
        end = parse_ms(ending_at) if ending_at is not None else self.portal.now_ms()
        if end is None or count <= 0 or within_seconds <= 0:
            raise ControlError("hubspot sandbox: seed_bulk needs count > 0, within_seconds > 0")
        span = within_seconds * 1000.0
        start = end - span
        store = self.portal.store
        first = store.next_id
        with store.bulk():
            for i in range(int(count)):
                at = int(start + (i + 0.5) * span / count)
                values = {
                    "email": f"{prefix}-{i}@bulk.sandbox.example",
                    "firstname": prefix.title(),
                    "lastname": f"Contact {i}",
                    "lifecyclestage": "lead",
                }
                store.create(values, SEED, created_ms=at, modified_ms=at)
        return {
            "created": int(count),
            "first_id": str(first),
            "last_id": str(store.next_id - 1),
            "from": iso_ms(int(start)),
            "to": iso_ms(end),
        }

    def control_bulk_touch(
        self, count: int, within_seconds: float, ending_at: str | None = None
    ) -> dict[str, Any]:
        """Modify the first ``count`` live contacts at distinct times spread over a window.

        The window is the ``within_seconds`` before ``ending_at`` (default: now); no value
        changes, only ``lastmodifieddate`` (as a workflow touching every record would).
        """
        end = parse_ms(ending_at) if ending_at is not None else self.portal.now_ms()
        if end is None or count <= 0 or within_seconds <= 0:
            raise ControlError("hubspot sandbox: bulk_touch needs count > 0, within_seconds > 0")
        store = self.portal.store
        chosen = list(islice(self._live(), int(count)))
        span = within_seconds * 1000.0
        start = end - span
        with store.bulk():
            for i, contact in enumerate(chosen):
                store.touch(contact, int(start + (i + 0.5) * span / len(chosen)))
        return {"touched": len(chosen), "from": iso_ms(int(start)), "to": iso_ms(end)}

    def _live(self) -> Iterator[Contact]:
        for cid in self.portal.store.ids:
            contact = self.portal.store.contacts[cid]
            if not contact.archived:
                yield contact

    # -- acting as people ------------------------------------------------------------------------

    def control_submit_form(
        self, email: str, form: str = "Demo Request", properties: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A form submission: creates or updates the contact and counts a conversion."""
        values = self._clean({**(properties or {}), "email": email})
        source = Source(FORM, str(uuid.uuid5(uuid.NAMESPACE_URL, form)), form)
        contact = self.portal.store.find_by_email(values["email"])
        if contact is None:
            values.setdefault("lifecyclestage", "lead")
            values.setdefault("lead_source", _lead_source_of(form))
            try:
                contact = self.portal.create(values, source)
            except HubSpotError as exc:
                raise ControlError(f"hubspot sandbox: {exc.message}") from exc
        else:
            self._write(contact, values, source)
        conversions = int(contact.props.get("num_conversion_events", "0") or 0) + 1
        counted = {
            "num_conversion_events": str(conversions),
            "recent_conversion_event_name": form,
            "recent_conversion_date": iso_ms(self.portal.now_ms()),
        }
        self._write(contact, counted, source)
        return self._describe(contact)

    def control_add_engagement(
        self, email: str, page_views: int = 0, email_opens: int = 0, email_clicks: int = 0
    ) -> dict[str, Any]:
        """Page views and email opens and clicks tracked for the contact (analytics writes)."""
        contact = self._contact(email)
        increments = {
            "hs_analytics_num_page_views": page_views,
            "hs_email_open": email_opens,
            "hs_email_click": email_clicks,
        }
        values = {
            name: str(int(contact.props.get(name, "0") or 0) + int(extra))
            for name, extra in increments.items()
            if extra
        }
        self._write(contact, values, Source(ANALYTICS, "tracking", "Analytics"))
        return self._describe(contact)

    def control_set_lifecycle_stage(
        self, email: str, stage: str, user_id: int | None = None
    ) -> dict[str, Any]:
        """A person sets the stage in the UI (backwards too)."""
        return self.control_edit_contact(email, {"lifecyclestage": stage}, user_id)

    def control_edit_contact(
        self, email: str, properties: dict[str, Any], user_id: int | None = None
    ) -> dict[str, Any]:
        """A person edits the contact in the UI (validated as the UI would)."""
        contact = self._contact(email)
        self._write(contact, self._clean(properties), self._person(user_id))
        return self._describe(contact)

    def control_archive_contact(self, email: str) -> dict[str, Any]:
        """A person deletes the contact (HubSpot archives it)."""
        contact = self._contact(email)
        self.portal.store.archive(contact)
        return self._describe(contact)

    def control_merge_contacts(
        self, primary_email: str, secondary_email: str, user_id: int | None = None
    ) -> dict[str, Any]:
        """A person merges two contacts; the secondary's id then answers the primary."""
        primary, secondary = self._contact(primary_email), self._contact(secondary_email)
        if primary.id == secondary.id:
            raise ControlError("hubspot sandbox: cannot merge a contact with itself")
        self.portal.store.merge(primary, secondary, self._person(user_id))
        return {**self._describe(primary), "merged_id": str(secondary.id)}

    def control_get_contact(self, email: str) -> dict[str, Any] | None:
        """Every value of the contact and who last wrote each (``human`` for UI edits)."""
        contact = self.portal.store.find_by_email(email)
        if contact is None:
            key = email_key(email)
            for cid in reversed(self.portal.store.archived_ids):
                archived = self.portal.store.contacts[cid]
                if email_key(archived.props.get("email", "")) == key:
                    return self._describe(archived)
            return None
        return self._describe(contact)

    def control_export_contacts(
        self,
        properties: list[str] | None = None,
        history: list[str] | None = None,
        include_archived: bool = False,
    ) -> list[dict[str, Any]]:
        """Every contact in id order, for a test to compare a portal's state as a whole.

        ``properties`` limits the values returned (default: all); ``history`` lists properties
        whose values are returned oldest first, as they were written (the last
        ``HISTORY_DEPTH`` only). Not rate limited, not counted: it is no API call.
        """
        out: list[dict[str, Any]] = []
        store = self.portal.store
        for cid in sorted(store.contacts):
            contact = store.contacts[cid]
            if contact.merged_into is not None or (contact.archived and not include_archived):
                continue
            props = contact.props
            item: dict[str, Any] = {
                "id": str(contact.id),
                "archived": contact.archived,
                "properties": (
                    dict(props) if properties is None else {k: props.get(k) for k in properties}
                ),
            }
            if history:
                item["history"] = {
                    name: [w.value for w in reversed(contact.history_of(name))] for name in history
                }
            out.append(item)
        return out

    def control_set_property_options(self, name: str, options: list[Any]) -> dict[str, Any]:
        """Replace an enumeration's options (an admin edits the property: picklist drift)."""
        prop = self.portal.catalog.get(name)
        if prop is None or prop.type != "enumeration":
            raise ControlError(f"hubspot sandbox: {name!r} is not an enumeration property")
        prop.options = options_of(
            (str(o), str(o)) if not isinstance(o, Mapping) else (str(o["value"]), str(o["label"]))
            for o in options
        )
        prop.updated_at = self.portal.now_ms()
        return prop.to_json()

    def control_expire_tokens(self) -> list[str]:
        """Expire every access token; calls then answer 401 EXPIRED_AUTHENTICATION."""
        now = self.portal.now_ms()
        for token in self.portal.apps:
            self.portal.expired[token] = now
        return sorted(self.portal.apps)

    def control_add_token(self, token: str) -> dict[str, Any]:
        """Accept a new access token (a rotated private-app token); it is valid until expired."""
        if token not in self.portal.apps:
            self.portal.apps[token] = 3_000_001 + len(self.portal.apps)
        self.portal.expired.pop(token, None)
        return {"token": token, "app_id": self.portal.apps[token]}

    def control_stats(self) -> dict[str, Any]:
        """Counts of contacts and how the last search was planned."""
        store = self.portal.store
        return {
            "contacts": store.live_count(),
            "archived": len(store.archived_ids),
            "pending_index": len(store.pending_ids()),
            "api_usage_today": self.portal.limits.daily.used,
        }


def _lead_source_of(form: str) -> str:
    name = form.lower()
    if "demo" in name:
        return "demo_request"
    if "webinar" in name:
        return "webinar"
    return "content_download"
