"""Default normalization: trim text, collapse runs of spaces, turn empty text into no value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crmbridge.context import HookContext
from crmbridge.hookimpl import hookimpl
from crmbridge.lead import Lead

_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_KEEP_LINES = frozenset({"description"})


@hookimpl(trylast=True)
def crm_normalize_lead(ctx: HookContext, lead: Lead) -> Mapping[str, Any] | None:
    """Trim every text field and collapse inner runs of spaces; ``""`` becomes ``None``."""
    changes: dict[str, Any] = {}
    for name, value in lead.fields.items():
        if not isinstance(value, str):
            continue
        cleaned = value.strip()
        if name not in _KEEP_LINES:
            cleaned = _SPACES.sub(" ", cleaned)
        new: str | None = cleaned or None
        if new != value:
            changes[name] = new
    return changes or None
