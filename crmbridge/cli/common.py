"""What most commands start with: settings from the env files, logging, the composition root."""

from __future__ import annotations

from pathlib import Path

import typer

from crmbridge.app import CrmBridge
from crmbridge.cli.app import options
from crmbridge.logs import configure_logging
from crmbridge.settings import load_settings


def bridge(ctx: typer.Context, *, definition: Path | None = None, **overrides: object) -> CrmBridge:
    """A :class:`CrmBridge` from the global ``--env-file`` options (and per-command overrides)."""
    extra = {k: v for k, v in overrides.items() if v is not None}
    if definition is not None:
        extra["definition"] = definition
    settings = load_settings(options(ctx).env_files, **extra)
    configure_logging(settings.log_level, settings.log_format)
    return CrmBridge(settings)
