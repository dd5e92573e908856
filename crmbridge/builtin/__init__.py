"""crmbridge's own behaviour, shipped as plugins through the same manager as everyone else's.

Each is registered ``trylast`` where it is a default a plugin may override.
"""

from __future__ import annotations

BUILTIN_PLUGINS: dict[str, str] = {
    "crmbridge.normalize": "crmbridge.builtin.normalize",
    "crmbridge.definition": "crmbridge.builtin.definition_rules",
    "crmbridge.routing": "crmbridge.builtin.routing",
}
"""Built-in plugin name → module. Disable one with ``CRMBRIDGE_DISABLE_PLUGINS``."""
