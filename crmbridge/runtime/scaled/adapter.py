"""The thin adapter between the commands and a runtime.

``crmbridge run`` and ``crmbridge backfill`` ask a :class:`Runtime` to serve and to backfill; the
embedded runtime does it in this process, the scaled one through procrastinate's queue. Both run
the same sync functions — :meth:`~crmbridge.sync.PipelineRunner.run_cycle` and
:func:`~crmbridge.sync.backfill.run_backfill` — and differ only in who calls them and where.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import text

from crmbridge.app import CrmBridge
from crmbridge.errors import ConfigurationError, CrmBridgeError
from crmbridge.sync import CycleResult, PipelineRunner
from crmbridge.sync.backfill import Progress, run_backfill

from .config import ScaledSettings, require_postgres, scaled_settings

log = logging.getLogger("crmbridge.runtime")

ProgressCallback = Callable[[Progress], None]
WATCH_SECONDS = 0.5
"""How often ``crmbridge backfill`` looks at a split backfill's progress."""


class Runtime(Protocol):
    """What the commands ask of a runtime."""

    def serve(self, *, max_cycles: int | None = None) -> None:
        """Run the pipelines until SIGTERM (``crmbridge run``)."""

    def backfill(
        self,
        runner: PipelineRunner,
        since: datetime,
        until: datetime | None,
        *,
        dry_run: bool = False,
        restart: bool = False,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> CycleResult:
        """Backfill ``[since, until)`` of ``runner``'s pipeline; resumable."""


class EmbeddedRuntime:
    """Everything in this process: the daemon's scheduler loop, a backfill run here."""

    def __init__(self, bridge: CrmBridge) -> None:
        self.bridge = bridge

    def serve(self, *, max_cycles: int | None = None) -> None:
        from crmbridge.runtime.embedded import run_daemon

        run_daemon(self.bridge, max_cycles=max_cycles)

    def backfill(
        self,
        runner: PipelineRunner,
        since: datetime,
        until: datetime | None,
        *,
        dry_run: bool = False,
        restart: bool = False,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> CycleResult:
        return run_backfill(
            runner, since, until, dry_run=dry_run, restart=restart, stop=stop, progress=progress
        )


class ScaledRuntime:
    """procrastinate on PostgreSQL: this process is one worker among any number, and a backfill
    is split into chunks that the workers take in side by side."""

    def __init__(self, bridge: CrmBridge) -> None:
        require_postgres(bridge.settings)
        self.bridge = bridge
        self.scaled: ScaledSettings = scaled_settings(bridge.settings)

    def serve(
        self,
        *,
        max_cycles: int | None = None,
        concurrency: int | None = None,
        queues: Sequence[str] = (),
    ) -> None:
        if max_cycles is not None:
            raise ConfigurationError(
                "--cycles counts the cycles of one process; on the scaled runtime the workers "
                "share the cycles",
                hint="drop --cycles, or set CRMBRIDGE_RUNTIME=embedded for a test run",
            )
        from .worker import run_worker

        run_worker(self.bridge, self.scaled, concurrency=concurrency, queues=queues)

    def backfill(
        self,
        runner: PipelineRunner,
        since: datetime,
        until: datetime | None,
        *,
        dry_run: bool = False,
        restart: bool = False,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> CycleResult:
        """Split the backfill into chunks for the workers and follow it until it is done (a dry
        run writes nothing, so it runs here, whole). Stopping the command stops the watching, not
        the backfill: the workers go on, and the same command shows it again."""
        if dry_run:
            return run_backfill(runner, since, until, dry_run=True, stop=stop, progress=progress)
        from .backfill import Backfills, make_plan
        from .jobs import JobQueue

        bridge = self.bridge
        store = runner.store
        backfills = Backfills(store, JobQueue())
        now = bridge.clock()
        plan = make_plan(runner.name, since, until, self.scaled.backfill_chunks, now)
        plan = backfills.submit(plan, now, restart=restart)
        log.info(
            "backfill %s of pipeline %s: %d chunk(s) queued for the workers",
            plan.id,
            plan.pipeline,
            len(plan.chunks),
        )
        stop = stop or threading.Event()
        warned = False
        while True:
            state = backfills.state(plan)
            if progress is not None:
                progress(state.progress())
            if state.done:
                return CycleResult(plan.id, runner.name, "ok", state.counts())
            if state.failed:
                error = CrmBridgeError(
                    f"backfill {plan.id}: chunk(s) {', '.join(map(str, state.failed))} failed "
                    "(the workers' logs say why)",
                    hint="fix the cause, then run the same command again: it retries them",
                )
                return CycleResult(plan.id, runner.name, "failed", state.counts(), error=error)
            if not warned and self._workers_alive(runner) == 0:
                log.warning("no crmbridge worker is running: start one with `crmbridge worker`")
                warned = True
            if stop.wait(WATCH_SECONDS):
                error = CrmBridgeError(
                    f"backfill {plan.id}: stopped watching; the workers go on with it"
                )
                return CycleResult(plan.id, runner.name, "stopped", state.counts(), error=error)

    def _workers_alive(self, runner: PipelineRunner) -> int:
        with runner.store.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > "
                        "now() - make_interval(secs => :timeout)"
                    ),
                    {"timeout": self.scaled.worker_timeout_seconds},
                ).scalar_one()
            )


def runtime_for(bridge: CrmBridge) -> EmbeddedRuntime | ScaledRuntime:
    """The runtime ``CRMBRIDGE_RUNTIME`` names (checked: the scaled one needs PostgreSQL)."""
    if bridge.settings.runtime == "procrastinate":
        return ScaledRuntime(bridge)
    return EmbeddedRuntime(bridge)
