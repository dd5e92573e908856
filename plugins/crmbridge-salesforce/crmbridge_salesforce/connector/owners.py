"""Owners of handed-off leads: user and queue ids, and the names routing gives instead.

A route may name the owner by id (``005…`` a user, ``00G…`` a queue) or by a user's username,
email or name, or a queue's name or developer name. Names are looked up once, two queries for all
the names a batch brings that were not seen before, and kept for the connector's life.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from crmbridge_salesforce.connector import soql
from crmbridge_salesforce.connector.records import chunks
from crmbridge_salesforce.connector.session import SalesforceSession

_OWNER_ID = re.compile(r"^(005|00G)[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")
LOOKUP_CHUNK = 100


def is_owner_id(text: str) -> bool:
    """Whether ``text`` is a user (``005``) or queue (``00G``) id."""
    return _OWNER_ID.match(text) is not None


class OwnerDirectory:
    """Owner names → user or queue ids, resolved with as few queries as possible."""

    def __init__(self, session: SalesforceSession) -> None:
        self.session = session
        self._ids: dict[str, str | None] = {}
        self._why: dict[str, str] = {}

    def resolve(self, owners: Iterable[str]) -> None:
        """Look up every owner name not resolved yet (ids need no lookup)."""
        wanted = sorted({o for o in owners if o and not is_owner_id(o)} - set(self._ids))
        if not wanted:
            return
        found: dict[str, list[str]] = {name.casefold(): [] for name in wanted}
        for part in map(list, chunks(wanted, LOOKUP_CHUNK)):
            for user in self._query_users(part):
                for key in ("Username", "Email", "Name"):
                    text = str(user.get(key) or "").casefold()
                    if text in found and user["Id"] not in found[text]:
                        found[text].append(str(user["Id"]))
            for queue in self._query_queues(part):
                for key in ("Name", "DeveloperName"):
                    text = str(queue.get(key) or "").casefold()
                    if text in found and queue["Id"] not in found[text]:
                        found[text].append(str(queue["Id"]))
        for name in wanted:
            ids = found[name.casefold()]
            if len(ids) == 1:
                self._ids[name] = ids[0]
            else:
                self._ids[name] = None
                self._why[name] = (
                    f"{len(ids)} active users or queues match owner {name!r}"
                    if ids
                    else f"no active user (username, email or name) or lead queue is {name!r}"
                )

    def _query_users(self, names: list[str]) -> list[dict[str, Any]]:
        query = soql.select(
            "User",
            ["Id", "Username", "Email", "Name"],
            [
                soql.equals("IsActive", True),
                soql.any_of(
                    soql.is_in("Username", names),
                    soql.is_in("Email", names),
                    soql.is_in("Name", names),
                ),
            ],
        )
        answer = self.session.call("query User (owners)", lambda sf: sf.query_all(query))
        return list(answer.get("records") or [])

    def _query_queues(self, names: list[str]) -> list[dict[str, Any]]:
        query = soql.select(
            "Group",
            ["Id", "Name", "DeveloperName"],
            [
                soql.equals("Type", "Queue"),
                soql.any_of(soql.is_in("Name", names), soql.is_in("DeveloperName", names)),
            ],
        )
        answer = self.session.call("query Group (queues)", lambda sf: sf.query_all(query))
        return list(answer.get("records") or [])

    def id_of(self, owner: str) -> str | None:
        """The id for ``owner`` (call :meth:`resolve` first), or ``None`` when none matches."""
        if is_owner_id(owner):
            return owner
        return self._ids.get(owner)

    def why_not(self, owner: str) -> str:
        """Why ``owner`` has no id."""
        return self._why.get(owner, f"owner {owner!r} was not looked up")
