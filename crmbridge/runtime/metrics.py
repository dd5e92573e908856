"""Prometheus metrics and a health endpoint on a local port: ``/metrics`` and ``/healthz``.

A small, dependency-free registry in Prometheus' text exposition format; the daemon updates it
after each cycle.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from crmbridge.context import RunCounts

log = logging.getLogger("crmbridge.runtime")

COUNTERS = {
    "crmbridge_leads_pulled_total": ("pulled", "Marketing records read"),
    "crmbridge_leads_quarantined_total": ("quarantined", "Records quarantined"),
    "crmbridge_leads_handed_off_total": ("handed_off", "Leads handed off to sales"),
    "crmbridge_outcomes_total": ("outcomes", "Sales verdicts recorded"),
    "crmbridge_written_back_total": ("written_back", "Records written back to a system"),
    "crmbridge_sla_breaches_total": ("sla_breaches", "Handoffs sales left past their SLA"),
    "crmbridge_conflicts_total": ("conflicts", "Fields not overwritten: a person changed them"),
    "crmbridge_errors_total": ("errors", "Plugin and cycle errors"),
}


@dataclass
class PipelineHealth:
    """What ``/healthz`` says about one pipeline."""

    status: str = "starting"
    last_run_at: float | None = None
    last_ok_at: float | None = None
    duration: float = 0.0
    error: str | None = None


@dataclass
class Metrics:
    """Counters and gauges by pipeline (and system, for API calls)."""

    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    api_calls: dict[tuple[str, str], float] = field(default_factory=dict)
    cycles: dict[tuple[str, str], float] = field(default_factory=dict)
    duration: dict[str, float] = field(default_factory=dict)
    lag: dict[tuple[str, str], float] = field(default_factory=dict)
    health: dict[str, PipelineHealth] = field(default_factory=dict)
    poll_seconds: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_cycle(
        self,
        pipeline: str,
        status: str,
        counts: RunCounts,
        duration: float,
        error: str | None = None,
    ) -> None:
        now = time.time()
        with self.lock:
            for metric, (attr, _help) in COUNTERS.items():
                key = (metric, pipeline)
                self.counters[key] = self.counters.get(key, 0) + getattr(counts, attr)
            for system, calls in counts.api_calls.items():
                key = (pipeline, system)
                self.api_calls[key] = self.api_calls.get(key, 0) + calls
            ckey = (pipeline, status)
            self.cycles[ckey] = self.cycles.get(ckey, 0) + 1
            self.duration[pipeline] = duration
            health = self.health.setdefault(pipeline, PipelineHealth())
            health.status, health.last_run_at, health.duration = status, now, duration
            health.error = error
            if status == "ok":
                health.last_ok_at = now

    def set_lag(self, pipeline: str, system: str, seconds: float) -> None:
        with self.lock:
            self.lag[(pipeline, system)] = seconds

    def render(self) -> str:
        """The Prometheus text exposition."""
        lines: list[str] = []
        with self.lock:
            for metric, (_attr, text) in COUNTERS.items():
                lines += [f"# HELP {metric} {text}", f"# TYPE {metric} counter"]
                for (name, pipeline), value in sorted(self.counters.items()):
                    if name == metric:
                        lines.append(f'{metric}{{pipeline="{_esc(pipeline)}"}} {value:g}')
            lines += [
                "# HELP crmbridge_api_calls_total API calls made, by system",
                "# TYPE crmbridge_api_calls_total counter",
            ]
            for (pipeline, system), value in sorted(self.api_calls.items()):
                lines.append(
                    f'crmbridge_api_calls_total{{pipeline="{_esc(pipeline)}",system="{_esc(system)}"}}'
                    f" {value:g}"
                )
            lines += [
                "# HELP crmbridge_cycles_total Sync cycles, by how they ended",
                "# TYPE crmbridge_cycles_total counter",
            ]
            for (pipeline, status), value in sorted(self.cycles.items()):
                labels = f'pipeline="{_esc(pipeline)}",status="{status}"'
                lines.append(f"crmbridge_cycles_total{{{labels}}} {value:g}")
            lines += [
                "# HELP crmbridge_cycle_duration_seconds Duration of the last cycle",
                "# TYPE crmbridge_cycle_duration_seconds gauge",
            ]
            for pipeline, value in sorted(self.duration.items()):
                lines.append(
                    f'crmbridge_cycle_duration_seconds{{pipeline="{_esc(pipeline)}"}} {value:.3f}'
                )
            lines += [
                "# HELP crmbridge_cursor_lag_seconds How far behind now each cursor is",
                "# TYPE crmbridge_cursor_lag_seconds gauge",
            ]
            for (pipeline, system), value in sorted(self.lag.items()):
                lines.append(
                    f'crmbridge_cursor_lag_seconds{{pipeline="{_esc(pipeline)}",system="{_esc(system)}"}}'
                    f" {value:.1f}"
                )
        return "\n".join(lines) + "\n"

    def healthz(self) -> tuple[int, dict[str, Any]]:
        """200 when every pipeline succeeded within three poll intervals, else 503."""
        now = time.time()
        body: dict[str, Any] = {"status": "ok", "pipelines": {}}
        code = 200
        with self.lock:
            for pipeline, h in sorted(self.health.items()):
                limit = 3 * self.poll_seconds.get(pipeline, 15.0) + 60
                fresh = h.last_ok_at is not None and now - h.last_ok_at <= limit
                if h.status not in ("starting",) and not fresh and h.status != "paused":
                    code = 503
                body["pipelines"][pipeline] = {
                    "status": h.status,
                    "last_run_seconds_ago": None
                    if h.last_run_at is None
                    else round(now - h.last_run_at, 1),
                    "last_ok_seconds_ago": None
                    if h.last_ok_at is None
                    else round(now - h.last_ok_at, 1),
                    "cycle_seconds": round(h.duration, 3),
                    "error": h.error,
                }
        if code != 200:
            body["status"] = "failing"
        return code, body


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` from a background thread."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        handler = _handler(metrics.render, metrics.healthz)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MetricsServer:
        self.thread.start()
        log.info(
            "health and metrics on http://%s:%d/healthz and /metrics",
            *self.server.server_address[:2],
        )
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    render: Callable[[], str], healthz: Callable[[], tuple[int, Mapping[str, Any]]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, render().encode(), "text/plain; version=0.0.4")
            elif self.path == "/healthz":
                code, body = healthz()
                self._send(code, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    return Handler
