"""The ``crmbridge`` command line."""

from __future__ import annotations

from crmbridge.cli import basic, inspect, operate, sandbox_cmd, scaffold, scaled
from crmbridge.cli.app import app, main

__all__ = ["app", "basic", "inspect", "main", "operate", "sandbox_cmd", "scaffold", "scaled"]
