"""The state store: leads, links, handoffs, outcomes, the journey, cursors, quarantine, runs."""

from __future__ import annotations

from crmbridge.store.records import JourneyEvent, LeaseInfo, QuarantinedRecord, RunRecord
from crmbridge.store.store import Store, open_store

__all__ = ["JourneyEvent", "LeaseInfo", "QuarantinedRecord", "RunRecord", "Store", "open_store"]
