"""The journey: every step that changes something about a lead, with its reasons, buffered per
batch and written in one statement with the batch's other writes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from crmbridge.store import Store
from crmbridge.store.lifecycle import jsonable


class Journal:
    """Events of one batch, written when the batch commits (never for a dry run's rollback)."""

    def __init__(self, *, run_id: str | None, stamp: Mapping[str, str]) -> None:
        self.run_id = run_id
        self.version = stamp.get("version")
        self.hash = stamp.get("hash")
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        lead_id: int,
        at: datetime,
        kind: str,
        summary: str,
        *,
        system: str | None = None,
        actor: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.rows.append(
            {
                "lead_id": lead_id,
                "at": at,
                "kind": kind,
                "summary": summary,
                "system": system,
                "actor": actor,
                "data": jsonable(data) if data else None,
                "run_id": self.run_id,
                "definition_version": self.version,
                "definition_hash": self.hash,
            }
        )

    def flush(self, store: Store, conn: Connection) -> int:
        count = len(self.rows)
        store.append_events(conn, self.rows)
        self.rows = []
        return count
