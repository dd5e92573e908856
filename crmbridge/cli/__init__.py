"""The ``crmbridge`` command line."""

from __future__ import annotations

from crmbridge.cli import basic
from crmbridge.cli.app import app, main

__all__ = ["app", "basic", "main"]
