"""HubSpot's owners (sales reps): a handoff's owner given as an email becomes the
``hubspot_owner_id`` HubSpot needs, and an owner id read back becomes an email people know.

The owner list is read once per connector (a page of 100 per call) and kept; an owner added in
HubSpot later is found by reading the list again once, when an email is not known.
"""

from __future__ import annotations

import logging
from typing import Any

from crmbridge import FatalError
from crmbridge_hubspot.connector.client import HubSpotClient
from crmbridge_hubspot.connector.errors import HubSpotRequestError

log = logging.getLogger("crmbridge.connector.hubspot")


class OwnerDirectory:
    """Owner id ↔ email of one portal, read on first use."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client
        self._by_email: dict[str, str] | None = None
        self._by_id: dict[str, str] = {}
        self._unavailable = False

    def _load(self) -> None:
        by_email: dict[str, str] = {}
        after: str | None = None
        while True:
            answer: Any = self.client.call(
                "GET owners",
                self.client.owners_api.get_page_with_http_info,
                limit=100,
                after=after,
                archived=False,
            )
            for owner in answer.results or []:
                if owner.email:
                    by_email[str(owner.email).lower()] = str(owner.id)
                    self._by_id[str(owner.id)] = str(owner.email)
            paging = getattr(answer, "paging", None)
            after = getattr(getattr(paging, "next", None), "after", None)
            if not after:
                break
        self._by_email = by_email

    def id_for(self, owner: str) -> str | None:
        """The owner id of ``owner`` (an id already, or a user's email); None if unknown."""
        text = owner.strip()
        if text.isdigit():
            return text
        if "@" not in text:
            return None
        key = text.lower()
        if self._by_email is None or key not in self._by_email:
            self._load()
        assert self._by_email is not None
        return self._by_email.get(key)

    def email_of(self, owner_id: str | None) -> str | None:
        """The email of an owner id, or the id itself when the owner list cannot be read."""
        if not owner_id:
            return None
        if owner_id not in self._by_id and not self._unavailable and self._by_email is None:
            try:
                self._load()
            except (HubSpotRequestError, FatalError) as exc:
                # Reading owners needs its own scope; without it verdicts still name the owner id.
                self._unavailable = True
                log.warning("hubspot: owners cannot be read (%s); owner ids are shown", exc)
        return self._by_id.get(owner_id, owner_id)
