"""The embedded runtime: ``crmbridge run`` as one process — a scheduler loop, a small thread pool,
SQLite by default.

Each pipeline runs a cycle every ``poll_seconds`` (at most one cycle of a pipeline at a time). On
SIGTERM or SIGINT the daemon asks every running cycle to stop between batches (no partial cursor),
waits for them, releases its leases and exits. On SIGHUP it reads the lead definition again; a
broken one is refused with a clear log line and the old one stays in force.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from crmbridge.app import CrmBridge
from crmbridge.errors import ConfigurationError, QuotaExhausted
from crmbridge.logs import fields as log_fields
from crmbridge.runtime.metrics import Metrics, MetricsServer
from crmbridge.sync import CycleResult, Pipeline, PipelineRunner, load_pipelines

log = logging.getLogger("crmbridge.runtime")


@dataclass
class _Slot:
    pipeline: Pipeline
    due: float
    future: Future[CycleResult] | None = None


class Daemon:
    """Runs every pipeline's cycles until stopped."""

    def __init__(
        self,
        bridge: CrmBridge,
        pipelines: Sequence[Pipeline] | None = None,
        *,
        workers: int = 4,
        metrics: Metrics | None = None,
        max_cycles: int | None = None,
    ) -> None:
        self.bridge = bridge
        self.pipelines = list(pipelines or load_pipelines(bridge.settings))
        self.runners = {p.name: PipelineRunner(bridge, p) for p in self.pipelines}
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(self.pipelines))))
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.metrics = metrics or Metrics()
        self.max_cycles = max_cycles
        self.cycles_run = 0
        self.results: list[CycleResult] = []
        for p in self.pipelines:
            self.metrics.poll_seconds[p.name] = p.config.poll_seconds

    # -- signals -------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop cleanly, SIGHUP reloads the lead definition (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping between batches", signal.Signals(signum).name)
        self.stop_event.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload_event.set()

    def reload_definition(self) -> bool:
        """Read the definition again; keep the old one (and say why) if the new one is broken."""
        old = self.bridge.definition
        try:
            fresh = self.bridge.reload_definition()
        except ConfigurationError as exc:
            log.error(
                "SIGHUP: the lead definition %s was not reloaded; version %s stays in force:\n%s",
                self.bridge.settings.definition,
                old.version,
                exc,
            )
            return False
        for runner in self.runners.values():
            runner.reset(definition=fresh)
        log.info(
            "SIGHUP: lead definition reloaded: version %s (hash %s), was %s",
            fresh.version,
            fresh.content_hash,
            old.version,
        )
        return True

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Schedule cycles until stopped (or ``max_cycles`` cycles ran)."""
        slots = {p.name: _Slot(p, time.monotonic()) for p in self.pipelines}
        log.info(
            "crmbridge daemon started: %d pipeline(s): %s",
            len(slots),
            ", ".join(
                f"{p.name} ({p.marketing} → {p.sales}, every {p.config.poll_seconds:g} s)"
                for p in self.pipelines
            ),
        )
        try:
            while not self.stop_event.is_set():
                if self.reload_event.is_set():
                    self.reload_event.clear()
                    self.reload_definition()
                now = time.monotonic()
                for name, slot in slots.items():
                    if slot.future is not None and slot.future.done():
                        self._finished(slot, slot.future)
                        slot.future = None
                    if slot.future is None and slot.due <= now and not self._enough():
                        slot.future = self.pool.submit(self._cycle, name)
                        self.cycles_run += 1
                if self._enough() and all(s.future is None for s in slots.values()):
                    break
                waits = [s.due - now for s in slots.values() if s.future is None]
                self.stop_event.wait(max(0.05, min([0.5, *waits])))
        finally:
            self._shutdown(slots)

    def _enough(self) -> bool:
        return self.max_cycles is not None and self.cycles_run >= self.max_cycles

    def _cycle(self, name: str) -> CycleResult:
        started = time.monotonic()
        result = self.runners[name].run_cycle(stop=self.stop_event)
        self.metrics.record_cycle(
            name,
            result.status,
            result.counts,
            time.monotonic() - started,
            str(result.error or "") or None,
        )
        return result

    def _finished(self, slot: _Slot, future: Future[CycleResult]) -> None:
        name = slot.pipeline.name
        poll = slot.pipeline.config.poll_seconds
        try:
            result = future.result()
        except Exception as exc:
            log.error("pipeline %s: cycle crashed: %s", name, exc, exc_info=exc)
            slot.due = time.monotonic() + poll
            return
        self.results.append(result)
        slot.due = time.monotonic() + poll
        if result.status == "paused" and isinstance(result.error, QuotaExhausted):
            resets = result.error.resets_at
            wait = poll * 4
            if resets is not None:
                wait = max(poll, min((resets - datetime.now(UTC)).total_seconds(), 3600))
            slot.due = time.monotonic() + wait
            log.warning(
                "pipeline %s paused for %.0f s to leave the quota reserve alone",
                name,
                wait,
                extra=log_fields(pipeline=name),
            )

    def _shutdown(self, slots: dict[str, _Slot]) -> None:
        for slot in slots.values():
            if slot.future is not None:
                self._finished(slot, slot.future)
        self.pool.shutdown(wait=True)
        for runner in self.runners.values():
            self.bridge.store.release_lease(runner.name, runner.owner)
            runner.close()
        log.info("crmbridge daemon stopped cleanly after %d cycle(s)", self.cycles_run)


def run_daemon(
    bridge: CrmBridge, *, install_signals: bool = True, max_cycles: int | None = None
) -> Daemon:
    """Start the metrics server (when a port is set) and run the daemon until stopped."""
    daemon = Daemon(bridge, max_cycles=max_cycles)
    server = None
    if bridge.settings.metrics_port:
        server = MetricsServer(
            daemon.metrics, bridge.settings.metrics_host, bridge.settings.metrics_port
        ).start()
    if install_signals:
        daemon.install_signal_handlers()
    try:
        daemon.run()
    finally:
        if server is not None:
            server.stop()
    return daemon
