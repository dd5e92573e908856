"""What every step of a sync cycle shares: the connectors, the store, hooks, counts, the clock,
the stop flag, the dry-run plan, and transactions that a dry run rolls back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from crmbridge.connector import Connector
from crmbridge.context import HookContext, RunCounts
from crmbridge.definition import LeadDefinition
from crmbridge.store import Store
from crmbridge.store.records import LeaseInfo
from crmbridge.sync.courtesy import QuotaGuard
from crmbridge.sync.hooks import HookRunner
from crmbridge.sync.journal import Journal
from crmbridge.sync.plan import Plan

log = logging.getLogger("crmbridge.sync")


class Stopped(Exception):
    """The cycle was asked to stop (SIGTERM) and stopped between batches."""


@dataclass
class Cycle:
    """One run of a pipeline: the parts every step uses."""

    pipeline: str
    store: Store
    definition: LeadDefinition
    hooks: HookRunner
    ctx: HookContext
    marketing: Connector
    sales: Connector
    owner: str
    lease: LeaseInfo | None
    run_id: str
    clock: Callable[[], datetime]
    quota: QuotaGuard
    dry_run: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    counts: RunCounts = field(default_factory=RunCounts)
    plan: Plan = field(default_factory=Plan)
    _dry_conn: Connection | None = None
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    handoff_candidates: set[int] | None = None
    """When a set (a backfill), intake adds the leads it leaves at the handoff stage, so the
    backfill's handoffs between pages look at those instead of scanning every lead."""
    _quarantine_rows: list[dict[str, Any]] = field(default_factory=list)
    _writable: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def marketing_system(self) -> str:
        return self.marketing.system_name()

    @property
    def sales_system(self) -> str:
        return self.sales.system_name()

    def now(self) -> datetime:
        return self.clock()

    def writable(self, system: str) -> tuple[str, ...]:
        """The shared fields crmbridge may write to an existing record of ``system``."""
        cached = self._writable.get(system)
        if cached is None:
            mapping = self.definition.system(system)
            cached = self._writable[system] = tuple(mapping.writable_fields(creating=False))
        return cached

    @property
    def engagement_fields(self) -> frozenset[str]:
        """The fields the definition's engagement rules read (new activity shows there)."""
        return frozenset(rule.field for rule in self.definition.engagement_rules)

    def journal(self) -> Journal:
        return Journal(run_id=self.run_id, stamp=self.definition.stamp)

    def check_stop(self) -> None:
        """Raise :class:`Stopped` when a stop was asked for (between batches only)."""
        if self.stop.is_set():
            raise Stopped(f"pipeline {self.pipeline}: stopped between batches as asked")

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction; in a dry run, a savepoint of one transaction rolled back at the end.

        Callbacks queued in :attr:`after_commit` during the transaction (notify hooks) run once it
        committed, so a hook never announces what a rollback then took back.
        """
        self._quarantine_rows = []
        if self.dry_run:
            if self._dry_conn is None:
                self._dry_conn = self.store.engine.connect()
                self._dry_conn.begin()
            with self._dry_conn.begin_nested():
                yield self._dry_conn
                self._flush_quarantine(self._dry_conn)
        else:
            with self.store.transaction() as conn:
                yield conn
                self._flush_quarantine(conn)
        pending, self.after_commit = self.after_commit, []
        for callback in pending:
            callback()

    def commit_cursor(self, conn: Connection, system: str, stream: str, position: Any) -> None:
        """Move a cursor in the caller's transaction, fenced by this cycle's lease (the pipeline's,
        or a backfill chunk's own)."""
        if self.dry_run or self.lease is None:
            return
        self.store.commit_cursor(
            conn,
            pipeline=self.pipeline,
            system=system,
            stream=stream,
            position=position,
            owner=self.owner,
            fence=self.lease.fence,
            now=self.now(),
            lease=self.lease.pipeline,
        )

    def close(self) -> None:
        """End a dry run's transaction (rolled back: a dry run writes nothing)."""
        if self._dry_conn is not None:
            self._dry_conn.rollback()
            self._dry_conn.close()
            self._dry_conn = None

    def quarantine(
        self,
        conn: Connection,
        *,
        system: str,
        native_id: str,
        stage: str,
        error: str,
        raw: Any,
        email: str | None = None,
        field_name: str | None = None,
        rule: str | None = None,
        retry: bool = False,
    ) -> None:
        """Quarantine one record (written with the transaction's other writes, in one statement)
        and announce it after commit to ``crm_lead_quarantined``.

        ``retry``: the failure was transient; the entry is marked ``retry`` and crmbridge tries
        the record again at the next cycle by itself (a person need not act).
        """
        self._quarantine_rows.append(
            {
                "system": system,
                "native_id": native_id,
                "stage": stage,
                "error": error,
                "raw": raw,
                "email": email,
                "field": field_name,
                "rule": rule,
                "status": "retry" if retry else "open",
            }
        )
        self.counts.quarantined += 1
        log.warning(
            "quarantined %s record %s (%s): %s%s",
            system,
            native_id,
            stage,
            error,
            "; it is tried again at the next cycle" if retry else "",
            extra={"fields": {"pipeline": self.pipeline, "rule": rule, "field": field_name}},
        )

    def _flush_quarantine(self, conn: Connection) -> None:
        rows, self._quarantine_rows = self._quarantine_rows, []
        if not rows:
            return
        ids = self.store.quarantine_many(conn, self.pipeline, rows, self.now())
        if self.hooks.implemented("crm_lead_quarantined"):
            for entry in ids:
                record = self.store.quarantined_in(conn, entry)
                self.after_commit.append(
                    partial(self.hooks.notify, "crm_lead_quarantined", ctx=self.ctx, record=record)
                )
