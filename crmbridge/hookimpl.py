"""The marker for hook implementations: ``from crmbridge import hookimpl``."""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("crmbridge")
