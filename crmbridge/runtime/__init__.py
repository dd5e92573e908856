"""Runtimes: the embedded daemon (one process) and, later, scaled workers."""

from __future__ import annotations

from crmbridge.runtime.embedded import Daemon, run_daemon
from crmbridge.runtime.metrics import Metrics, MetricsServer

__all__ = ["Daemon", "Metrics", "MetricsServer", "run_daemon"]
